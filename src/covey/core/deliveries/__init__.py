"""Acknowledged deliveries (issue 11): payloads that collect receipts, stage by stage.

See :mod:`covey.core.deliveries.capability` for the theory of operation.
"""

from covey.core.deliveries.capability import Deliveries
from covey.core.deliveries.config import Answer, DeliveriesConfig, Handler, Refused, Unavailable
from covey.core.deliveries.effects import (
    DeliveryComplete,
    DeliveryFailed,
    DeliveryReceiptAccepted,
    DeliveryRequested,
    DeliveryStageComplete,
    SaveDelivery,
    SaveHandled,
)
from covey.core.deliveries.messages import DeliveryRequest, Receipt, ReceiptAnswer, Refusal
from covey.core.deliveries.model import (
    Ask,
    DeliveryRecord,
    DeliveryState,
    HandledRecord,
    HandledState,
    ReceiptEntry,
    StageProgress,
)
from covey.core.deliveries.schedule import MemorySchedule, Schedule
from covey.core.deliveries.selectors import Selector, SelectorError, StageSpec

__all__ = [
    "Answer",
    "Ask",
    "Deliveries",
    "DeliveriesConfig",
    "DeliveryComplete",
    "DeliveryFailed",
    "DeliveryReceiptAccepted",
    "DeliveryRecord",
    "DeliveryRequest",
    "DeliveryRequested",
    "DeliveryStageComplete",
    "DeliveryState",
    "HandledRecord",
    "HandledState",
    "Handler",
    "MemorySchedule",
    "Receipt",
    "ReceiptAnswer",
    "ReceiptEntry",
    "Refusal",
    "Refused",
    "SaveDelivery",
    "SaveHandled",
    "Schedule",
    "Selector",
    "SelectorError",
    "StageProgress",
    "StageSpec",
    "Unavailable",
]
