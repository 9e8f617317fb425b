"""A tiny in-test loop that wires a few real :class:`covey.core.Node` objects together.

No sockets: datagrams and stream exchanges are handed from one core to another in
virtual time. Kept deliberately small and explicit so the node tests read as stories.
Datagrams addressed to ``None`` (the discovery group) reach every other node.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack
from cryptography.fernet import Fernet

from covey.core import CoreConfig, Datagram, Keyring, Node, StreamRequest
from covey.core.wire.frame import (
    FrameType,
    body_prefix,
    build_frame,
    encode_message_bytes,
    pack_body,
)
from covey.core.wire.messages import Message, decode_message

KEY = Fernet.generate_key()


def node_id(i: int) -> bytes:
    """A deterministic 16-byte id."""
    return bytes([i]) * 16


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


@dataclass(order=True)
class _InFlight:
    at: float
    seq: int
    src: tuple[str, int] = field(compare=False)
    dgram: Datagram = field(compare=False)


class Net:
    """Moves datagrams and stream exchanges between nodes in virtual time.

    Attributes:
        latency: one-way delay of every datagram.
        down: addresses whose node is gone; datagrams to them vanish.
        refuse: for streams to a down node, True = connection refused, False = time-out.
        drop: optional filter(src, dst, datagram) -> True to lose the datagram.
        sent: every datagram ever emitted, with its source, for inspection.
        streams: every stream request ever opened, with its source.
        cut: pairs of addresses that cannot reach each other (datagrams lost, streams
            time out), see :meth:`partition`.
    """

    def __init__(self, *nodes: Node, latency: float = 0.0) -> None:
        self.nodes = {n.config.address: n for n in nodes}
        self.latency = latency
        self.down: set[tuple[str, int]] = set()
        self.refuse = True
        self.drop: Callable[[tuple[str, int], tuple[str, int] | None, Datagram], bool] | None
        self.drop = None
        self.sent: list[tuple[tuple[str, int], Datagram]] = []
        self.streams: list[tuple[tuple[str, int], StreamRequest]] = []
        self.cut: set[frozenset[tuple[str, int]]] = set()
        self._flight: list[_InFlight] = []
        self._seq = 0
        self.now = 0.0

    def add(self, node: Node) -> None:
        self.nodes[node.config.address] = node

    def partition(self, a: Node, b: Node) -> None:
        """Cut the path between two nodes, both ways, datagrams and streams."""
        self.cut.add(frozenset((a.config.address, b.config.address)))

    def heal(self) -> None:
        self.cut.clear()

    def _collect(self, now: float) -> None:
        for addr, node in list(self.nodes.items()):
            if addr in self.down:
                node.datagrams_to_send(now=now)
                node.streams_to_open(now=now)
                continue
            for d in node.datagrams_to_send(now=now):
                self.sent.append((addr, d))
                self._seq += 1
                heapq.heappush(self._flight, _InFlight(now + self.latency, self._seq, addr, d))
            for req in node.streams_to_open(now=now):
                self.streams.append((addr, req))
                peer = self.nodes.get(req.address)
                if frozenset((addr, req.address)) in self.cut:
                    node.stream_failed(req.request_id, refused=False, now=now)
                    continue
                if peer is None or req.address in self.down:
                    node.stream_failed(req.request_id, refused=self.refuse, now=now)
                    continue
                reply = peer.handle_stream(req.data, addr, now=now)
                if reply is None:
                    node.stream_failed(req.request_id, refused=False, now=now)
                else:
                    node.stream_reply(req.request_id, reply, now=now)

    def _deliver(self, item: _InFlight) -> None:
        dst = item.dgram.address
        targets = [a for a in self.nodes if a != item.src] if dst is None else [dst]
        for t in targets:
            if t in self.down or t not in self.nodes or frozenset((item.src, t)) in self.cut:
                continue
            if self.drop is not None and self.drop(item.src, dst, item.dgram):
                continue
            self.nodes[t].receive_datagram(item.dgram.data, item.src, now=item.at)

    def settle(self, now: float) -> None:
        """Deliver everything due at or before ``now`` (and what that provokes)."""
        self._collect(now)
        while self._flight and self._flight[0].at <= now:
            item = heapq.heappop(self._flight)
            self._deliver(item)
            self._collect(item.at)

    def run_until(self, end: float) -> None:
        """Advance virtual time to ``end``, firing timers and delivering datagrams."""
        self.settle(self.now)
        for _ in range(1_000_000):
            timers = [
                t
                for a, n in self.nodes.items()
                if a not in self.down and (t := n.get_timer()) is not None
            ]
            nxt = min(timers, default=end)
            if self._flight:
                nxt = min(nxt, self._flight[0].at)
            if nxt > end:
                break
            self.now = max(self.now, nxt)
            for a, n in list(self.nodes.items()):
                t = n.get_timer()
                if a not in self.down and t is not None and t <= self.now:
                    n.handle_timer(now=self.now)
            self.settle(self.now)
        else:
            raise RuntimeError("timers do not advance")
        self.now = end
        self.settle(end)
