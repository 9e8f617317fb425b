"""The extension mechanism: messages, gossip, stream replies, sync state, events, timers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from covey.core import (
    Extension,
    ExtensionEvent,
    ExtensionMessage,
    MalformedMessage,
    MemberEvent,
    MemberFailed,
)
from covey.core.types import Address
from covey.sim import SimHost, Simulation


@dataclass(frozen=True)
class Note(ExtensionMessage):
    TYPE: ClassVar[int] = 90
    text: str

    def to_array(self) -> list[Any]:
        return [self.text]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        if len(fields) != 1 or type(fields[0]) is not str:
            raise MalformedMessage("note wants one text field")
        return cls(fields[0])


@dataclass(frozen=True)
class Noted(ExtensionEvent):
    text: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"event": "noted", "text": self.text}


class Notes(Extension):
    """Keeps a set of notes; spreads new ones by gossip and by push-pull."""

    name = "notes"
    message_types = (Note,)

    def __init__(self) -> None:
        super().__init__()
        self.notes: set[str] = set()
        self.failures: list[str] = []
        self.ticks: list[float] = []
        self.next_tick: float | None = None

    def on_start(self, now: float) -> None:
        self.next_tick = now + 1.0

    def add(self, text: str, now: float) -> None:
        self.notes.add(text)
        self.handle.gossip(b"note:" + text.encode(), Note(text), now=now)

    def on_message(self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float) -> None:
        assert isinstance(msg, Note)
        if msg.text not in self.notes:
            self.notes.add(msg.text)
            self.handle.emit(Noted(msg.text, now))
            self.handle.gossip(b"note:" + msg.text.encode(), msg, now=now)

    def on_stream(
        self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float
    ) -> list[ExtensionMessage]:
        self.on_message(msg, sender, addr, now)
        return [Note("echo:" + msg.text)] if isinstance(msg, Note) else []

    def on_member_event(self, event: MemberEvent, now: float) -> None:
        if isinstance(event, MemberFailed):
            self.failures.append(event.member.name)

    def next_deadline(self) -> float | None:
        return self.next_tick

    def on_timer(self, now: float) -> None:
        self.ticks.append(now)
        self.next_tick = now + 1.0

    def sync_state(self) -> Any:
        return sorted(self.notes)

    def merge_sync_state(self, state: Any, sender: bytes, now: float) -> None:
        if isinstance(state, list):
            self.notes.update(s for s in state if isinstance(s, str))


def notes(h: SimHost) -> Notes:
    ext = h.node.capability("notes")
    assert isinstance(ext, Notes)
    return ext


def make(n: int) -> Simulation:
    sim = Simulation(7, extensions=lambda h: [Notes()])
    first = sim.add_node()
    for _ in range(n - 1):
        sim.add_node(join=[first.name])
    assert sim.run_until_true(sim.converged, timeout=30.0) is not None
    return sim


def test_gossiped_extension_messages_reach_everyone_and_emit_events() -> None:
    sim = make(20)
    notes(sim.hosts["n3"]).add("hello", sim.now)
    sim.run_for(5.0)
    assert all("hello" in notes(h).notes for h in sim.hosts.values())
    noted = [e for h in sim.hosts.values() for _, e in h.events if isinstance(e, Noted)]
    assert len(noted) == 19  # everyone but the author, once each


def test_sync_state_travels_in_push_pull() -> None:
    sim = Simulation(8, extensions=lambda h: [Notes()])
    a = sim.add_node()
    notes(a).notes.add("before-join")  # known only locally, never gossiped
    b = sim.add_node(join=[a.name])
    sim.run_for(1.0)
    assert "before-join" in notes(b).notes


def test_member_events_and_timers_reach_the_extension() -> None:
    sim = make(5)
    sim.crash("n2")
    sim.run_for(20.0)
    assert all("n2" in notes(h).failures for h in sim.running())
    assert len(notes(sim.hosts["n0"]).ticks) >= 19


def test_stream_replies_come_back_as_messages() -> None:
    sim = make(3)
    a, b = sim.hosts["n0"], sim.hosts["n1"]
    a.node.open_stream(b.address, [Note("ping")], now=sim.now)
    sim.run_for(1.0)
    assert "ping" in notes(b).notes
    assert "echo:ping" in notes(a).notes


def test_malformed_extension_message_is_dropped_and_counted() -> None:
    sim = make(2)
    a, b = sim.hosts["n0"], sim.hosts["n1"]
    import msgpack

    from covey.core.wire.frame import FrameType, body_prefix, build_frame, pack_body

    body = pack_body(body_prefix("sim", a.config.node_id), [msgpack.packb([90, 1, 2])])
    frame = build_frame(FrameType.DATAGRAM, b.node.keyring.security, body)
    b.node.receive_datagram(frame, a.address, now=sim.now)
    assert b.node.statistics().drops.get("malformed") == 1
