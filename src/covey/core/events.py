"""Events handed out by the core: membership changes and trace records.

Events are frozen, slotted dataclasses; the caller drains them with ``Node.pop_events()``.
"""

from __future__ import annotations

import enum

from covey.core.member import MemberInfo
from covey.core.plugin import ExtensionEvent
from covey.core.records import record


@record
class MemberEvent:
    """Base of every membership event: which member, as seen when it happened."""

    member: MemberInfo
    at: float


@record
class MemberJoined(MemberEvent):
    """A member became known (or came back after having left)."""


@record
class MemberUpdated(MemberEvent):
    """A live member's tags or address changed."""


@record
class MemberSuspect(MemberEvent):
    """A member did not answer probes and is suspected; it may still refute."""


@record
class MemberFailed(MemberEvent):
    """A member is considered failed (suspicion expired, or its port refused us)."""


@record
class MemberLeft(MemberEvent):
    """A member left gracefully (EXIT beacon or leave message)."""


@record
class MemberRecovered(MemberEvent):
    """A suspect or failed member proved it is alive."""


@record
class MemberReaped(MemberEvent):
    """A failed or left member was forgotten after its retention time."""


class TraceOp(enum.Enum):
    """Trace operations (seed 003's MonOp); later issues add the leader ones."""

    JOIN = "join"
    PROBE = "probe"
    REBOOT = "reboot"
    EXIT = "exit"
    REFUTE = "refute"
    PUSH_PULL = "push_pull"
    LEADER_START = "leader_start"
    LEADER_HEART = "leader_heart"
    LEADER_DELTA = "leader_delta"
    ELECTION = "election"
    FENCE = "fence"
    PANIC = "panic"
    RECOVER = "recover"


@record
class TraceRecord:
    """One trace record, destined for the per-process ring buffer.

    Attributes:
        op: what happened.
        at: the core's ``now`` when it happened.
        node: the name of the node the record is about.
        detail: a short free-form note.
        n: a number that goes with it (member count, incarnation, ...).
    """

    op: TraceOp
    at: float
    node: str
    detail: str = ""
    n: int = 0


@record
class NameConflict:
    """Two live nodes claim one name (memberlist's ``conflict`` delegate).

    Names are labels; the table is keyed by node id. The first live holder of a name
    keeps it: an alive message from another node id, at another address, claiming a name
    a live member holds is dropped (``refused`` False: this node ignored ``claimant``).
    A node whose join is answered with a live holder of its own name is the newer
    claimant (``refused`` True): it must not stay in the cluster under that name.

    Attributes:
        name: the name both claim.
        holder: node id of the live holder.
        holder_address: where the holder is.
        claimant: node id of the newer claimant.
        refused: True when this node is the claimant, told by its join's answer.
        at: monotonic time.
    """

    name: str
    holder: bytes
    holder_address: tuple[str, int]
    claimant: bytes
    refused: bool
    at: float


Event = MemberEvent | TraceRecord | NameConflict | ExtensionEvent
