"""Election messages (type numbers 40 to 46) and their msgpack array forms.

Every field is checked strictly by ``from_array``; anything off raises
:class:`~covey.core.wire.messages.MalformedMessage`, which the node turns into a counted drop.
The sender's node id is not repeated in the arrays: the frame header already carries it,
authenticated by the cluster key.

Vote requests and replies, heartbeats and their acks carry the sender's expected size as
the pair (``size_gen``, ``expected``): with a configured ``expected_votes`` the generation
is 0 and the pair must match exactly; with the tracked size, receivers adopt a higher pair
(:mod:`covey.core.election.size`).
"""

from __future__ import annotations

from typing import ClassVar

from covey.core.plugin import ExtensionMessage
from covey.core.records import record
from covey.core.wire.fields import ArrayMessage, boolean, node_id, one_of, text, uint

#: Largest panic reason carried on the wire (octets of UTF-8, truncated before sending).
REASON_LIMIT = 200
_ROLES = ("follower", "candidate", "leader")


def _leader_id(v: object, what: str) -> bytes:
    """A node id, or empty (no leader known)."""
    return b"" if v == b"" else node_id(v, what)


def clip_reason(reason: str) -> str:
    """Cut a panic reason to what one message carries."""
    raw = reason.encode()[:REASON_LIMIT]
    return raw.decode(errors="ignore")


@record
class VoteRequest(ArrayMessage):
    """A candidate asks for a vote in ``term`` (``pre``: a pre-vote, which changes nothing).

    Array: ``[40, term, pre, expected_votes, priority, size_gen]``.
    """

    TYPE: ClassVar[int] = 40
    FIELDS = (uint, boolean, uint, uint, uint)
    term: int
    pre: bool
    expected: int
    priority: int
    size_gen: int = 0


@record
class VoteReply(ArrayMessage):
    """The answer to a :class:`VoteRequest` for ``term``; ``voter_term`` is the voter's own.

    Array: ``[41, term, pre, granted, expected_votes, voter_term, size_gen]``.
    """

    TYPE: ClassVar[int] = 41
    FIELDS = (uint, boolean, boolean, uint, uint, uint)
    term: int
    pre: bool
    granted: bool
    expected: int
    voter_term: int
    size_gen: int = 0


@record
class Heartbeat(ArrayMessage):
    """The leader of ``term`` is alive (sent to every member each heartbeat interval).

    ``panic`` is the cluster's panic reason ("" when normal), ``recover_gen`` counts the
    operator recoveries the leader applied, ``stable`` tells whether leadership is stable.
    Array: ``[42, term, seq, expected_votes, panic, recover_gen, stable, size_gen]``.
    """

    TYPE: ClassVar[int] = 42
    FIELDS = (uint, uint, uint, text(REASON_LIMIT), uint, boolean, uint)
    term: int
    seq: int
    expected: int
    panic: str
    recover_gen: int
    stable: bool
    size_gen: int = 0


@record
class HeartbeatAck(ArrayMessage):
    """A member's answer to heartbeat ``seq`` of ``term`` (the member heartbeat of seed 001).

    ``ok`` is False when the member refuses the leader (its own ``member_term`` is higher).
    ``panic``/``panic_gen`` report the member's own panic, so the leader adopts it;
    ``expected``/``size_gen`` the member's expected size (0/0: none given), so a leader
    behind it catches up. Array: ``[43, term, seq, member_term, ok, panic, panic_gen,
    expected, size_gen]``.
    """

    TYPE: ClassVar[int] = 43
    FIELDS = (uint, uint, uint, boolean, text(REASON_LIMIT), uint, uint, uint)
    term: int
    seq: int
    member_term: int
    ok: bool
    panic: str
    panic_gen: int
    expected: int = 0
    size_gen: int = 0


@record
class Recover(ArrayMessage):
    """An operator's ``covey recover``, forwarded to the leader. Array: ``[44, recover_gen]``."""

    TYPE: ClassVar[int] = 44
    FIELDS = (uint,)
    recover_gen: int


@record
class Info(ArrayMessage):
    """A node's election view, sent on ``covey candidate`` (seed 003's CmdCandidate).

    Array: ``[45, term, leader_id (16 octets or empty), role, expected_votes, priority]``.
    """

    TYPE: ClassVar[int] = 45
    FIELDS = (uint, _leader_id, one_of(*_ROLES), uint, uint)
    term: int
    leader_id: bytes
    role: str
    expected: int
    priority: int


@record
class Expect(ArrayMessage):
    """A lowered expected size (tracked rule): ``covey expect N``, or a node leaving.

    ``leaving`` says the sender is leaving gracefully and takes no part any more.
    Array: ``[46, size_gen, expected, leaving]``.
    """

    TYPE: ClassVar[int] = 46
    FIELDS = (uint, uint, boolean)
    size_gen: int
    expected: int
    leaving: bool


ELECTION_MESSAGES: tuple[type[ExtensionMessage], ...] = (
    VoteRequest,
    VoteReply,
    Heartbeat,
    HeartbeatAck,
    Recover,
    Info,
    Expect,
)
