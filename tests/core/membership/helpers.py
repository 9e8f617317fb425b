"""Shared helpers of the membership tests: nodes driven call by call, and small clusters.

Two ways to drive real cores, with no sockets. A node from :func:`make_node` is driven
directly: hand-made frames from :func:`seal` go in, its output is read back with
:func:`open_frame`. A cluster from :func:`joined` (or a :class:`World` built by hand) runs
on the one simulator, :class:`covey.sim.Simulation`; a :class:`Traffic` tap records what
each node hands the simulator, for the tests that look at the messages themselves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import msgpack
from cryptography.fernet import Fernet

from covey.core import CoreConfig, Datagram, Keyring, MemberState, Node, StreamRequest
from covey.core.events import Event
from covey.core.types import Address
from covey.core.wire.frame import (
    FrameType,
    body_prefix,
    build_frame,
    encode_message_bytes,
    pack_body,
)
from covey.core.wire.messages import Message, decode_message
from covey.sim import Simulation
from covey.sim.world import SimHost

KEY = Fernet.generate_key()


def node_id(i: int) -> bytes:
    """A deterministic 16-byte id."""
    return bytes([i]) * 16


PEER = node_id(2)


def make_node(
    i: int,
    *,
    keys: list[bytes] | None = None,
    plaintext: bool = False,
    now: float = 0.0,
    seed: int | None = None,
    start: bool = True,
    **cfg: object,
) -> Node:
    """Node number ``i`` at 10.0.0.i:7946 (an address that is never used for real IO)."""
    params: dict[str, object] = {
        "node_id": node_id(i),
        "name": f"n{i}",
        "cluster": "test",
        "address": (f"10.0.0.{i}", 7946),
    }
    params.update(cfg)
    config = CoreConfig(**params)  # type: ignore[arg-type]
    if plaintext:
        keyring = Keyring([], plaintext=True)
    else:
        keyring = Keyring([KEY] if keys is None else keys)
    node = Node(config, keyring, rng=random.Random(i if seed is None else seed), now=now)
    if start:
        node.start(now=now)
    return node


def seal(
    msgs: list[Message],
    *,
    sender: bytes,
    cluster: str = "test",
    keyring: Keyring | None = None,
    ftype: FrameType = FrameType.DATAGRAM,
    wall: float = 0.0,
) -> bytes:
    """A frame as a node would build it, for injecting hand-made messages."""
    ring = Keyring([KEY]) if keyring is None else keyring
    body = pack_body(body_prefix(cluster, sender), [encode_message_bytes(m) for m in msgs])
    return build_frame(ftype, ring.security, ring.seal(body, wall))


def open_frame(frame: bytes, key: bytes = KEY) -> tuple[str, bytes, list[Message]]:
    """Decrypt a captured datagram the way an outside tool would: plain Fernet + msgpack."""
    body = Fernet(key).decrypt(frame[5:])
    cluster, sender, raw = msgpack.unpackb(body, raw=False)
    return cluster, sender, [decode_message(a) for a in raw]


def _node(x: Node | SimHost) -> Node:
    return x.node if isinstance(x, SimHost) else x


def state(viewer: Node | SimHost, subject: Node | SimHost) -> MemberState | None:
    """How ``viewer`` sees ``subject``; None when it does not know it."""
    m = _node(viewer).member(_node(subject).node_id)
    return None if m is None else m.state


def of_type(events: list[Any], kind: type, about: Node | SimHost | None = None) -> list[Any]:
    """The events of one kind, optionally only those about one member."""
    nid = None if about is None else _node(about).node_id
    return [e for e in events if isinstance(e, kind) and (nid is None or e.member.node_id == nid)]


def drops(node: Node | SimHost) -> dict[str, int]:
    """Dropped inputs by reason."""
    return _node(node).statistics().drops


def inject(node: Node, frame: bytes, now: float = 1.0) -> dict[str, int]:
    """Hand ``node`` one datagram; the drop counters it moved."""
    before = dict(drops(node))
    node.receive_datagram(frame, ("10.0.0.200", 7946), now=now)
    after = drops(node)
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def taken(host: SimHost) -> list[Event]:
    """The events the simulator recorded for ``host`` so far, forgetting them (pop_events)."""
    events = [e for _, e in host.events]
    host.events.clear()
    return events


# ------------------------------------------------------------------ simulated clusters


@dataclass
class Traffic:
    """What the tapped nodes handed the simulator, in order, with their source address."""

    datagrams: list[tuple[Address, Datagram]] = field(default_factory=list)
    streams: list[tuple[Address, StreamRequest]] = field(default_factory=list)

    def messages(self, since: int = 0) -> list[tuple[Address, Address | None, Message]]:
        """(source, destination, message) of every message in the datagrams from ``since``."""
        return [
            (src, d.address, m) for src, d in self.datagrams[since:] for m in open_frame(d.data)[2]
        ]


def tap(host: SimHost, traffic: Traffic) -> None:
    """Copy into ``traffic`` what ``host``'s node hands out from now on.

    covey.sim keeps only counts of what a host sends, so the two output calls of the real
    node are wrapped to record what passes; nothing is changed on the way.
    """
    node, addr = host.node, host.address
    send, open_ = node.datagrams_to_send, node.streams_to_open

    def datagrams_to_send(*, now: float) -> list[Datagram]:
        out = send(now=now)
        traffic.datagrams.extend((addr, d) for d in out)
        return out

    def streams_to_open(*, now: float) -> list[StreamRequest]:
        out = open_(now=now)
        traffic.streams.extend((addr, r) for r in out)
        return out

    # Instance attributes shadow the methods for this one node only.
    vars(node).update(datagrams_to_send=datagrams_to_send, streams_to_open=streams_to_open)


class World:
    """A :class:`Simulation` of encrypted nodes in cluster "test", every host tapped."""

    def __init__(self, seed: int = 1, *, cluster: str = "test", **config: Any) -> None:
        self.sim = Simulation(seed, keys=[KEY], cluster=cluster, **config)
        self.traffic = Traffic()
        self.hosts: list[SimHost] = []

    @property
    def now(self) -> float:
        """The simulator's virtual time."""
        return self.sim.now

    def add(self, name: str | None = None, **kw: Any) -> SimHost:
        """A started host (named n1, n2, ... by default) whose output is tapped."""
        host = self.sim.add_node(name or f"n{len(self.sim.hosts) + 1}", **kw)
        tap(host, self.traffic)
        self.hosts.append(host)
        return host

    def run_for(self, dt: float) -> None:
        """Advance virtual time by ``dt``."""
        self.sim.run_for(dt)

    def run_until(self, t: float) -> None:
        """Advance virtual time to ``t``."""
        self.sim.run_until(t)


def joined(n: int, *, until: float = 10.0, seed: int = 1, **config: Any) -> World:
    """``n`` hosts brought together by beacons, every one seeing every other alive."""
    world = World(seed, **config)
    for _ in range(n):
        world.add()
    world.run_until(until)
    for a in world.hosts:
        for b in world.hosts:
            assert state(a, b) is MemberState.ALIVE, (a.name, b.name)
    for h in world.hosts:
        h.events.clear()
    return world
