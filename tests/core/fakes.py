"""A fake :class:`~covey.core.plugin.Handle`: drive one capability with no Node at all.

The member directory holds real :class:`~covey.core.member.Member` records that the test
sets up and changes; everything the capability does (send, gossip, streams, events,
effects) is recorded in lists the test reads.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from covey.core import CoreConfig, Event, MemberState
from covey.core.effects import Effect
from covey.core.events import MemberEvent, MemberFailed, MemberJoined, MemberLeft
from covey.core.member import Member
from covey.core.plugin import Capability, ExtensionMessage
from covey.core.types import Address

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


def node_id(i: int) -> bytes:
    """A 16-byte id that sorts by ``i``."""
    return i.to_bytes(16, "big")


@dataclass
class FakeMembers:
    """A member directory the test owns (satisfies ``MemberDirectory``)."""

    local: Member
    members: dict[bytes, Member] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.members[self.local.node_id] = self.local

    @property
    def live_count(self) -> int:
        return sum(m.state in _LIVE for m in self.members.values())

    def get(self, node_id: bytes) -> Member | None:
        return self.members.get(node_id)

    def live(self) -> Iterator[Member]:
        return (m for m in self.members.values() if m.state in _LIVE)


class FakeHandle:
    """Records what a capability does; the test feeds it members and time."""

    def __init__(self, i: int = 1, *, seed: int = 0, payload_limit: int = 1200) -> None:
        self.config = CoreConfig(node_id=node_id(i), name=f"n{i}", cluster="t", address=_addr(i))
        self.rng = random.Random(seed)
        local = Member(self.node_id, self.name, self.config.address, 0, MemberState.ALIVE, 0.0)
        self.members = FakeMembers(local)
        self.payload_limit = payload_limit
        self.health = 0
        self.datagrams_received = 0
        self.sent: list[tuple[Address | None, list[Any]]] = []
        self.gossiped: list[tuple[bytes, ExtensionMessage, bool]] = []
        self.streams: list[tuple[Address, list[ExtensionMessage]]] = []
        self.events: list[Event] = []
        self.effects: list[Effect] = []

    @property
    def node_id(self) -> bytes:
        return self.config.node_id

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def cluster(self) -> str:
        return self.config.cluster

    def send(self, addr: Address | None, msgs: list[Any], *, now: float) -> None:
        self.sent.append((addr, list(msgs)))

    def gossip(
        self, key: bytes, msg: ExtensionMessage, *, now: float, direct: bool = False
    ) -> None:
        self.gossiped.append((key, msg, direct))

    def open_stream(self, addr: Address, msgs: list[ExtensionMessage], *, now: float) -> None:
        self.streams.append((addr, list(msgs)))

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def persist(self, effect: Effect) -> None:
        self.effects.append(effect)

    # ---------------------------------------------------------------- test helpers

    def take_sent(self) -> list[tuple[Address | None, list[Any]]]:
        out, self.sent = self.sent, []
        return out


def _addr(i: int) -> Address:
    return (f"127.0.0.{i}", 7946)


def attach(cap: Capability, handle: FakeHandle, *, now: float = 0.0) -> FakeHandle:
    """Attach ``cap`` to ``handle`` and start it, as a node would."""
    cap.attach(handle)
    cap.on_start(now)
    return handle


def add_member(
    handle: FakeHandle,
    cap: Capability,
    i: int,
    *,
    now: float = 0.0,
    tags: Mapping[str, str] | None = None,
) -> Member:
    """A member joins: put it in the directory and tell the capability, as the node does."""
    m = Member(node_id(i), f"n{i}", _addr(i), 0, MemberState.ALIVE, now, dict(tags or {}))
    handle.members.members[m.node_id] = m
    cap.on_member_event(MemberJoined(m.snapshot(), now), now)
    return m


def set_state(
    handle: FakeHandle, cap: Capability, i: int, state: MemberState, *, now: float
) -> MemberEvent:
    """A member fails or leaves: change its record and tell the capability."""
    m = handle.members.members[node_id(i)]
    m.state = state
    m.state_change = now
    cls = MemberFailed if state is MemberState.FAILED else MemberLeft
    event = cls(m.snapshot(), now)
    cap.on_member_event(event, now)
    return event
