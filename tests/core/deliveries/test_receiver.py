"""The receiver's side: at most one handler run per delivery stage, repeats, expiry."""

from __future__ import annotations

from covey.core.deliveries import (
    Deliveries,
    DeliveryRequest,
    DeliveryRequested,
    HandledState,
    Receipt,
    Refusal,
    Refused,
    SaveHandled,
)

from ..fakes import add_member, attach, node_id
from .helpers import Journal

ID = bytes(range(16))
OWNER = node_id(2)


def receiver(**kw: object) -> tuple[Deliveries, Journal, list[DeliveryRequested]]:
    """A receiver (member 1) whose handler logs each run; member 2 is the owner."""
    runs: list[DeliveryRequested] = []

    def handler(req: DeliveryRequested) -> bytes | Refused:
        runs.append(req)
        h.journal.append(("handler", req))
        return b"seen " + req.payload

    cap = Deliveries(handler=handler, **kw)  # type: ignore[arg-type]
    h = Journal(1)
    attach(cap, h)
    add_member(h, cap, 2)
    return cap, h, runs


def request(stage: int = 0, deadline: float = 10.0, payload: bytes = b"blk") -> DeliveryRequest:
    return DeliveryRequest(ID, stage, int(deadline * 1000), payload)


def deliver(cap: Deliveries, msg: DeliveryRequest, now: float) -> list[object]:
    return list(cap.on_stream(msg, OWNER, ("127.0.0.2", 7946), now))


def test_the_handler_runs_once_after_its_record_is_out() -> None:
    cap, h, runs = receiver()
    assert deliver(cap, request(), 1.0) == []
    assert runs == []  # not in the step that stored "started"
    assert cap.next_deadline() == 1.0
    cap.on_timer(1.0)
    assert [r.payload for r in runs] == [b"blk"]
    kinds = [(k, getattr(getattr(v, "record", None), "state", None)) for k, v in h.journal]
    assert kinds == [
        ("effect", HandledState.STARTED),
        ("handler", None),
        ("effect", HandledState.ANSWERED),
        ("stream", None),
    ]
    (addr, (msg,)) = h.streams[-1]
    assert addr == ("127.0.0.2", 7946) and msg == Receipt(ID, 0, b"seen blk")
    assert cap.next_deadline() is None


def test_a_repeated_request_is_answered_from_the_stored_receipt() -> None:
    cap, _h, runs = receiver()
    deliver(cap, request(), 1.0)
    assert deliver(cap, request(), 1.1) == []  # still at work: no second start
    cap.on_timer(1.2)
    assert deliver(cap, request(), 2.0) == [Receipt(ID, 0, b"seen blk")]
    assert deliver(cap, request(), 3.0) == [Receipt(ID, 0, b"seen blk")]
    assert len(runs) == 1
    assert cap.counters["receiver.requests_repeated"] == 3
    # Another stage of the same delivery is another request.
    deliver(cap, request(stage=1), 4.0)
    cap.on_timer(4.0)
    assert [r.stage for r in runs] == [0, 1]


def test_a_request_past_its_deadline_is_discarded_unhandled() -> None:
    cap, h, runs = receiver()
    assert deliver(cap, request(deadline=5.0), 5.0) == []
    cap.on_timer(5.0)
    assert runs == [] and h.effects == [] and h.streams == []
    assert cap.counters["receiver.requests_expired"] == 1


def test_a_request_that_expires_before_its_turn_is_refused_unhandled() -> None:
    cap, h, runs = receiver()
    deliver(cap, request(deadline=5.0), 4.0)
    cap.on_timer(6.0)  # a paused process wakes after the deadline
    assert runs == []
    (_, (msg,)) = h.streams[-1]
    assert isinstance(msg, Refusal) and "expired" in msg.reason


def test_after_a_restart_the_handler_is_not_run_again() -> None:
    cap, h, _runs = receiver()
    deliver(cap, request(), 1.0)
    stored = [e.record for e in h.effects if isinstance(e, SaveHandled)]
    # The process dies before the handler ran (or before its answer was stored).
    again, h2, runs2 = receiver(handled=stored)
    replies = deliver(again, request(), 2.0)
    assert runs2 == [] and len(replies) == 1
    assert isinstance(replies[0], Refusal) and replies[0].reason == "interrupted by a restart"
    assert [e.record.state for e in h2.effects] == [HandledState.REFUSED]  # type: ignore[attr-defined]
    # An answered record restored: the stored receipt answers.
    cap.on_timer(1.0)
    answered = [e.record for e in h.effects if isinstance(e, SaveHandled)][-1:]
    third, _, runs3 = receiver(handled=answered)
    assert deliver(third, request(), 3.0) == [Receipt(ID, 0, b"seen blk")] and runs3 == []


def test_with_no_callback_the_request_is_an_event_answered_later() -> None:
    cap = Deliveries()
    h = Journal(1)
    attach(cap, h)
    add_member(h, cap, 2)
    deliver(cap, request(), 1.0)
    ((_kind, event),) = [(k, v) for k, v in h.journal if k == "event"]
    assert isinstance(event, DeliveryRequested) and event.deadline == 10.0
    assert [k for k, _ in h.journal] == ["effect", "event"]  # started is out first
    assert event.to_json()["size"] == 3
    assert cap.answer(ID, 0, Refused("exit 3: no"), now=2.0)
    assert not cap.answer(ID, 0, b"twice", now=2.1)
    (_, (msg,)) = h.streams[-1]
    assert msg == Refusal(ID, 0, "exit 3: no")
    assert deliver(cap, request(), 3.0) == [Refusal(ID, 0, "exit 3: no")]


def test_a_handler_that_raises_refuses() -> None:
    def handler(req: DeliveryRequested) -> bytes:
        raise RuntimeError("boom")

    cap = Deliveries(handler=handler)
    h = Journal(1)
    attach(cap, h)
    add_member(h, cap, 2)
    deliver(cap, request(), 1.0)
    cap.on_timer(1.0)
    (_, (msg,)) = h.streams[-1]
    assert isinstance(msg, Refusal) and msg.reason == "handler raised RuntimeError: boom"
