"""Actions against a fake handle: no hold, dedupe, restored ids, the record before the event."""

from __future__ import annotations

from covey.core import Event
from covey.core.effects import Effect
from covey.core.state.actions import (
    RESEND_FIRST,
    RESEND_FOR,
    SYNC_WINDOW,
    ActionAnswered,
    ActionDelivered,
    Actions,
    RecordAction,
)
from covey.core.state.messages import ActionRequest, ActionResult

from ..fakes import FakeHandle, add_member, attach, node_id


class OrderedHandle(FakeHandle):
    """Also records effects and events in one list, in the order they were handed out."""

    def __init__(self) -> None:
        super().__init__(1)
        self.order: list[Effect | Event] = []

    def persist(self, effect: Effect) -> None:
        super().persist(effect)
        self.order.append(effect)

    def emit(self, event: Event) -> None:
        super().emit(event)
        self.order.append(event)


def _actions(restored: tuple[int, list[bytes]] | None = None) -> tuple[Actions, OrderedHandle]:
    a = Actions(restored=restored)
    h = OrderedHandle()
    attach(a, h)
    add_member(h, a, 2)
    return a, h


def _request(i: int, lamport: int = 1) -> ActionRequest:
    return ActionRequest(bytes([i]) * 16, node_id(2), lamport, "zstop", f"vm-{i}")


def _hear(a: Actions, h: FakeHandle, req: ActionRequest, now: float) -> None:
    peer = h.members.members[node_id(2)]
    a.on_message(req, peer.node_id, peer.address, now)


def _delivered(h: FakeHandle) -> list[bytes]:
    return [e.action_id for e in h.events if isinstance(e, ActionDelivered)]


def test_an_action_is_delivered_at_the_time_it_was_heard_record_first() -> None:
    a, h = _actions()
    req = _request(1, lamport=4)
    _hear(a, h, req, 1.0)
    assert a.next_deadline() == 1.0  # an immediate timer: no hold before delivery
    a.on_timer(1.0)
    assert h.order == [
        RecordAction(req.action_id, 4),
        ActionDelivered(req.action_id, req.origin, 4, "zstop", "vm-1", 1.0),
    ]
    assert a.next_deadline() != 1.0  # nothing is due any more


def test_a_relayed_action_is_gossiped_and_only_our_own_is_pushed_to_everyone() -> None:
    a, h = _actions()
    req = _request(1)
    _hear(a, h, req, 1.0)
    action_id = a.start("zstop", "vm-9", 1.0)
    assert [(k, direct) for k, _, direct in h.gossiped] == [
        (b"a" + req.action_id, False),
        (b"a" + action_id, True),  # news that originates here: one hop to all members
    ]


def test_the_same_action_id_is_delivered_once_however_often_it_arrives() -> None:
    a, h = _actions()
    req = _request(1)
    _hear(a, h, req, 1.0)
    _hear(a, h, req, 1.05)  # a gossip duplicate
    a.on_timer(2.0)
    a.merge_sync_state([req.to_array()], node_id(2), 3.0)  # carried by a push-pull
    _hear(a, h, req, 4.0)
    a.on_timer(5.0)
    assert _delivered(h) == [req.action_id]
    assert h.effects == [RecordAction(req.action_id, 1)]


def test_ids_restored_at_construction_are_not_run_again() -> None:
    ran = _request(1, lamport=3)
    a, h = _actions(restored=(9, [ran.action_id]))
    _hear(a, h, ran, 1.0)
    _hear(a, h, _request(2, lamport=3), 1.0)
    a.on_timer(2.0)
    assert _delivered(h) == [_request(2).action_id]
    assert a.clock == 9  # the restored clock: Lamport time never goes back
    assert a.start("zstart", "", 3.0) and a.clock == 10


def test_actions_heard_in_one_step_are_delivered_in_lamport_order() -> None:
    a, h = _actions()
    late, early = _request(1, lamport=7), _request(2, lamport=2)
    tie_b, tie_a = _request(4, lamport=5), _request(3, lamport=5)  # same origin: by id
    for req in (late, early, tie_b, tie_a):  # as one datagram would carry them
        _hear(a, h, req, 1.0)
    a.on_timer(1.0)
    assert _delivered(h) == [early.action_id, tie_a.action_id, tie_b.action_id, late.action_id]


def test_actions_heard_in_different_steps_are_delivered_as_heard() -> None:
    a, h = _actions()
    late, early = _request(1, lamport=7), _request(2, lamport=2)
    _hear(a, h, late, 1.0)
    a.on_timer(1.0)
    _hear(a, h, early, 1.001)  # 1 ms later: no hold waits for it
    a.on_timer(1.001)
    assert _delivered(h) == [late.action_id, early.action_id]


