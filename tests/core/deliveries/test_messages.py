"""Delivery messages: array round trips and strict checks on every field."""

from __future__ import annotations

from typing import Any

import pytest

from covey.core.deliveries import DeliveryRequest, Receipt, ReceiptAnswer, Refusal
from covey.core.deliveries.messages import MESSAGE_TYPES, to_ms
from covey.core.wire.messages import MalformedMessage, MessageTypes, decode_message

ID = bytes(range(16))


@pytest.mark.parametrize(
    "msg",
    [
        DeliveryRequest(ID, 0, 1_700_000_000_123, b"\x00" * 65536),
        Receipt(ID, 3, b"result"),
        Refusal(ID, 1, "handler said no"),
        ReceiptAnswer(ID, 2, False, "beyond K"),
    ],
)
def test_round_trip_through_a_node_table(msg: Any) -> None:
    types = MessageTypes()
    for cls in MESSAGE_TYPES:
        types.add(cls)
    arr = [msg.TYPE, *msg.to_array()]
    assert types.decode(arr) == msg
    assert decode_message(arr, {msg.TYPE: type(msg)}) == msg


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (DeliveryRequest, [ID[:15], 0, 1, b""]),
        (DeliveryRequest, [ID, -1, 1, b""]),
        (DeliveryRequest, [ID, 16, 1, b""]),
        (DeliveryRequest, [ID, 0, 1.5, b""]),
        (DeliveryRequest, [ID, 0, 1, "text"]),
        (DeliveryRequest, [ID, 0, 1, b"x" * (1024 * 1024 + 1)]),
        (DeliveryRequest, [ID, 0, 1]),
        (Receipt, [ID, 0, b"x" * (16 * 1024 + 1)]),
        (Receipt, [ID, True, b""]),
        (Refusal, [ID, 0, b"bytes"]),
        (Refusal, [ID, 0, "x" * 201]),
        (ReceiptAnswer, [ID, 0, 1, ""]),
        (ReceiptAnswer, [ID, 0, True, "", "extra"]),
    ],
)
def test_every_field_is_checked(cls: Any, fields: list[Any]) -> None:
    with pytest.raises(MalformedMessage):
        cls.from_array(fields)


def test_type_numbers_are_free_and_distinct() -> None:
    assert [c.TYPE for c in MESSAGE_TYPES] == [60, 61, 62, 63]


def test_deadlines_round_up_to_the_millisecond() -> None:
    assert to_ms(1.0) == 1000
    assert to_ms(1.0001) == 1001
