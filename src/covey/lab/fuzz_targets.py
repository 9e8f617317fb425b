"""Fuzz targets: every decoder that takes network or control input, with the one error type
each is documented to raise, and a real node to feed unauthenticated bytes to.

Used by ``tests/lab/test_fuzz_targets.py`` (hypothesis) and ``bench/fuzz.py`` (atheris).
A target is a function of one ``bytes`` input; it returns normally when the decoder
returned a value or raised its documented error, and raises :class:`Escape` otherwise
(any other exception, or a decoder that accepted what it must not). The node targets also
raise :class:`StateChanged` when unauthenticated input changed the member table, the
facts or the settings of the node.

The node (:class:`FuzzNode`) is a real agent's core with every capability the agent plugs
in (facts, settings, actions, election, deliveries), not started as a process: no socket
is opened. It holds one peer (joined by a real push-pull exchange) and a fact of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgpack

from covey.core.crypto.fernet import generate_key
from covey.core.crypto.keyring import Keyring
from covey.core.deliveries.codec import RecordError as DeliveryRecordError
from covey.core.deliveries.codec import handled_from_plain, record_from_plain
from covey.core.records import record
from covey.core.types import DropReason
from covey.core.wire.frame import (
    MAGIC,
    MAX_DATAGRAM,
    MAX_STREAM_FRAME,
    PROTOCOL_VERSION,
    FrameError,
    FrameType,
    Security,
    body_prefix,
    parse_header,
    unpack_body,
)
from covey.core.wire.messages import MalformedMessage, UnknownMessage
from covey.runtime.agent import Agent
from covey.runtime.collector.records import RecordError, check_batch, check_record
from covey.runtime.config.model import AgentConfig
from covey.runtime.control.codec import ControlError, LineCodec, SealedCodec
from covey.runtime.features.shared import SharedStateFeature

#: The node's clock during a run (monotonic seconds; wall time is this plus the offset).
NOW = 1000.0
_PEER_ADDR = ("127.0.0.1", 2)


class Escape(Exception):
    """A decoder raised something other than its documented error (or accepted garbage)."""


class StateChanged(Exception):
    """Unauthenticated input changed the node's members, facts or settings."""


def _agent(name: str, key: bytes, port: int) -> Agent:
    config = AgentConfig(
        name=name, cluster="fuzz", bind=("127.0.0.1", port), keys=(key,), expected_votes=3
    )
    return Agent(config)


