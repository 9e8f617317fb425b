"""A shared store's calls into the owner: adopt a dead owner's delivery, release a fenced
one, hold while the store cannot be written and resume when it can."""

from __future__ import annotations

import pytest

from covey.core.deliveries import (
    DeliveryRequest,
    DeliveryState,
    Receipt,
    ReceiptAnswer,
    SaveDelivery,
    SaveHandled,
    Unavailable,
)

from ..fakes import node_id
from .helpers import cluster, receipt, stage


def test_an_adopted_delivery_is_ours_and_its_outstanding_asks_are_sent_again() -> None:
    dead, hd = cluster(5)
    rec = dead.create(b"p", [stage("2:any"), stage("1:any")], now=0.0)
    (first, second) = hd.requests()
    receipt(dead, first[0], first[1], 1.0)  # one of two receipts held when it died
    stored = dead.get(rec.id)
    assert stored is not None and len(stored.current.receipts) == 1

    heir, h = cluster(5)
    adopted = heir.adopt(stored, now=2.0)
    assert adopted.owner == node_id(1) and adopted.version > stored.version
    assert any(isinstance(e, SaveDelivery) and e.record == adopted for e in h.effects)
    # Only the member still owed a receipt is asked (again), with the same stage.
    (again,) = h.requests()
    assert again[0] == second[0] and again[1].stage == 0
    # Its receipt now completes the stage on the heir; the held one is not asked again.
    assert receipt(heir, again[0], again[1], 2.5).accepted
    moved = heir.get(rec.id)
    assert moved is not None and moved.stage == 1


def test_a_released_delivery_is_forgotten_and_never_acted_on() -> None:
    cap, h = cluster(4)
    rec = cap.create(b"p", [stage("2:any", deadline=1.0)], now=0.0)
    h.requests()
    cap.release(rec.id)
    assert cap.get(rec.id) is None and cap.next_deadline() is None
    cap.on_timer(5.0)
    assert h.requests() == []
    assert cap.counters["owner.released"] == 1


def test_while_held_nothing_is_promised_and_resume_saves_and_acts_again() -> None:
    cap, h = cluster(4)
    rec = cap.create(b"p", [stage("2:any", deadline=1.0)], now=0.0)
    reqs = h.requests()
    cap.hold("redis at 127.0.0.1:1: connection refused")
    with pytest.raises(Unavailable, match="connection refused"):
        cap.create(b"q", [stage("1:any")], now=0.1)
    # A receipt is refused unrecorded, a request kept unhandled (for the resume); no
    # timer runs.
    (answer,) = cap.on_stream(Receipt(rec.id, 0, b"r"), node_id(reqs[0][0]), ("x", 1), 0.2)
    assert isinstance(answer, ReceiptAnswer) and not answer.accepted
    assert answer.reason == "store unavailable"
    request = DeliveryRequest(b"\x01" * 16, 0, 10_000, b"x")
    assert cap.on_stream(request, node_id(2), ("x", 1), 0.2) == []
    assert cap.next_deadline() is None
    saved = len(h.effects)
    cap.on_timer(3.0)
    assert len(h.effects) == saved and h.requests() == []
    # Back: the unsaved record is written again, and the overdue asks are replaced.
    cap.resume({rec.id}, now=3.0)
    assert cap.held == ""
    assert isinstance(h.effects[saved], SaveDelivery) and h.effects[saved].record.id == rec.id
    assert len(h.requests()) == 2  # both asks expired at 1.0: two members asked again
    now = cap.get(rec.id)
    assert now is not None and now.state is DeliveryState.STAGE
    # The request that came while held is handled once, on resume: started, then queued.
    started = [e.record for e in h.effects if isinstance(e, SaveHandled)]
    assert [(r.delivery, r.state.value) for r in started] == [(b"\x01" * 16, "started")]
