"""The owner's side: dispatch, promotion, refused receipts, replacement, waiting, ends."""

from __future__ import annotations

from covey.core.deliveries import (
    Deliveries,
    DeliveriesConfig,
    DeliveryComplete,
    DeliveryFailed,
    DeliveryReceiptAccepted,
    DeliveryStageComplete,
    DeliveryState,
    SaveDelivery,
)
from covey.core.types import MemberState

from ..fakes import add_member, attach, node_id, set_state
from .helpers import Journal, cluster, receipt, stage


def test_dispatch_asks_k_matching_members_with_the_payload() -> None:
    tags = {i: {"role": "db" if i % 2 else "web"} for i in range(2, 8)}
    cap, h = cluster(7, tags)
    rec = cap.create(b"block", [stage("2:role=db", deadline=5.0)], now=10.0)
    reqs = h.requests()
    assert rec.state is DeliveryState.STAGE
    assert len(reqs) == 2 and {i for i, _ in reqs} <= {3, 5, 7}
    for _, r in reqs:
        assert (r.delivery, r.stage, r.payload, r.deadline_ms) == (rec.id, 0, b"block", 15_000)
    assert cap.next_deadline() == 15.0


def test_stage_promotes_at_k_then_completes() -> None:
    cap, h = cluster(6)
    rec = cap.create(b"p", [stage("2:any"), stage("1!:any")], now=0.0)
    first = h.requests()
    assert receipt(cap, first[0][0], first[0][1], 1.0).accepted
    assert cap.get(rec.id).stage == 0  # type: ignore[union-attr]
    assert receipt(cap, first[1][0], first[1][1], 1.5).accepted
    promoted = cap.get(rec.id)
    assert promoted is not None and promoted.stage == 1
    assert [type(e) for e in h.events] == [DeliveryReceiptAccepted] * 2 + [DeliveryStageComplete]
    (second,) = h.requests()
    assert second[1].stage == 1
    assert second[0] not in {first[0][0], first[1][0]}  # 1!: not those of stage 0
    assert receipt(cap, second[0], second[1], 2.0, b"fine").accepted
    done = cap.get(rec.id)
    assert done is not None and done.state is DeliveryState.COMPLETE and done.due is None
    kinds = [type(e) for e in h.events if not isinstance(e, DeliveryReceiptAccepted)]
    assert kinds == [DeliveryStageComplete] * 2 + [DeliveryComplete]
    assert sum(isinstance(e, DeliveryReceiptAccepted) for e in h.events) == 3
    assert done.progress[1].receipts[0].result == b"fine"
    assert cap.next_deadline() is None
    shown = done.to_json()
    assert shown["state"] == "complete" and shown["stages"][0]["required"] == 2
    assert len(shown["stages"][0]["receipts"]) == 2


def test_not_asked_wrong_stage_and_beyond_k_are_refused_and_counted() -> None:
    cap, h = cluster(6)
    rec = cap.create(b"p", [stage("1:any", deadline=1.0), stage("1:any")], now=0.0)
    ((i, req),) = h.requests()
    outsider = next(j for j in range(2, 7) if j != i)
    answer = receipt(cap, outsider, req, 0.5)
    assert not answer.accepted and answer.reason == "not asked"
    cap.on_timer(1.0)  # i is silent: replaced by j
    ((j, req_j),) = h.requests()
    assert j != i
    assert receipt(cap, j, req_j, 1.1).accepted  # stage 0 done
    late = receipt(cap, i, req, 1.2)  # the silent one answers after all
    assert not late.accepted and late.reason.startswith("beyond K")
    ((k, req_k),) = h.requests()
    early = receipt(cap, k, req_k, 1.3)
    assert early.accepted
    wrong = receipt(cap, i, req_k, 1.4)  # stage 1 of a complete delivery, never asked
    assert not wrong.accepted
    assert receipt(cap, j, req_j, 1.5).reason == "already held"
    c = cap.counters
    assert c["owner.refused_not_asked"] == 2 and c["owner.refused_beyond_K"] == 1
    assert c["owner.receipts_accepted"] == 2
    final = cap.get(rec.id)
    assert final is not None and final.progress[0].refused == 2
    assert all(len(p.receipts) == 1 for p in final.progress)


