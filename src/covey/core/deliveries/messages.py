"""Delivery messages (type numbers 60 to 63) and their checked msgpack array forms.

Requests carry the payload (up to :data:`~covey.core.deliveries.model.PAYLOAD_LIMIT`)
and so travel over a stream (TCP), as do receipts; the frame header names and
authenticates the sender with the cluster key, so no array repeats a node id. Deadlines
are wall-clock milliseconds: every node can compare them with its own clock, even a
receiver that was paused while the request sat in its socket buffer.

Every field is checked by ``from_array`` (:mod:`covey.core.wire.fields`); anything off
raises :class:`~covey.core.wire.messages.MalformedMessage`, which the node drops and counts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from covey.core.deliveries.model import PAYLOAD_LIMIT, REASON_LIMIT, RESULT_LIMIT
from covey.core.deliveries.selectors import MAX_STAGES
from covey.core.records import record
from covey.core.wire.fields import ArrayMessage, Check, boolean, node_id, text, uint
from covey.core.wire.messages import MalformedMessage

#: The delivery message type numbers (the election has 40-45, shared state 50-58).
DELIVERY_REQUEST, RECEIPT, REFUSAL, RECEIPT_ANSWER = 60, 61, 62, 63


def octets(limit: int) -> Check:
    """A msgpack binary of at most ``limit`` octets."""

    def check(v: Any, what: str) -> bytes:
        if type(v) is not bytes or len(v) > limit:
            raise MalformedMessage(f"{what}: not at most {limit} octets of binary")
        return v

    return check


def stage_index(v: Any, what: str) -> int:
    """A stage index below :data:`MAX_STAGES`."""
    if type(v) is not int or not 0 <= v < MAX_STAGES:
        raise MalformedMessage(f"{what}: not a stage index below {MAX_STAGES}")
    return v


def to_ms(wall: float) -> int:
    """Wall seconds as whole milliseconds (rounded up: a deadline is never brought forward)."""
    ms = int(wall * 1000)
    return ms if ms >= wall * 1000 else ms + 1


@record
class DeliveryRequest(ArrayMessage):
    """The owner asks for a receipt of ``delivery``'s stage ``stage`` by ``deadline_ms``.

    Array: ``[60, delivery, stage, deadline_ms, payload]``.
    """

    TYPE: ClassVar[int] = DELIVERY_REQUEST
    FIELDS = (node_id, stage_index, uint, octets(PAYLOAD_LIMIT))
    delivery: bytes
    stage: int
    deadline_ms: int
    payload: bytes


@record
class Receipt(ArrayMessage):
    """A receiver handled ``delivery``'s stage ``stage``; ``result`` is its answer.

    Array: ``[61, delivery, stage, result]``.
    """

    TYPE: ClassVar[int] = RECEIPT
    FIELDS = (node_id, stage_index, octets(RESULT_LIMIT))
    delivery: bytes
    stage: int
    result: bytes


@record
class Refusal(ArrayMessage):
    """A receiver will not give a receipt for ``delivery``'s stage ``stage``, and why.

    Array: ``[62, delivery, stage, reason]``.
    """

    TYPE: ClassVar[int] = REFUSAL
    FIELDS = (node_id, stage_index, text(REASON_LIMIT))
    delivery: bytes
    stage: int
    reason: str


@record
class ReceiptAnswer(ArrayMessage):
    """The owner's answer to a :class:`Receipt`: ``accepted``, or refused with ``reason``
    (not asked, stage not current, beyond K, unknown delivery).

    Array: ``[63, delivery, stage, accepted, reason]``.
    """

    TYPE: ClassVar[int] = RECEIPT_ANSWER
    FIELDS = (node_id, stage_index, boolean, text(REASON_LIMIT))
    delivery: bytes
    stage: int
    accepted: bool
    reason: str


MESSAGE_TYPES: tuple[type[ArrayMessage], ...] = (DeliveryRequest, Receipt, Refusal, ReceiptAnswer)
