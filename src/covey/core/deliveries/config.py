"""Timings and limits of the deliveries capability, and the handler's types.

A receiver's handler is either a callback given to the capability (run from the node's
timer, one step after its ``started`` record was handed out, so the record is on disk
before the handler runs) or, with no callback, the runtime's: it gets a
:class:`~covey.core.deliveries.effects.DeliveryRequested` event and answers with
``Deliveries.answer``. Either way the answer is a result (octets, the receipt's body) or
a :class:`Refused` with its reason.
"""

from __future__ import annotations

from collections.abc import Callable

from covey.core.deliveries.effects import DeliveryRequested
from covey.core.deliveries.model import PAYLOAD_LIMIT
from covey.core.records import record


class Unavailable(ValueError):
    """Deliveries cannot be created now: their store cannot be written."""


@record
class Refused:
    """A handler's "no": the receiver sends a refusal with ``reason`` instead of a receipt."""

    reason: str


#: What a handler gives back: the receipt's result, or a refusal.
Answer = bytes | Refused
#: A receiver's handler callback.
Handler = Callable[[DeliveryRequested], Answer]


@record
class DeliveriesConfig:
    """Timings (seconds) and limits.

    Attributes:
        ask_deadline: how long an asked member has to answer, for a stage with no deadline
            of its own; then it is replaced.
        backoff_min: first wait before retrying a stage short of matching members.
        backoff_max: longest such wait (the wait doubles up to it).
        starve_timeout: a delivery for which no matching member at all can be asked for
            this long fails ("no matching member").
        payload_limit: largest payload accepted by ``create``.
    """

    ask_deadline: float = 30.0
    backoff_min: float = 1.0
    backoff_max: float = 30.0
    starve_timeout: float = 120.0
    payload_limit: int = 64 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.payload_limit <= PAYLOAD_LIMIT:
            raise ValueError(f"payload_limit must be within 1..{PAYLOAD_LIMIT} octets")
        for name in ("ask_deadline", "backoff_min", "backoff_max", "starve_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.backoff_max < self.backoff_min:
            raise ValueError("backoff_max must be at least backoff_min")
