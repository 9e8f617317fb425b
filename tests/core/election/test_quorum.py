"""The quorum rules: pure functions, then the two-node mode as a node sees it."""

from __future__ import annotations

from covey.core.election.election import ElectionConfig, Role
from covey.core.election.events import DiskSlot
from covey.core.election.quorum import (
    alone_quorate,
    lease_base,
    lowest_peer,
    majority,
    quorate,
    quorum_size,
    seen_together,
)
from covey.core.types import MemberState

from ..fakes import add_member, node_id, set_state
from .support import fire, role, started


def test_majority_of_expected_votes() -> None:
    assert [majority(n) for n in range(1, 8)] == [1, 2, 2, 3, 3, 4, 4]
    assert quorum_size(5) == 3
    assert quorum_size(5, alone=True) == 3  # alone counts only in two-node mode
    assert quorum_size(2, two_node=True) == 2
    assert quorum_size(2, two_node=True, alone=True) == 1


def test_quorate_counts_reach_the_quorum() -> None:
    assert quorate(3, 3) and quorate(4, 3)
    assert not quorate(2, 3)


def test_the_lease_runs_from_the_quorum_th_latest_acceptance() -> None:
    # Five nodes: the leader and two members make a quorum, so the second latest member.
    assert lease_base([1.0, 3.0, 2.0], 3) == 2.0
    assert lease_base([1.0], 3) is None  # one member and the leader are no quorum of 5
    assert lease_base([4.0, 1.0], 2) == 4.0
    assert lease_base([4.0], 1) is None  # the leader alone: its lease runs from each send


def test_lowest_peer_ignores_ourselves() -> None:
    a, b, c = node_id(1), node_id(2), node_id(3)
    assert lowest_peer(b, [c, b, a]) == a
    assert lowest_peer(a, [a, c, b]) == b
    assert lowest_peer(a, [a]) is None


def test_two_node_alone_needs_both_seen_then_the_tie_breaker_or_a_dead_peer() -> None:
    a, b = node_id(1), node_id(2)
    assert not alone_quorate(a, b, both_seen=False, peer_dead=True)  # wait_for_all
    assert not alone_quorate(a, None, both_seen=True, peer_dead=False)
    assert alone_quorate(a, b, both_seen=True, peer_dead=False)  # the lower id breaks ties
    assert not alone_quorate(b, a, both_seen=True, peer_dead=False)
    assert alone_quorate(b, a, both_seen=True, peer_dead=True)  # the disk shows a dead
    assert not seen_together(1) and seen_together(2)


def test_two_node_mode_waits_for_all_then_the_tie_breaker_leads_alone() -> None:
    e, h = started(1, me=1, cfg=ElectionConfig(2, two_node=True))
    assert e.quorum() == 2
    for _ in range(10):  # started alone: never quorate, however long
        fire(e)
    assert role(e) is not Role.LEADER and e.term == 0
    add_member(h, e, 2)  # both seen together once
    assert e.quorum() == 1
    set_state(h, e, 2, MemberState.FAILED, now=e.next_deadline() or 0.0)
    assert e.quorum() == 1  # never forgotten
    while role(e) is not Role.LEADER:
        t = fire(e)
    assert e.is_leader(t) and e.term == 1  # with no vote but its own


def test_two_node_mode_the_other_node_needs_the_disk_to_lead_alone() -> None:
    e, h = started(1, me=2, cfg=ElectionConfig(2, two_node=True))
    add_member(h, e, 1)
    assert e.quorum() == 2  # node 1 is the tie-breaker, not us
    set_state(h, e, 1, MemberState.FAILED, now=1.0)
    assert e.quorum() == 2  # silent on the network is not dead without a disk
    timeout = e.cfg.disk_timeout

    def read(now: float, peer_stamp: float) -> None:  # our own slot changes every read
        slots = [
            DiskSlot(node_id(1), "n1", peer_stamp, 0, 0),
            DiskSlot(node_id(2), "n2", now, 0, 0),
        ]
        e.observe_disk(now, slots)

    read(1.0, 1.0)
    read(1.0 + timeout / 2, 1.0)
    assert e.quorum() == 2  # its slot is not stale yet
    read(1.0 + timeout, 1.0)
    assert e.quorum() == 1
    assert e.panic_reason is None
