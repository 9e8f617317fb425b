"""Messages of the shared-state features (types 50-58) and the limits they enforce.

Every message is a msgpack array ``[type, fields...]`` (see docs/protocol.md, "Shared
state"). ``from_array`` checks every field and raises :class:`MalformedMessage` on any
deviation, so a bad datagram is dropped and counted by the node, never half-applied.

=====  ==============  ==========================================================
type   message         fields
=====  ==============  ==========================================================
50     FactUpdate      origin id, seq, key, value (text, or nil = deleted)
51     FactNotice      origin id, seq (news too big for a datagram: pull it)
52     FactPull        [origin id, ...] (stream request: send me these nodes' facts)
53     FactBatch       [[origin id, key, seq, value|nil], ...] (stream reply)
54     SettingUpdate   name, value (text or nil), lamport, writer id
55     ActionRequest   action id, origin id, lamport, name, payload
56     ActionResult    action id, ok (bool), result text (stream request to the origin)
57     ActionAck       action id (stream reply)
58     FactDigest      [[origin id, seq, fingerprint], ...] (stream request; reply FactBatch)
=====  ==============  ==========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from .extension import ExtensionMessage
from .messages import MalformedMessage

#: Longest fact key, setting name or action name, in octets of UTF-8.
KEY_LIMIT = 128
#: Longest fact value, setting value, action payload or action result, in octets of UTF-8.
VALUE_LIMIT = 1024
#: Most facts (keys with a value) one node may publish.
MAX_KEYS = 256
#: Most entries a FactBatch may carry (every key of many nodes, deletions included).
MAX_BATCH = 65536
#: Largest sequence number / Lamport time accepted (fits msgpack uint64).
MAX_COUNTER = (1 << 63) - 1

# Keys double as file names in the exporter's tree: no '/', no leading dot, printable.
_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+=-]*")


class LimitError(ValueError):
    """A fact, setting or action is refused by a local caller; the message says why."""


def check_key(key: object, what: str = "key") -> str:
    """Return ``key`` if it is a valid fact key / setting name, else raise LimitError."""
    if not isinstance(key, str):
        raise LimitError(f"{what}: must be text")
    size = len(key.encode())
    if size > KEY_LIMIT:
        raise LimitError(f"{what}: {size} octets, limit {KEY_LIMIT}")
    if not _KEY_RE.fullmatch(key):
        raise LimitError(
            f"{what}: {key!r} must be letters, digits and _ . : @ + = - (not starting with . or -)"
        )
    return key


def check_value(value: object, what: str = "value") -> str:
    """Return ``value`` if it is text within :data:`VALUE_LIMIT` octets, else raise."""
    if not isinstance(value, str):
        raise LimitError(f"{what}: must be text")
    size = len(value.encode())
    if size > VALUE_LIMIT:
        raise LimitError(f"{what}: {size} octets, limit {VALUE_LIMIT}")
    if "\x00" in value:
        raise LimitError(f"{what}: must not contain NUL")
    return value


# ------------------------------------------------------------------ field decoders


def _id(v: Any) -> bytes:
    if type(v) is not bytes or len(v) != 16:
        raise MalformedMessage("bad node or action id")
    return v


def _counter(v: Any) -> int:
    if type(v) is not int or not 0 <= v <= MAX_COUNTER:
        raise MalformedMessage("bad counter")
    return v


def _key(v: Any) -> str:
    try:
        return check_key(v)
    except LimitError as exc:
        raise MalformedMessage(str(exc)) from None


def _value(v: Any, *, nil: bool = True) -> str | None:
    if v is None and nil:
        return None
    try:
        return check_value(v)
    except LimitError as exc:
        raise MalformedMessage(str(exc)) from None


def _fields(fields: Any, n: int) -> list[Any]:
    if not isinstance(fields, list) or len(fields) != n:
        raise MalformedMessage(f"want {n} fields")
    return fields


# ------------------------------------------------------------------ facts


@dataclass(frozen=True, slots=True)
class FactUpdate(ExtensionMessage):
    """One fact of ``origin``, set (or deleted, ``value=None``) at its counter ``seq``."""

    TYPE: ClassVar[int] = 50
    origin: bytes
    seq: int
    key: str
    value: str | None

    def to_array(self) -> list[Any]:
        return [self.origin, self.seq, self.key, self.value]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        f = _fields(fields, 4)
        return cls(_id(f[0]), _counter(f[1]), _key(f[2]), _value(f[3]))


@dataclass(frozen=True, slots=True)
class FactNotice(ExtensionMessage):
    """``origin`` published news up to ``seq`` too big for a datagram: pull it."""

    TYPE: ClassVar[int] = 51
    origin: bytes
    seq: int

    def to_array(self) -> list[Any]:
        return [self.origin, self.seq]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        f = _fields(fields, 2)
        return cls(_id(f[0]), _counter(f[1]))


@dataclass(frozen=True, slots=True)
class FactPull(ExtensionMessage):
    """Stream request: send me every fact (deletions included) of these origins."""

    TYPE: ClassVar[int] = 52
    origins: tuple[bytes, ...]

    def to_array(self) -> list[Any]:
        return [list(self.origins)]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        f = _fields(fields, 1)
        if not isinstance(f[0], list) or len(f[0]) > 4096:
            raise MalformedMessage("fact pull wants a list of ids")
        return cls(tuple(_id(x) for x in f[0]))


@dataclass(frozen=True, slots=True)
class FactBatch(ExtensionMessage):
    """Stream reply: facts as (origin, key, seq, value or None) entries."""

    TYPE: ClassVar[int] = 53
    entries: tuple[tuple[bytes, str, int, str | None], ...]

    def to_array(self) -> list[Any]:
        return [[list(e) for e in self.entries]]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        f = _fields(fields, 1)
        if not isinstance(f[0], list) or len(f[0]) > MAX_BATCH:
            raise MalformedMessage("fact batch wants a list of entries")
        out = []
        for e in f[0]:
            e = _fields(e, 4)
            out.append((_id(e[0]), _key(e[1]), _counter(e[2]), _value(e[3])))
        return cls(tuple(out))


# ------------------------------------------------------------------ settings and actions


@dataclass(frozen=True, slots=True)
class SettingUpdate(ExtensionMessage):
    """A cluster-wide setting written by ``writer`` at Lamport time ``lamport``."""

    TYPE: ClassVar[int] = 54
    name: str
    value: str | None
    lamport: int
    writer: bytes

    def to_array(self) -> list[Any]:
        return [self.name, self.value, self.lamport, self.writer]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        f = _fields(fields, 4)
        return cls(_key(f[0]), _value(f[1]), _counter(f[2]), _id(f[3]))

    @property
    def stamp(self) -> tuple[int, bytes]:
        """The order of writes: Lamport time, then writer id as the tie-break."""
        return (self.lamport, self.writer)


@dataclass(frozen=True, slots=True)
class ActionRequest(ExtensionMessage):
    """A cluster-wide action: every live node runs handler ``name`` once with ``payload``."""

    TYPE: ClassVar[int] = 55
    action_id: bytes
    origin: bytes
    lamport: int
    name: str
    payload: str

    def to_array(self) -> list[Any]:
        return [self.action_id, self.origin, self.lamport, self.name, self.payload]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        f = _fields(fields, 5)
        payload = _value(f[4], nil=False)
        assert payload is not None
        return cls(_id(f[0]), _id(f[1]), _counter(f[2]), _key(f[3]), payload)


@dataclass(frozen=True, slots=True)
class ActionResult(ExtensionMessage):
    """What the sending node's handler made of action ``action_id`` (sent to its origin)."""

    TYPE: ClassVar[int] = 56
    action_id: bytes
    ok: bool
    result: str

    def to_array(self) -> list[Any]:
        return [self.action_id, self.ok, self.result]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        f = _fields(fields, 3)
        if type(f[1]) is not bool:
            raise MalformedMessage("bad ok flag")
        result = _value(f[2], nil=False)
        assert result is not None
        return cls(_id(f[0]), f[1], result)


