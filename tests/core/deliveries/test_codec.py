"""Stored records survive a round trip through their plain (JSON) form, and bad rows fail."""

from __future__ import annotations

import json

import pytest

from covey.core.deliveries import SaveDelivery, SaveHandled
from covey.core.deliveries.codec import (
    RecordError,
    handled_from_plain,
    handled_to_plain,
    record_from_plain,
    record_to_plain,
)
from covey.core.deliveries.messages import DeliveryRequest

from ..fakes import node_id
from .helpers import cluster, receipt, stage


def test_every_saved_owner_record_round_trips_through_json() -> None:
    cap, h = cluster(6)
    cap.create(b"\x00\xffpayload", [stage("2:any", deadline=3.0), stage("1!:n3,role=x")], now=0.0)
    reqs = h.requests()
    receipt(cap, reqs[0][0], reqs[0][1], 1.0, b"r\x00")
    receipt(cap, 6 if reqs[0][0] != 6 else 5, reqs[0][1], 1.1)  # refused: not asked
    cap.on_timer(3.0)
    saved = [e.record for e in h.effects if isinstance(e, SaveDelivery)]
    assert len(saved) >= 4
    for rec in saved:
        assert record_from_plain(json.loads(json.dumps(record_to_plain(rec)))) == rec


def test_a_receivers_record_round_trips() -> None:
    from covey.core.deliveries import Deliveries

    from ..fakes import FakeHandle, add_member, attach

    cap = Deliveries(handler=lambda req: b"ok")
    h = FakeHandle(1)
    attach(cap, h)
    add_member(h, cap, 2)
    cap.on_stream(DeliveryRequest(bytes(16), 1, 9000, b"p"), node_id(2), ("x", 1), 1.0)
    cap.on_timer(1.0)
    for e in h.effects:
        assert isinstance(e, SaveHandled)
        assert handled_from_plain(json.loads(json.dumps(handled_to_plain(e.record)))) == e.record


@pytest.mark.parametrize(
    ("key", "value"),
    [("id", "zz"), ("state", "sleeping"), ("created", "soon"), ("reached", 9), ("stages", 3)],
)
def test_a_damaged_row_is_refused_whole(key: str, value: object) -> None:
    cap, _ = cluster(3)
    plain = record_to_plain(cap.create(b"p", [stage("1:any")], now=0.0))
    plain[key] = value
    with pytest.raises(RecordError):
        record_from_plain(plain)
    del plain[key]
    with pytest.raises(RecordError):
        record_from_plain(plain)