def test_a_receipt_for_a_stage_not_current_is_refused() -> None:
    cap, h = cluster(6)
    rec = cap.create(b"p", [stage("1:any"), stage("2:any")], now=0.0)
    ((i, req),) = h.requests()
    future = req.__class__(rec.id, 1, req.deadline_ms, b"")
    answer = receipt(cap, i, future, 0.1)
    assert not answer.accepted and answer.reason == "stage not current"
    assert cap.counters["owner.refused_stage_not_current"] == 1


def test_at_the_deadline_only_new_members_are_asked() -> None:
    cap, h = cluster(8)
    rec = cap.create(b"p", [stage("3:any", deadline=2.0)], now=0.0)
    first = h.requests()
    assert receipt(cap, first[0][0], first[0][1], 1.0).accepted
    cap.on_timer(1.9)
    assert h.requests() == []  # not yet due
    cap.on_timer(2.0)
    again = h.requests()
    assert len(again) == 2  # the two silent ones are replaced...
    assert not {i for i, _ in again} & {i for i, _ in first}  # ...by members not asked before
    assert all(r.deadline_ms == 4000 for _, r in again)  # with a fresh deadline
    now_rec = cap.get(rec.id)
    assert now_rec is not None and len(now_rec.current.asked) == 5
    assert cap.counters["owner.replaced_silent"] == 2


def test_silent_members_are_asked_again_when_nobody_else_matches() -> None:
    cap, h = cluster(3)
    cap.create(b"p", [stage("2:any", deadline=1.0)], now=0.0)
    first = {i for i, _ in h.requests()}
    cap.on_timer(1.0)
    assert {i for i, _ in h.requests()} == first == {2, 3}


def test_a_member_failing_while_asked_is_replaced_at_once() -> None:
    cap, h = cluster(6)
    rec = cap.create(b"p", [stage("2:any", deadline=30.0)], now=0.0)
    first = h.requests()
    gone = first[0][0]
    set_state(h, cap, gone, MemberState.FAILED, now=3.0)
    ((new, req),) = h.requests()
    assert new not in {i for i, _ in first}
    assert req.deadline_ms == 33_000
    cur = cap.get(rec.id)
    assert cur is not None and node_id(gone) not in {a.node for a in cur.current.waiting}
    set_state(h, cap, first[1][0], MemberState.LEFT, now=4.0)
    assert len(h.requests()) == 1


def test_too_few_matching_members_wait_with_a_reason_and_back_off() -> None:
    tags = {2: {"role": "db"}, 3: {"role": "web"}}
    cfg = DeliveriesConfig(backoff_min=1.0, backoff_max=4.0)
    cap, h = cluster(3, tags, config=cfg)
    rec = cap.create(b"p", [stage("2:role=db")], now=0.0)
    assert len(h.requests()) == 1
    cur = cap.get(rec.id)
    assert cur is not None and cur.reason == "waiting: 1 of 2 matching members alive"
    assert cap.next_deadline() == 1.0
    waits = []
    for _ in range(4):
        t = cap.next_deadline()
        assert t is not None
        cap.on_timer(t)
        waits.append(cap.get(rec.id).backoff)  # type: ignore[union-attr]
    assert waits == [2.0, 4.0, 4.0, 4.0]
    assert h.requests() == []  # nobody new to ask
    add_member(h, cap, 4, now=20.0, tags={"role": "db"})  # a matching member joins
    assert cap.next_deadline() == 20.0  # woken at once
    cap.on_timer(20.0)
    assert [i for i, _ in h.requests()] == [4]
    cur = cap.get(rec.id)
    assert cur is not None and cur.reason == "" and cur.backoff == 0.0