@dataclass(frozen=True, slots=True)
class ActionAck(ExtensionMessage):
    """The origin took the result of action ``action_id`` (stream reply)."""

    TYPE: ClassVar[int] = 57
    action_id: bytes

    def to_array(self) -> list[Any]:
        return [self.action_id]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        f = _fields(fields, 1)
        return cls(_id(f[0]))


@dataclass(frozen=True, slots=True)
class FactDigest(ExtensionMessage):
    """Stream request: my digest, (origin, highest seq, fingerprint) per origin; the reply
    is a FactBatch of every origin whose facts differ from it."""

    TYPE: ClassVar[int] = 58
    digest: tuple[tuple[bytes, int, int], ...]

    def to_array(self) -> list[Any]:
        return [[list(d) for d in self.digest]]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        f = _fields(fields, 1)
        if not isinstance(f[0], list) or len(f[0]) > MAX_BATCH:
            raise MalformedMessage("fact digest wants a list")
        out = []
        for d in f[0]:
            d = _fields(d, 3)
            out.append((_id(d[0]), _counter(d[1]), _fingerprint_field(d[2])))
        return cls(tuple(out))


def _fingerprint_field(v: Any) -> int:
    if type(v) is not int or not 0 <= v < (1 << 64):
        raise MalformedMessage("bad fingerprint")
    return v
