"""Protocol messages: frozen dataclasses and their msgpack array forms.

Every message travels as a msgpack array whose first element is its type number
(``docs/protocol.md`` lists them). :func:`decode_message` validates shapes strictly and
raises :class:`MalformedMessage` on anything off; the receive path turns that into a
counted drop, never an exception to its caller.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from covey.core.plugin import FIRST_EXTENSION_TYPE, ExtensionMessage
from covey.core.records import record
from covey.core.types import Address, BeaconState, MemberState

NODE_ID_LEN = 16
_MEMBER_STATES = tuple(MemberState)
_MAX_MEMBER_STATE = len(_MEMBER_STATES) - 1
_MAX_BEACON_STATE = max(BeaconState)


class MsgType(enum.IntEnum):
    """Message type numbers (stable on the wire)."""

    PING = 1
    ACK = 2
    NACK = 3
    PING_REQ = 4
    ALIVE = 5
    SUSPECT = 6
    DEAD = 7
    PUSH_PULL = 8
    BEACON = 9


class MalformedMessage(ValueError):
    """A message's shape or field types are wrong."""


class UnknownMessage(ValueError):
    """A well-formed array with a type number this version does not know."""


@record
class Ping:
    """Direct probe; ``target`` guards against a stale address reaching another node."""

    seq: int
    target: bytes


@record
class Ack:
    """Answer to a ping (or relayed answer to a ping-req)."""

    seq: int


@record
class Nack:
    """Lifeguard: the intermediary is alive but the target did not answer it."""

    seq: int


@record
class PingReq:
    """Ask an intermediary to probe ``target`` at ``address`` on our behalf."""

    seq: int
    target: bytes
    address: Address
    want_nack: bool


@record
class Alive:
    """A member is alive at ``incarnation``; ``tags`` is None when they did not fit."""

    incarnation: int
    node_id: bytes
    name: str
    address: Address
    tags: dict[str, str] | None


@record
class Suspect:
    """``sender`` suspects ``node_id`` at ``incarnation``."""

    incarnation: int
    node_id: bytes
    sender: bytes


@record
class Dead:
    """``sender`` declares ``node_id`` failed (or, with ``left``, gone by its own will)."""

    incarnation: int
    node_id: bytes
    sender: bytes
    left: bool


@record
class MemberRecord:
    """One member's full state inside a push-pull exchange."""

    node_id: bytes
    name: str
    address: Address
    incarnation: int
    state: MemberState
    #: None when the sender itself holds incomplete tags for this member.
    tags: dict[str, str] | None


@record
class PushPull:
    """Full-state exchange (TCP only): the sender's whole member table."""

    join: bool
    reply: bool
    members: tuple[MemberRecord, ...]
    #: Extension name -> that extension's state (sent only when some extension has state).
    ext: dict[str, Any] | None = None


@record
class Beacon:
    """Discovery beacon (seed 004): who I am, where, in which state."""

    node_id: bytes
    name: str
    address: Address
    state: BeaconState
    incarnation: int


Message = (
    Ping | Ack | Nack | PingReq | Alive | Suspect | Dead | PushPull | Beacon | ExtensionMessage
)


def encode_message(msg: Message) -> list[Any]:
    """Return the msgpack-ready array form of ``msg``."""
    match msg:
        case Ping(seq, target):
            return [MsgType.PING, seq, target]
        case Ack(seq):
            return [MsgType.ACK, seq]
        case Nack(seq):
            return [MsgType.NACK, seq]
        case PingReq(seq, target, (host, port), want_nack):
            return [MsgType.PING_REQ, seq, target, host, port, want_nack]
        case Alive(inc, node_id, name, (host, port), tags):
            return [MsgType.ALIVE, inc, node_id, name, host, port, tags]
        case Suspect(inc, node_id, sender):
            return [MsgType.SUSPECT, inc, node_id, sender]
        case Dead(inc, node_id, sender, left):
            return [MsgType.DEAD, inc, node_id, sender, left]
        case PushPull(join, reply, members, ext):
            arr = [MsgType.PUSH_PULL, join, reply, [_record_array(m) for m in members]]
            if ext:
                arr.append(ext)
            return arr
        case ExtensionMessage():
            return [msg.TYPE, *msg.to_array()]
        case Beacon(node_id, name, (host, port), state, inc):
            return [MsgType.BEACON, node_id, name, host, port, int(state), inc]
    raise TypeError(f"not a message: {msg!r}")


def _record_array(m: MemberRecord) -> list[Any]:
    return [m.node_id, m.name, m.address[0], m.address[1], m.incarnation, int(m.state), m.tags]


def decode_message(
    arr: Any, extensions: Mapping[int, type[ExtensionMessage]] | None = None
) -> Message:
    """Build a message from its array form; raise on any deviation from the spec.

    ``extensions`` maps the extension type numbers one node registered (see
    :class:`MessageTypes`) to their classes; without it only membership messages decode.
    """
    if not isinstance(arr, list) or not arr:
        raise MalformedMessage("message is not a non-empty array")
    kind = arr[0]
    if type(kind) is not int:
        raise MalformedMessage("message type is not an integer")
    ext = extensions.get(kind) if extensions is not None else None
    if ext is not None:
        return ext.from_array(arr[1:])
    try:
        mtype = MsgType(kind)
    except ValueError:
        raise UnknownMessage(f"unknown message type {kind}") from None
    decoder = _DECODERS[mtype]
    return decoder(arr)


