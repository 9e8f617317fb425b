"""What deliveries hand out: durable effects (records to store) and events (news).

Effects are written by the runtime (a SQLite or Redis store, later) or the simulator's
disk *before* any message or event of the same step leaves the node, so that:

* an owner that restarts is rebuilt from its last :class:`SaveDelivery` per delivery,
  and never re-does a change whose message already went out;
* a receiver's :class:`SaveHandled` (``started``) is on disk before its handler runs, so
  a handler runs at most once per delivery stage per node, across restarts.
"""

from __future__ import annotations

from typing import Any

from covey.core.deliveries.model import DeliveryRecord, HandledRecord
from covey.core.effects import Effect
from covey.core.plugin import ExtensionEvent
from covey.core.records import record


@record
class SaveDelivery(Effect):
    """Store ``record`` as the owner's record of its delivery (replacing an older version)."""

    record: DeliveryRecord


@record
class SaveHandled(Effect):
    """Store ``record`` as this receiver's record of one (delivery, stage)."""

    record: HandledRecord


@record
class DeliveryStageComplete(ExtensionEvent):
    """A stage of a delivery this node owns holds its K receipts."""

    record: DeliveryRecord
    stage: int

    def to_json(self) -> dict[str, Any]:
        p = self.record.progress[self.stage]
        return {
            "event": "delivery_stage_complete",
            "id": self.record.id.hex(),
            "stage": self.stage,
            "receipts": [r.node.hex() for r in p.receipts],
        }


@record
class DeliveryReceiptAccepted(ExtensionEvent):
    """A receipt was accepted for a delivery this node owns (its record holds it)."""

    record: DeliveryRecord
    stage: int
    node: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "delivery_receipt",
            "id": self.record.id.hex(),
            "stage": self.stage,
            "node": self.node.hex(),
        }


@record
class DeliveryComplete(ExtensionEvent):
    """A delivery this node owns holds the receipts of every stage."""

    record: DeliveryRecord

    def to_json(self) -> dict[str, Any]:
        return {"event": "delivery_complete", "id": self.record.id.hex()}


@record
class DeliveryFailed(ExtensionEvent):
    """A delivery this node owns ended without completing (failed or cancelled)."""

    record: DeliveryRecord

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "delivery_failed",
            "id": self.record.id.hex(),
            "state": self.record.state.value,
            "stage": self.record.stage,
            "reason": self.record.reason,
        }


@record
class DeliveryRequested(ExtensionEvent):
    """A request to handle, for a receiver with no handler callback (a command, say).

    Its ``started`` record is already durable when the event is out: the caller runs its
    handler once and answers with ``Deliveries.answer``. ``deadline`` is wall seconds.
    """

    delivery: bytes
    stage: int
    owner: bytes
    deadline: float
    payload: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "delivery_requested",
            "id": self.delivery.hex(),
            "stage": self.stage,
            "owner": self.owner.hex(),
            "deadline": self.deadline,
            "size": len(self.payload),
        }
