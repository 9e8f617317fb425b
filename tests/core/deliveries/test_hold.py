"""Held for want of a store, then resumed: nothing promised meanwhile, nothing stalled."""

from __future__ import annotations

import pytest

from covey.core.deliveries import (
    DeliveryRequest,
    DeliveryState,
    HandledState,
    Receipt,
    SaveHandled,
    Unavailable,
)
from covey.core.deliveries.receiver import DEFERRED_LIMIT

from .helpers import cluster, receipt, stage
from .test_receiver import ID, OWNER, receiver, request


def test_a_held_owner_refuses_receipts_then_asks_the_same_members_again() -> None:
    cap, h = cluster(5)
    rec = cap.create(b"p", [stage("2:any")], now=0.0)
    asked = sorted(i for i, _ in h.requests())
    cap.hold("redis down")
    with pytest.raises(Unavailable, match="redis down"):
        cap.create(b"q", [stage("1:any")], now=0.5)
    req = DeliveryRequest(rec.id, 0, 30_000, b"p")
    answer = receipt(cap, asked[0], req, 0.5)
    assert not answer.accepted and answer.reason == "store unavailable"
    assert cap.next_deadline() is None  # nothing is acted on while held
    cap.resume([], now=1.0)
    again = sorted(i for i, _ in h.requests())
    assert again == asked  # the refused receipt is asked for again, nobody new is asked
    for i in asked:
        assert receipt(cap, i, req, 1.5).accepted
    done = cap.get(rec.id)
    assert done is not None and done.state is DeliveryState.COMPLETE
    assert len(done.current.asked) == 2


def test_a_request_that_came_while_held_is_handled_on_resume() -> None:
    cap, h, runs = receiver()
    cap.hold("redis down")
    assert cap.on_stream(request(), OWNER, ("x", 1), 1.0) == []
    assert not h.effects and not runs  # nothing started that could not be stored
    cap.resume([], now=2.0)
    (started,) = [e for e in h.effects if isinstance(e, SaveHandled)]
    assert started.record.state is HandledState.STARTED
    cap.on_timer(2.0)  # the callback runs one step after its record was handed out
    assert len(runs) == 1
    (addr, (reply,)) = h.streams[-1]
    assert addr == ("127.0.0.2", 7946) and isinstance(reply, Receipt)
    assert cap.counters["receiver.held_deferred"] == 1


def test_a_repeat_kept_while_held_is_answered_from_the_record_on_resume() -> None:
    cap, h, runs = receiver()
    cap.on_stream(request(), OWNER, ("x", 1), 1.0)
    cap.on_timer(1.0)
    assert len(runs) == 1
    h.streams.clear()
    cap.hold("redis down")
    cap.on_stream(request(), OWNER, ("x", 1), 2.0)  # the owner asks again meanwhile
    cap.resume([], now=3.0)
    (_, (reply,)) = h.streams[-1]
    assert isinstance(reply, Receipt) and reply.delivery == ID and reply.result == b"seen blk"
    assert len(runs) == 1  # never run twice


def test_requests_kept_while_held_are_bounded() -> None:
    cap, _, runs = receiver()
    cap.hold("redis down")
    for i in range(DEFERRED_LIMIT + 5):
        item = i.to_bytes(16, "big")
        cap.on_stream(DeliveryRequest(item, 0, 10_000, b"x"), OWNER, ("x", 1), 1.0)
    c = cap.counters
    assert c["receiver.held_deferred"] == DEFERRED_LIMIT and c["receiver.held_dropped"] == 5
    cap.resume([], now=2.0)
    cap.on_timer(2.0)
    assert len(runs) == DEFERRED_LIMIT
