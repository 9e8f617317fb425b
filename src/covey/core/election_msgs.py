"""Election messages (type numbers 40 to 45) and their msgpack array forms.

Every field is checked strictly by ``from_array``; anything off raises
:class:`~covey.core.messages.MalformedMessage`, which the node turns into a counted drop.
The sender's node id is not repeated in the arrays: the frame header already carries it,
authenticated by the cluster key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from .extension import ExtensionMessage
from .messages import NODE_ID_LEN, MalformedMessage

#: Largest panic reason carried on the wire (octets of UTF-8, truncated before sending).
REASON_LIMIT = 200
_ROLES = ("follower", "candidate", "leader")


def _uint(v: Any, what: str) -> int:
    if type(v) is not int or not 0 <= v < 1 << 63:
        raise MalformedMessage(f"{what}: not an unsigned integer")
    return v


def _bool(v: Any, what: str) -> bool:
    if type(v) is not bool:
        raise MalformedMessage(f"{what}: not a boolean")
    return v


def _text(v: Any, what: str, limit: int = REASON_LIMIT) -> str:
    if type(v) is not str or len(v.encode()) > limit:
        raise MalformedMessage(f"{what}: not text of at most {limit} octets")
    return v


def _fields(cls: type[ExtensionMessage], fields: list[Any], n: int) -> None:
    if type(fields) is not list or len(fields) != n:
        raise MalformedMessage(f"{cls.__name__} wants {n} fields")


def clip_reason(reason: str) -> str:
    """Cut a panic reason to what one message carries."""
    raw = reason.encode()[:REASON_LIMIT]
    return raw.decode(errors="ignore")


@dataclass(frozen=True, slots=True)
class VoteRequest(ExtensionMessage):
    """A candidate asks for a vote in ``term`` (``pre``: a pre-vote, which changes nothing).

    Array: ``[40, term, pre, expected_votes, priority]``.
    """

    TYPE: ClassVar[int] = 40
    term: int
    pre: bool
    expected: int
    priority: int

    def to_array(self) -> list[Any]:
        return [self.term, self.pre, self.expected, self.priority]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        _fields(cls, fields, 4)
        return cls(
            _uint(fields[0], "term"),
            _bool(fields[1], "pre"),
            _uint(fields[2], "expected"),
            _uint(fields[3], "priority"),
        )


@dataclass(frozen=True, slots=True)
class VoteReply(ExtensionMessage):
    """The answer to a :class:`VoteRequest` for ``term``; ``voter_term`` is the voter's own.

    Array: ``[41, term, pre, granted, expected_votes, voter_term]``.
    """

    TYPE: ClassVar[int] = 41
    term: int
    pre: bool
    granted: bool
    expected: int
    voter_term: int

    def to_array(self) -> list[Any]:
        return [self.term, self.pre, self.granted, self.expected, self.voter_term]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        _fields(cls, fields, 5)
        return cls(
            _uint(fields[0], "term"),
            _bool(fields[1], "pre"),
            _bool(fields[2], "granted"),
            _uint(fields[3], "expected"),
            _uint(fields[4], "voter_term"),
        )


@dataclass(frozen=True, slots=True)
class Heartbeat(ExtensionMessage):
    """The leader of ``term`` is alive (sent to every member each heartbeat interval).

    ``panic`` is the cluster's panic reason ("" when normal), ``recover_gen`` counts the
    operator recoveries the leader applied, ``stable`` tells whether leadership is stable.
    Array: ``[42, term, seq, expected_votes, panic, recover_gen, stable]``.
    """

    TYPE: ClassVar[int] = 42
    term: int
    seq: int
    expected: int
    panic: str
    recover_gen: int
    stable: bool

    def to_array(self) -> list[Any]:
        return [self.term, self.seq, self.expected, self.panic, self.recover_gen, self.stable]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        _fields(cls, fields, 6)
        return cls(
            _uint(fields[0], "term"),
            _uint(fields[1], "seq"),
            _uint(fields[2], "expected"),
            _text(fields[3], "panic"),
            _uint(fields[4], "recover_gen"),
            _bool(fields[5], "stable"),
        )


@dataclass(frozen=True, slots=True)
class HeartbeatAck(ExtensionMessage):
    """A member's answer to heartbeat ``seq`` of ``term`` (the member heartbeat of seed 001).

    ``ok`` is False when the member refuses the leader (its own ``member_term`` is higher).
    ``panic``/``panic_gen`` report the member's own panic, so the leader adopts it.
    Array: ``[43, term, seq, member_term, ok, panic, panic_gen]``.
    """

    TYPE: ClassVar[int] = 43
    term: int
    seq: int
    member_term: int
    ok: bool
    panic: str
    panic_gen: int

    def to_array(self) -> list[Any]:
        return [self.term, self.seq, self.member_term, self.ok, self.panic, self.panic_gen]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        _fields(cls, fields, 6)
        return cls(
            _uint(fields[0], "term"),
            _uint(fields[1], "seq"),
            _uint(fields[2], "member_term"),
            _bool(fields[3], "ok"),
            _text(fields[4], "panic"),
            _uint(fields[5], "panic_gen"),
        )


@dataclass(frozen=True, slots=True)
class Recover(ExtensionMessage):
    """An operator's ``covey recover``, forwarded to the leader. Array: ``[44, recover_gen]``."""

    TYPE: ClassVar[int] = 44
    recover_gen: int

    def to_array(self) -> list[Any]:
        return [self.recover_gen]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        _fields(cls, fields, 1)
        return cls(_uint(fields[0], "recover_gen"))


@dataclass(frozen=True, slots=True)
class Info(ExtensionMessage):
    """A node's election view, sent on ``covey candidate`` (seed 003's CmdCandidate).

    Array: ``[45, term, leader_id (16 octets or empty), role, expected_votes, priority]``.
    """

    TYPE: ClassVar[int] = 45
    term: int
    leader_id: bytes
    role: str
    expected: int
    priority: int

    def to_array(self) -> list[Any]:
        return [self.term, self.leader_id, self.role, self.expected, self.priority]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        _fields(cls, fields, 5)
        leader = fields[1]
        if type(leader) is not bytes or len(leader) not in (0, NODE_ID_LEN):
            raise MalformedMessage("leader_id: not a node id")
        if fields[2] not in _ROLES:
            raise MalformedMessage("role: unknown")
        return cls(
            _uint(fields[0], "term"),
            leader,
            fields[2],
            _uint(fields[3], "expected"),
            _uint(fields[4], "priority"),
        )


ELECTION_MESSAGES: tuple[type[ExtensionMessage], ...] = (
    VoteRequest,
    VoteReply,
    Heartbeat,
    HeartbeatAck,
    Recover,
    Info,
)