class MessageTypes:
    """One node's table of extension message types (numbers >= 32), owned by that node.

    There is no process-wide registry: two nodes in one process (a simulation, a test)
    may run different capabilities whose numbers would otherwise collide.
    """

    def __init__(self) -> None:
        self._by_type: dict[int, type[ExtensionMessage]] = {}

    def add(self, cls: type[ExtensionMessage]) -> None:
        """Register ``cls`` under its ``TYPE`` (>= 32, not yet taken on this node)."""
        if cls.TYPE < FIRST_EXTENSION_TYPE:
            raise ValueError(f"extension message types start at {FIRST_EXTENSION_TYPE}")
        known = self._by_type.get(cls.TYPE)
        if known is not None and known is not cls:
            raise ValueError(f"message type {cls.TYPE} is taken by {known.__name__}")
        self._by_type[cls.TYPE] = cls

    def __contains__(self, type_number: object) -> bool:
        return type_number in self._by_type

    def decode(self, arr: Any) -> Message:
        """:func:`decode_message` with this node's extension types."""
        return decode_message(arr, self._by_type)


def _want(arr: list[Any], n: int) -> None:
    if len(arr) != n:
        raise MalformedMessage(f"type {arr[0]} wants {n} fields, got {len(arr)}")


def _uint(v: Any, bits: int = 64) -> int:
    if type(v) is not int or v < 0 or v >= 1 << bits:
        raise MalformedMessage(f"not an unsigned integer: {v!r}")
    return v


def _incarnation(v: Any) -> int:
    # One bit of headroom: refuting the largest value must still encode as a uint64.
    return _uint(v, 63)


def _node_id(v: Any) -> bytes:
    if type(v) is not bytes or len(v) != NODE_ID_LEN:
        raise MalformedMessage("node id is not 16 bytes")
    return v


def _text(v: Any, limit: int = 255) -> str:
    # The limit is in UTF-8 octets: that is what has to fit a datagram.
    if type(v) is not str or (len(v) > limit // 4 and len(v.encode()) > limit):
        raise MalformedMessage("bad text field")
    return v


def _address(host: Any, port: Any) -> Address:
    h = _text(host)
    p = _uint(port, 16)
    if not h or p == 0:
        raise MalformedMessage("bad address")
    return (h, p)


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise MalformedMessage("not a boolean")
    return v


def _tags(v: Any) -> dict[str, str]:
    if type(v) is not dict:
        raise MalformedMessage("tags are not a map")
    for k, val in v.items():
        if type(k) is not str or type(val) is not str:
            raise MalformedMessage("tag keys and values must be text")
    return v


def _dec_ping(a: list[Any]) -> Message:
    _want(a, 3)
    return Ping(_uint(a[1], 32), _node_id(a[2]))


def _dec_ack(a: list[Any]) -> Message:
    _want(a, 2)
    return Ack(_uint(a[1], 32))


def _dec_nack(a: list[Any]) -> Message:
    _want(a, 2)
    return Nack(_uint(a[1], 32))


def _dec_ping_req(a: list[Any]) -> Message:
    _want(a, 6)
    return PingReq(_uint(a[1], 32), _node_id(a[2]), _address(a[3], a[4]), _bool(a[5]))


def _dec_alive(a: list[Any]) -> Message:
    _want(a, 7)
    tags = None if a[6] is None else _tags(a[6])
    return Alive(_incarnation(a[1]), _node_id(a[2]), _text(a[3]), _address(a[4], a[5]), tags)


def _dec_suspect(a: list[Any]) -> Message:
    _want(a, 4)
    return Suspect(_incarnation(a[1]), _node_id(a[2]), _node_id(a[3]))


def _dec_dead(a: list[Any]) -> Message:
    _want(a, 5)
    return Dead(_incarnation(a[1]), _node_id(a[2]), _node_id(a[3]), _bool(a[4]))


def _dec_record(r: Any) -> MemberRecord:
    if not isinstance(r, list) or len(r) != 7:
        raise MalformedMessage("bad member record")
    state = _uint(r[5], 8)
    if state > _MAX_MEMBER_STATE:
        raise MalformedMessage("bad member state")
    tags = None if r[6] is None else _tags(r[6])
    return MemberRecord(
        _node_id(r[0]),
        _text(r[1]),
        _address(r[2], r[3]),
        _incarnation(r[4]),
        _MEMBER_STATES[state],
        tags,
    )


def _dec_push_pull(a: list[Any]) -> Message:
    if len(a) != 4:
        _want(a, 5)
    if not isinstance(a[3], list):
        raise MalformedMessage("push-pull members is not an array")
    ext = a[4] if len(a) == 5 else None
    if ext is not None and (not isinstance(ext, dict) or not all(type(k) is str for k in ext)):
        raise MalformedMessage("push-pull extension state is not a map by name")
    return PushPull(_bool(a[1]), _bool(a[2]), tuple(_dec_record(r) for r in a[3]), ext)


def _dec_beacon(a: list[Any]) -> Message:
    _want(a, 7)
    state = _uint(a[5], 8)
    if state > _MAX_BEACON_STATE:
        raise MalformedMessage("bad beacon state")
    return Beacon(
        _node_id(a[1]), _text(a[2]), _address(a[3], a[4]), BeaconState(state), _incarnation(a[6])
    )


_DECODERS = {
    MsgType.PING: _dec_ping,
    MsgType.ACK: _dec_ack,
    MsgType.NACK: _dec_nack,
    MsgType.PING_REQ: _dec_ping_req,
    MsgType.ALIVE: _dec_alive,
    MsgType.SUSPECT: _dec_suspect,
    MsgType.DEAD: _dec_dead,
    MsgType.PUSH_PULL: _dec_push_pull,
    MsgType.BEACON: _dec_beacon,
}
