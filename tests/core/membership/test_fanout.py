"""Regression: the node fans each membership event out to every capability at once.

A capability learns of a change in the very call that caused it (``set_tags``,
``receive_datagram``), not at some later datagram or timer; and the caller still gets the
same events, in the same order, from ``pop_events()``.
"""

from __future__ import annotations

from covey.core import (
    MemberJoined,
    MemberState,
    MemberSuspect,
    MemberUpdated,
    Node,
)
from covey.core.events import MemberEvent
from covey.core.plugin import Capability
from covey.core.wire.messages import Alive, Suspect

from .helpers import PEER, make_node, node_id, seal


class Recorder(Capability):
    """Records every membership event it is told of, and how its directory saw the member."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[MemberEvent, float]] = []
        #: The member's state in the handle's directory at the moment of the call.
        self.state_then: list[MemberState | None] = []

    def on_member_event(self, event: MemberEvent, now: float) -> None:
        self.seen.append((event, now))
        view = self.handle.members.get(event.member.node_id)
        self.state_then.append(None if view is None else view.state)

    def events(self) -> list[MemberEvent]:
        return [e for e, _ in self.seen]


class First(Recorder):
    name = "first"


class Second(Recorder):
    name = "second"


def _node() -> tuple[Node, First, Second]:
    node = make_node(1, start=False)
    first, second = First(), Second()
    node.add_capability(first)
    node.add_capability(second)
    node.start(now=0.0)
    node.pop_events()
    first.seen.clear()
    second.seen.clear()
    first.state_then.clear()
    second.state_then.clear()
    return node, first, second


def test_a_local_tag_change_reaches_every_capability_within_set_tags() -> None:
    node, first, second = _node()
    node.set_tags({"role": "db"}, now=1.5)
    # Nothing else has been called: no timer, no datagram collected.
    for cap in (first, second):
        [(event, now)] = cap.seen
        assert isinstance(event, MemberUpdated)
        assert event.member.node_id == node.node_id
        assert event.member.tags == {"role": "db"} and event.member.incarnation == 1
        assert now == 1.5
    assert first.events() == second.events()


def test_an_event_caused_by_a_datagram_reaches_them_during_receive_datagram() -> None:
    node, first, second = _node()
    alive = Alive(0, PEER, "n2", ("10.0.0.2", 7946), {})
    node.receive_datagram(seal([alive], sender=PEER), ("10.0.0.2", 7946), now=2.0)
    for cap in (first, second):
        [(event, now)] = cap.seen
        assert isinstance(event, MemberJoined) and event.member.node_id == PEER
        assert now == 2.0
        # Told at the moment it happens: the directory already holds the new member.
        assert cap.state_then == [MemberState.ALIVE]


def test_events_still_reach_pop_events_in_order() -> None:
    node, first, second = _node()
    node.set_tags({"v": "1"}, now=1.0)
    alive = Alive(0, PEER, "n2", ("10.0.0.2", 7946), {})
    node.receive_datagram(seal([alive], sender=PEER), ("10.0.0.2", 7946), now=2.0)
    rumour = Suspect(0, PEER, node_id(3))
    node.receive_datagram(seal([rumour], sender=node_id(3)), ("10.0.0.3", 7946), now=3.0)
    popped = node.pop_events()
    assert [type(e) for e in popped] == [MemberUpdated, MemberJoined, MemberSuspect]
    about = [e.member.node_id for e in popped if isinstance(e, MemberEvent)]
    assert about == [node.node_id, PEER, PEER]
    # Every capability saw the very same events, in the same order.
    assert first.events() == second.events() == popped
    assert [now for _, now in first.seen] == [1.0, 2.0, 3.0]
    assert second.state_then[-1] is MemberState.SUSPECT
    assert node.pop_events() == []