def test_an_answer_goes_to_the_origin_once() -> None:
    a, h = _actions()
    req = _request(1)
    _hear(a, h, req, 1.0)
    assert not a.answer(req.action_id, True, "too early", 1.05)  # not delivered yet
    a.on_timer(2.0)
    assert a.answer(req.action_id, True, "done", 2.5)
    assert not a.answer(req.action_id, False, "twice", 2.6)
    assert not a.answer(b"\x09" * 16, True, "unknown", 2.7)
    origin = h.members.members[node_id(2)]
    assert h.streams == [(origin.address, [ActionResult(req.action_id, True, "done")])]


def test_our_own_action_is_delivered_here_and_its_answer_recorded() -> None:
    a, h = _actions()
    action_id = a.start("zstop", "vm-7", 1.0)
    assert a.next_deadline() == 1.0
    a.on_timer(1.0)
    assert _delivered(h) == [action_id]
    assert a.pending(action_id) == {h.node_id, node_id(2)}
    a.answer(action_id, True, "stopped", 1.5)
    assert a.pending(action_id) == {node_id(2)}
    answered = [e for e in h.events if isinstance(e, ActionAnswered)]
    assert [(e.node, e.ok, e.result) for e in answered] == [("n1", True, "stopped")]
    peer = h.members.members[node_id(2)]
    a.on_stream(ActionResult(action_id, False, "busy"), peer.node_id, peer.address, 1.6)
    assert a.pending(action_id) == set()
    assert a.outstanding[action_id].results[node_id(2)] == (False, "busy")
    # Push-pull carries it within the sync window only.
    assert a.sync_state() is not None
    a.on_timer(1.0 + SYNC_WINDOW + 1)
    assert a.sync_state() is None


def test_the_origin_sends_its_request_again_to_who_has_not_answered() -> None:
    """Gossip can lose every copy to one node: the origin asks it again by TCP, after
    RESEND_FIRST and then with doubling gaps, until it answers."""
    a, h = _actions()
    add_member(h, a, 3)
    action_id = a.start("zstop", "vm-7", 1.0)
    a.on_timer(1.0)
    a.answer(action_id, True, "stopped", 1.1)
    req = a.outstanding[action_id].request
    peer2, peer3 = (h.members.members[node_id(i)] for i in (2, 3))
    a.on_stream(ActionResult(action_id, True, "ok"), peer2.node_id, peer2.address, 1.2)
    assert a.next_deadline() == 1.0 + RESEND_FIRST
    a.on_timer(1.0 + RESEND_FIRST)
    assert h.streams == [(peer3.address, [req])]  # only the one that did not answer
    gap = a.next_deadline() - (1.0 + RESEND_FIRST)  # type: ignore[operator]
    assert gap == 2 * RESEND_FIRST
    a.on_stream(ActionResult(action_id, True, "ok"), peer3.node_id, peer3.address, 3.5)
    a.on_timer(1.0 + 3 * RESEND_FIRST)
    assert len(h.streams) == 1 and a.next_deadline() != 1.0 + 3 * RESEND_FIRST


def test_the_origin_stops_asking_after_resend_for() -> None:
    a, h = _actions()
    action_id = a.start("zstop", "vm-7", 0.0)
    sent_at = []
    while (due := a.next_deadline()) is not None and due < RESEND_FOR + 60.0:
        before = len(h.streams)
        a.on_timer(due)
        sent_at += [due] * (len(h.streams) - before)
    assert len(sent_at) >= 5 and max(sent_at) < RESEND_FOR  # 1, 3, 7, 15, 23 ... s
    assert a.outstanding[action_id].resend_at is None


def test_a_copy_from_the_origin_is_answered_again_never_run_twice() -> None:
    a, h = _actions()
    req = _request(1)
    _hear(a, h, req, 1.0)
    a.on_timer(1.0)
    assert a.answer(req.action_id, True, "done", 1.5)
    origin = h.members.members[node_id(2)]
    reply = a.on_stream(req, origin.node_id, origin.address, 3.0)  # the origin asks again
    assert reply and reply[0].action_id == req.action_id
    a.on_timer(3.0)
    assert _delivered(h) == [req.action_id]  # once
    answer = [origin.address, [ActionResult(req.action_id, True, "done")]]
    assert [list(s) for s in h.streams] == [answer, answer]