def test_no_matching_member_for_too_long_fails_with_the_reason() -> None:
    cap, h = cluster(3, config=DeliveriesConfig(starve_timeout=10.0, backoff_max=4.0))
    rec = cap.create(b"p", [stage("1:nobody")], now=0.0)
    t = 0.0
    while (d := cap.next_deadline()) is not None and d < 100:
        t = d
        cap.on_timer(t)
    end = cap.get(rec.id)
    assert end is not None and end.state is DeliveryState.FAILED
    assert end.reason == "no matching member for 10s (waiting: 0 of 1 matching members alive)"
    assert t == 10.0
    assert isinstance(h.events[-1], DeliveryFailed)
    assert h.events[-1].to_json()["reason"] == end.reason


def test_overall_deadline_and_cancel_end_a_delivery() -> None:
    cap, h = cluster(4)
    a = cap.create(b"p", [stage("2:any", deadline=50.0)], now=0.0, deadline=20.0)
    b = cap.create(b"q", [stage("1:any")], now=0.0)
    assert cap.cancel(b.id, now=1.0) and not cap.cancel(b.id, now=2.0)
    assert cap.get(b.id).state is DeliveryState.CANCELLED  # type: ignore[union-attr]
    assert cap.next_deadline() == 20.0
    cap.on_timer(20.0)
    end = cap.get(a.id)
    assert end is not None and end.state is DeliveryState.FAILED
    assert end.reason == "past its overall deadline"
    assert [e.to_json()["state"] for e in h.events] == ["cancelled", "failed"]
    assert [r.id for r in cap.deliveries(DeliveryState.FAILED)] == [a.id]


def test_every_change_is_persisted_before_the_messages_it_causes() -> None:
    cap, h = cluster(6)
    rec = cap.create(b"p", [stage("2:any"), stage("2:any")], now=0.0)
    first = h.requests()
    receipt(cap, first[0][0], first[0][1], 1.0)
    receipt(cap, first[1][0], first[1][1], 1.0)
    kinds = [k for k, _ in h.journal]
    # create: record, then two requests; two receipts: a record and an event for the
    # first, an event for the second; promotion: event, then one record (the promotion
    # with the next stage's asks) before its two requests.
    create = ["effect", "stream", "stream"]
    receipts = ["effect", "event", "event", "event"]
    assert kinds == [*create, *receipts, "effect", "stream", "stream"]
    saved = [e.record for k, e in h.journal if k == "effect" and isinstance(e, SaveDelivery)]
    assert [r.version for r in saved] == sorted(r.version for r in saved)
    assert saved[-1] == cap.get(rec.id)
    # Every request goes to a member named in the record saved just before it.
    last: set[bytes] = set()
    for kind, item in h.journal:
        if kind == "effect":
            last = {a.node for a in item.record.current.waiting}
        elif kind == "stream":
            assert node_id(int(item[0][0].rsplit(".", 1)[1])) in last


def test_create_refuses_bad_input() -> None:
    import pytest

    from covey.core.deliveries import SelectorError

    cap, h = cluster(3)
    with pytest.raises(SelectorError, match="cluster has 2 other members"):
        cap.create(b"p", [stage("3:any")], now=0.0)
    with pytest.raises(ValueError, match="over the limit of 65536"):
        cap.create(b"x" * 65537, [stage("1:any")], now=0.0)
    with pytest.raises(SelectorError, match="1 to 16 stages"):
        cap.create(b"p", [], now=0.0)
    assert h.effects == [] and h.streams == []
    cap.create(b"x" * 65536, [stage("1:any")], now=0.0)  # 64 KiB is fine
    assert len(h.effects) == 1


def test_a_refusal_is_replaced_at_once() -> None:
    from covey.core.deliveries import Refusal

    cap, h = cluster(5)
    rec = cap.create(b"p", [stage("1:any")], now=0.0)
    ((i, _req),) = h.requests()
    cap.on_stream(Refusal(rec.id, 0, "no"), node_id(i), ("x", 1), 1.0)
    ((j, _),) = h.requests()
    assert j != i
    cur = cap.get(rec.id)
    assert cur is not None and cur.current.refusals == ((node_id(i), "no"),)


