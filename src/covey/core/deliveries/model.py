"""The records of deliveries: what an owner stores per delivery and a receiver per request.

Every record is a frozen dataclass: a change makes a new record (``dataclasses.replace``),
which is what the durable effects carry, so a writer never sees a half-made change. Times
are *wall-clock* seconds (the capability adds the node's wall offset to its ``now``): they
travel to other nodes as deadlines and survive a restart of the owner, which a monotonic
clock would not.
"""

from __future__ import annotations

import enum
from dataclasses import replace
from typing import Any

from covey.core.deliveries.selectors import StageSpec
from covey.core.records import record

#: Largest payload of one delivery (octets); requests travel over a stream, not a datagram.
PAYLOAD_LIMIT = 1024 * 1024
#: Largest result a receipt carries (octets).
RESULT_LIMIT = 16 * 1024
#: Largest reason (failure, refusal, waiting) kept or sent (octets of UTF-8).
REASON_LIMIT = 200


def clip(reason: str) -> str:
    """Cut a reason to :data:`REASON_LIMIT` octets."""
    return reason.encode()[:REASON_LIMIT].decode(errors="ignore")


class DeliveryState(enum.Enum):
    """Where a delivery is: ``pending`` (not yet dispatched), ``stage`` (collecting
    receipts), and the three ends ``complete``, ``failed``, ``cancelled``."""

    PENDING = "pending"
    STAGE = "stage"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        """True for the three end states (never left again)."""
        return self in (DeliveryState.COMPLETE, DeliveryState.FAILED, DeliveryState.CANCELLED)


@record
class Ask:
    """A member asked for a receipt, who must answer by ``deadline`` (wall seconds)."""

    node: bytes
    deadline: float


@record
class ReceiptEntry:
    """An accepted receipt: from ``node``, with its ``result``, accepted at ``at``."""

    node: bytes
    result: bytes
    at: float


@record
class StageProgress:
    """One stage's progress.

    Attributes:
        asked: every member asked in this stage (in order; its receipt is welcome until K).
        waiting: the asks still outstanding (a subset of ``asked``).
        receipts: the accepted receipts (at most K, distinct nodes).
        refusals: ``(node, reason)`` of members that refused the request.
        refused: receipts this owner refused (not asked, wrong stage, beyond K).
    """

    asked: tuple[bytes, ...] = ()
    waiting: tuple[Ask, ...] = ()
    receipts: tuple[ReceiptEntry, ...] = ()
    refusals: tuple[tuple[bytes, str], ...] = ()
    refused: int = 0

    def answered(self) -> frozenset[bytes]:
        """Members whose receipt this stage holds."""
        return frozenset(r.node for r in self.receipts)

    def to_json(self, spec: StageSpec) -> dict[str, Any]:
        """The shape of ``covey deliver show --json``'s ``stages`` items."""
        return {
            "required": spec.required,
            "selector": str(spec.selector),
            "asked": [n.hex() for n in self.asked],
            "waiting": [{"node": a.node.hex(), "deadline": a.deadline} for a in self.waiting],
            "receipts": [
                {"node": r.node.hex(), "result": r.result.decode(errors="replace"), "at": r.at}
                for r in self.receipts
            ],
            "refusals": [{"node": n.hex(), "reason": why} for n, why in self.refusals],
            "refused": self.refused,
        }


@record
class DeliveryRecord:
    """Everything the owner knows of one delivery (what ``SaveDelivery`` stores).

    Attributes:
        id: 16 octets, random.
        owner: the creating node's id.
        payload: the octets handed to every receiver.
        stages: what each stage needs.
        created: when it was created.
        deadline: when the whole delivery fails if not complete (None: never).
        state: see :class:`DeliveryState`.
        stage: index of the current stage (``len(stages)`` once complete).
        progress: one :class:`StageProgress` per stage reached so far.
        due: when the scheduler must next act on it (its score; None once ended).
        reason: why it waits, or why it failed ("" otherwise).
        starved_since: since when no matching member at all could be asked (None: some could).
        backoff: the current wait between retries when too few members match.
        version: bumped by every change (a writer may skip an older one).
    """

    id: bytes
    owner: bytes
    payload: bytes
    stages: tuple[StageSpec, ...]
    created: float
    deadline: float | None = None
    state: DeliveryState = DeliveryState.PENDING
    stage: int = 0
    progress: tuple[StageProgress, ...] = ()
    due: float | None = None
    reason: str = ""
    starved_since: float | None = None
    backoff: float = 0.0
    version: int = 0

    @property
    def current(self) -> StageProgress:
        """The current stage's progress (empty before its first dispatch)."""
        if self.stage < len(self.progress):
            return self.progress[self.stage]
        return StageProgress()

    @property
    def spec(self) -> StageSpec:
        """The current stage's specification."""
        return self.stages[self.stage]

    def answered_before(self) -> frozenset[bytes]:
        """Members that answered an earlier stage."""
        return frozenset(n for p in self.progress[: self.stage] for n in p.answered())

    def with_current(self, progress: StageProgress, **changes: Any) -> DeliveryRecord:
        """A new version with the current stage's progress replaced (and ``changes``)."""
        stages = list(self.progress)
        while len(stages) <= self.stage:
            stages.append(StageProgress())
        stages[self.stage] = progress
        return self.changed(progress=tuple(stages), **changes)

    def changed(self, **changes: Any) -> DeliveryRecord:
        """A new version of the record with ``changes``."""
        return replace(self, version=self.version + 1, **changes)

    def to_json(self) -> dict[str, Any]:
        """The shape of ``covey deliver show --json``."""
        return {
            "id": self.id.hex(),
            "owner": self.owner.hex(),
            "state": self.state.value,
            "stage": self.stage,
            "reason": self.reason,
            "created": self.created,
            "deadline": self.deadline,
            "due": self.due,
            "size": len(self.payload),
            "stages": [
                (self.progress[i] if i < len(self.progress) else StageProgress()).to_json(spec)
                for i, spec in enumerate(self.stages)
            ],
        }


class HandledState(enum.Enum):
    """A receiver's record of one request: handler ``started``, or it ``answered`` with a
    receipt, or it ``refused`` (the handler said no, or the request expired)."""

    STARTED = "started"
    ANSWERED = "answered"
    REFUSED = "refused"


@record
class HandledRecord:
    """The receiver's durable "I handled it" record for one (delivery, stage).

    Written as ``started`` *before* the handler runs, so a handler runs at most once per
    delivery stage per node, across restarts; then ``answered`` / ``refused`` with what
    a repeated request is answered with.
    """

    delivery: bytes
    stage: int
    owner: bytes
    state: HandledState
    deadline: float
    result: bytes = b""
    reason: str = ""
    at: float = 0.0

    @property
    def key(self) -> tuple[bytes, int]:
        """(delivery id, stage)."""
        return (self.delivery, self.stage)