class FuzzNode:
    """A started core with a peer in its table (see the module docstring).

    Args:
        key: the cluster key (generated when not given; never a real secret).
    """

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or generate_key()
        self.agent = _agent("target", self.key, 1)
        self.peer = _agent("peer", self.key, _PEER_ADDR[1])
        self.node, peer = self.agent.node, self.peer.node
        peer.wall_offset = self.node.wall_offset
        self.node.start(now=NOW)
        peer.start(now=NOW)
        shared = next(f for f in self.agent.features if isinstance(f, SharedStateFeature))
        self.facts, self.settings = shared.runtime.facts, shared.runtime.settings
        self.facts.set("role", "fuzzed", NOW)
        peer.join([self.agent.address], now=NOW)
        for req in peer.streams_to_open(now=NOW):
            reply = self.node.handle_stream(req.data, _PEER_ADDR, now=NOW)
            if reply is not None:
                peer.stream_reply(req.request_id, reply, now=NOW)
        if self.node.member(self.peer.node_id) is None:
            raise RuntimeError("the peer did not join the fuzz node")
        #: A keyring with the cluster key, to seal authenticated inputs.
        self.sealer = Keyring([self.key])
        self.prefix = body_prefix("fuzz", self.peer.node_id)
        self.drain()
        self.before = self.state()

    def state(self) -> tuple[Any, ...]:
        """What unauthenticated input must never change."""
        members = tuple(
            sorted(
                (m.node_id, m.state, m.incarnation, tuple(sorted(m.tags.items())))
                for m in self.node.members()
            )
        )
        return members, self.facts.all_facts(), self.settings.items()

    def drain(self) -> None:
        """Take every output, so a long run keeps no backlog."""
        n = self.node
        n.pop_events()
        n.effects_to_apply()
        n.datagrams_to_send(now=NOW)
        for req in n.streams_to_open(now=NOW):
            n.stream_failed(req.request_id, refused=True, now=NOW)

    def wall(self) -> float:
        """The wall time the node checks token ages against."""
        return NOW + self.node.wall_offset

    # ------------------------------------------------------------------ targets

    def unauthenticated(self, data: bytes) -> None:
        """Random bytes as a datagram and as a stream request: dropped, nothing changes."""
        got = self.node.receive_datagram(data, _PEER_ADDR, now=NOW)
        if not isinstance(got, DropReason):
            raise Escape(f"unauthenticated datagram accepted from {got.hex()}")
        if self.node.handle_stream(data, _PEER_ADDR, now=NOW) is not None:
            raise Escape("unauthenticated stream request answered")
        self._check_state()

    def forged(self, data: bytes) -> None:
        """A valid frame header, then the fuzz bytes as the payload (a forged token)."""
        ftype = FrameType.STREAM_REQUEST if data[:1] == b"\x01" else FrameType.DATAGRAM
        frame = MAGIC + bytes((PROTOCOL_VERSION, ftype, Security.FERNET)) + data[1:]
        if ftype is FrameType.DATAGRAM:
            if not isinstance(self.node.receive_datagram(frame, _PEER_ADDR, now=NOW), DropReason):
                raise Escape("forged datagram accepted")
        elif self.node.handle_stream(frame, _PEER_ADDR, now=NOW) is not None:
            raise Escape("forged stream request answered")
        self._check_state()

    def sealed(self, data: bytes) -> None:
        """The fuzz bytes as the messages of an authenticated frame from the peer: the
        node may act on them, but nothing may raise out of the receive call."""
        body = self.prefix + data
        stream = data[:1] == b"\x91"
        ftype = FrameType.STREAM_REQUEST if stream else FrameType.DATAGRAM
        frame = self.sealer.seal_frame(ftype, body, self.wall())
        try:
            if stream:
                self.node.handle_stream(frame, _PEER_ADDR, now=NOW)
            else:
                self.node.receive_datagram(frame, _PEER_ADDR, now=NOW)
        except Exception as exc:
            raise Escape(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.drain()

    def _check_state(self) -> None:
        self.drain()
        after = self.state()
        if after != self.before:
            raise StateChanged(f"{self.before!r} -> {after!r}")


def _only(fn: Callable[[bytes], object], *allowed: type[BaseException]) -> Callable[[bytes], None]:
    """A target: ``fn(data)`` may return or raise one of ``allowed``; anything else escapes."""

    def target(data: bytes) -> None:
        try:
            fn(data)
        except allowed:
            pass
        except Exception as exc:
            raise Escape(f"{type(exc).__name__}: {exc}") from exc

    target.__name__ = getattr(fn, "__name__", "target")
    return target


def _json(data: bytes) -> Any:
    """The JSON in ``data`` the way the control and collector servers read it."""
    return LineCodec().decode(data)


def _messages(node: FuzzNode) -> Callable[[bytes], object]:
    types = node.node.message_types

    def decode(data: bytes) -> object:
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except Exception:  # not msgpack: nothing for the message decoder to see
            return None
        for arr in obj if isinstance(obj, list) and obj and isinstance(obj[0], list) else [obj]:
            try:
                types.decode(arr)
            except UnknownMessage:
                continue
        return None

    return decode


def _collector(data: bytes) -> object:
    request = _json(data)
    if isinstance(request, dict):
        return check_batch(request)
    return check_record(request)


def _deliveries(data: bytes) -> object:
    plain = _json(data)
    if data[:1] == b"[":
        return handled_from_plain(plain)
    return record_from_plain(plain)


@record
class Target:
    """One fuzz target: its name, what it fuzzes, and the function of one input."""

    name: str
    what: str
    run: Callable[[bytes], None]
    #: True when the input is unauthenticated and the node's state must not change.
    unauthenticated: bool = False


def targets(node: FuzzNode | None = None) -> dict[str, Target]:
    """Every target, by name (``node``: the node the node targets feed; a new one if None)."""
    node = node or FuzzNode()
    ring = Keyring([node.key])
    sealed_codec = SealedCodec([node.key])
    wall = node.wall()
    items = [
        Target(
            "frame_header",
            "wire frame header",
            _only(lambda d: parse_header(d, MAX_DATAGRAM), FrameError),
        ),
        Target("frame_body", "msgpack frame body", _only(unpack_body, FrameError)),
        Target(
            "keyring_open",
            "Fernet token + frame (keyring.open_frame)",
            _only(
                lambda d: ring.open_frame(d, FrameType.DATAGRAM, MAX_STREAM_FRAME, wall), FrameError
            ),
        ),
        Target(
            "messages",
            "message arrays of every capability (msgpack)",
            _only(_messages(node), MalformedMessage),
        ),
        Target("control_line", "control socket JSON line", _only(_json, ControlError)),
        Target("control_sealed", "rpc sealed line", _only(sealed_codec.decode, ControlError)),
        Target(
            "collector",
            "collector traces batch / record",
            _only(_collector, ControlError, RecordError),
        ),
        Target(
            "deliveries_store",
            "stored delivery records",
            _only(_deliveries, ControlError, DeliveryRecordError),
        ),
        Target("node_unauth", "node: random datagram + stream", node.unauthenticated, True),
        Target("node_forged", "node: valid header, forged token", node.forged, True),
        Target("node_sealed", "node: authenticated frame, fuzzed messages", node.sealed),
    ]
    return {t.name: t for t in items}


def seed_corpus(node: FuzzNode) -> dict[str, list[bytes]]:
    """Valid inputs per target, made at run time with the node's generated key: real
    frames, message arrays, control lines and records for the fuzzer to mutate."""
    n = node
    n.facts.set("seeded", "1", NOW)
    n.settings.set("colour", "blue", NOW)
    frames: list[bytes] = []
    peer = n.peer.node
    peer.join([n.agent.address], now=NOW)
    frames += [req.data for req in peer.streams_to_open(now=NOW)]
    frames += [dg.data for dg in peer.datagrams_to_send(now=NOW)]
    n.drain()
    bodies = [n.sealer.open(n.sealer.security, f[5:], n.wall()) for f in frames]
    # Unauthenticated seeds are real frames of another cluster key: the node must drop
    # them and everything mutated from them (authentic ones would rightly be accepted).
    stranger = Keyring([generate_key()])
    kinds = [FrameType(f[3]) for f in frames]
    foreign = [stranger.seal_frame(k, b, n.wall()) for k, b in zip(kinds, bodies, strict=True)]
    msg_parts = [b[len(n.prefix) :] for b in bodies if b.startswith(n.prefix)]
    line = json.dumps({"op": "members"}).encode()
    record = {
        "seq": 1,
        "boot": 1.0,
        "at": 2.0,
        "op": "join",
        "node": "a",
        "node_id": "00" * 16,
        "cluster": "c",
        "members": 1,
    }
    batch = {
        "op": "traces",
        "node_id": "00" * 16,
        "node": "a",
        "cluster": "c",
        "boot": 1.0,
        "sent": 2.0,
        "records": [record],
    }
    sealed_line = SealedCodec([n.key]).encode({"op": "members"})
    return {
        "frame_header": frames,
        "frame_body": bodies,
        "keyring_open": frames,
        "messages": msg_parts,
        "control_line": [line, b'{"op":"fact_set","key":"a","value":"b"}'],
        "control_sealed": [sealed_line],
        "collector": [json.dumps(batch).encode(), json.dumps(record).encode()],
        "deliveries_store": [b"{}", b"[]"],
        "node_unauth": foreign,
        "node_forged": [b"\x00" + f[5:] for f in foreign] + [b"\x01" + f[5:] for f in foreign],
        "node_sealed": msg_parts,
    }