def test_a_restarted_owner_resumes_from_its_records() -> None:
    from covey.core.deliveries import Deliveries

    from ..fakes import attach
    from .helpers import Journal

    cap, h = cluster(6)
    done = cap.create(b"a", [stage("1:any")], now=0.0)
    ((i, req),) = h.requests()
    receipt(cap, i, req, 0.5)
    live = cap.create(b"b", [stage("2:any", deadline=10.0)], now=1.0)
    asked = {n for n, _ in h.requests()}
    disk = {e.record.id: e.record for e in h.effects if isinstance(e, SaveDelivery)}
    # The owner restarts: its table is empty at first, then members reappear.
    again = Deliveries(records=disk.values())
    h2 = Journal(1)
    attach(again, h2, now=2.0)
    assert again.get(done.id).state is DeliveryState.COMPLETE  # type: ignore[union-attr]
    assert again.next_deadline() == 11.0
    for n in range(2, 7):
        add_member(h2, again, n, now=2.5)
    # The outstanding asks go out again (their requests may not have left), to the same
    # members with the same deadline; the complete delivery is left alone.
    resent = h2.requests()
    assert {n for n, _ in resent} == asked
    assert all(r.delivery == live.id and r.deadline_ms == 11_000 for _, r in resent)
    assert [type(e) for e in h2.events] == []


def test_a_starved_delivery_fails_even_when_its_times_round() -> None:
    # 130.2138813873415 - 10.213881387341514 rounds below 120: the give-up time must be
    # compared as the same sum it was scheduled at, or the owner loops at that instant.
    cap, h = cluster(3, config=DeliveriesConfig(starve_timeout=120.0, backoff_max=200.0))
    start = 10.213881387341514
    rec = cap.create(b"p", [stage("1:nobody")], now=start)
    for _ in range(20):
        d = cap.next_deadline()
        if d is None:
            break
        cap.on_timer(d)
    end = cap.get(rec.id)
    assert end is not None and end.state is DeliveryState.FAILED
    assert h.events[-1].to_json()["reason"].startswith("no matching member for 120s")


def test_an_adopted_delivery_that_waited_for_us_asks_another_member() -> None:
    old, oh = cluster(5)  # member 1 owns it and asks two of 2..5
    rec = old.create(b"p", [stage("2:any")], now=0.0)
    asked = {i for i, _ in oh.requests()}
    me = min(asked)  # the adopter is one of the members the dead owner asked
    cap, h = Deliveries(), Journal(me)
    attach(cap, h)
    for i in range(1, 6):
        if i != me:
            add_member(h, cap, i)
    adopted = cap.adopt(rec, now=1.0)
    sent = {i for i, _ in h.requests()}
    waiting = {a.node for a in adopted.current.waiting}
    assert node_id(me) not in waiting and len(waiting) == 2
    assert me not in sent and asked - {me} <= sent and len(sent) == 2  # re-sent, one new
    assert adopted.owner == node_id(me) and cap.counters["owner.adopted"] == 1


def test_a_promotion_is_stored_with_the_next_stages_asks() -> None:
    cap, h = cluster(6)
    cap.create(b"p", [stage("2:any"), stage("1!:any")], now=0.0)
    first = h.requests()
    for i, req in first:
        receipt(cap, i, req, 1.0)
    saved = [e.record for e in h.effects if isinstance(e, SaveDelivery)]
    # An owner rebuilt from any of these after a crash must act on it soon: every stored
    # live record has an outstanding ask (re-sent at restart) or is due within a second.
    for rec in saved:
        if not rec.state.done:
            assert rec.current.waiting or (rec.due is not None and rec.due <= 1.0), rec
    assert saved[-1].stage == 1 and len(saved[-1].current.waiting) == 1
