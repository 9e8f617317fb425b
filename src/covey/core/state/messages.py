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
from typing import Any, ClassVar

from covey.core.records import record
from covey.core.wire.fields import (
    ArrayMessage,
    boolean,
    list_of,
    node_id,
    optional,
    row,
    uint,
    uint64,
)
from covey.core.wire.messages import MalformedMessage

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


# ------------------------------------------------------------------ field checkers


def _key(v: Any, what: str) -> str:
    try:
        return check_key(v, what)
    except LimitError as exc:
        raise MalformedMessage(str(exc)) from None


def _value(v: Any, what: str) -> str:
    try:
        return check_value(v, what)
    except LimitError as exc:
        raise MalformedMessage(str(exc)) from None


_counter = uint  # sequence numbers and Lamport times: below 2^63
_entry = row(node_id, _key, _counter, optional(_value))


# ------------------------------------------------------------------ facts


@record
class FactUpdate(ArrayMessage):
    """One fact of ``origin``, set (or deleted, ``value=None``) at its counter ``seq``."""

    TYPE: ClassVar[int] = 50
    FIELDS = (node_id, _counter, _key, optional(_value))
    origin: bytes
    seq: int
    key: str
    value: str | None


@record
class FactNotice(ArrayMessage):
    """``origin`` published news up to ``seq`` too big for a datagram: pull it."""

    TYPE: ClassVar[int] = 51
    FIELDS = (node_id, _counter)
    origin: bytes
    seq: int


@record
class FactPull(ArrayMessage):
    """Stream request: send me every fact (deletions included) of these origins."""

    TYPE: ClassVar[int] = 52
    FIELDS = (list_of(node_id, 4096),)
    origins: tuple[bytes, ...]


@record
class FactBatch(ArrayMessage):
    """Stream reply: facts as (origin, key, seq, value or None) entries."""

    TYPE: ClassVar[int] = 53
    FIELDS = (list_of(_entry, MAX_BATCH),)
    entries: tuple[tuple[bytes, str, int, str | None], ...]


# ------------------------------------------------------------------ settings and actions


@record
class SettingUpdate(ArrayMessage):
    """A cluster-wide setting written by ``writer`` at Lamport time ``lamport``."""

    TYPE: ClassVar[int] = 54
    FIELDS = (_key, optional(_value), _counter, node_id)
    name: str
    value: str | None
    lamport: int
    writer: bytes

    @property
    def stamp(self) -> tuple[int, bytes]:
        """The order of writes: Lamport time, then writer id as the tie-break."""
        return (self.lamport, self.writer)


@record
class ActionRequest(ArrayMessage):
    """A cluster-wide action: every live node runs handler ``name`` once with ``payload``."""

    TYPE: ClassVar[int] = 55
    FIELDS = (node_id, node_id, _counter, _key, _value)
    action_id: bytes
    origin: bytes
    lamport: int
    name: str
    payload: str


@record
class ActionResult(ArrayMessage):
    """What the sending node's handler made of action ``action_id`` (sent to its origin)."""

    TYPE: ClassVar[int] = 56
    FIELDS = (node_id, boolean, _value)
    action_id: bytes
    ok: bool
    result: str


@record
class ActionAck(ArrayMessage):
    """The origin took the result of action ``action_id`` (stream reply)."""

    TYPE: ClassVar[int] = 57
    FIELDS = (node_id,)
    action_id: bytes


@record
class FactDigest(ArrayMessage):
    """Stream request: my digest, (origin, highest seq, fingerprint) per origin; the reply
    is a FactBatch of every origin whose facts differ from it."""

    TYPE: ClassVar[int] = 58
    FIELDS = (list_of(row(node_id, _counter, uint64), MAX_BATCH),)
    digest: tuple[tuple[bytes, int, int], ...]
