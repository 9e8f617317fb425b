"""Heartbeats and the lease: a quorum's acks keep the leader leading."""

from __future__ import annotations

from covey.core.election.election import ElectionConfig, Role
from covey.core.election.messages import Heartbeat

from .support import ack, elect, fire, heartbeat, role, sent, started


def test_acknowledged_heartbeats_keep_the_lease() -> None:
    e, h = started(3)
    t0 = elect(e, h)
    seen = 0
    t = t0
    while t < t0 + 10.0:
        for _, hb in sent(h, Heartbeat)[seen:]:
            seen += 1
            if hb.seq % 2 == 0:  # only one heartbeat in two reaches a member (and back)
                ack(e, h, 2, hb, t + 0.01)
        t = fire(e)
        assert e.is_leader(t), t
    assert role(e) is Role.LEADER and e.lease_until > t
    names = e.names(t)
    assert names["leader"] == "n1" and names["stable"] is True and names["role"] == "leader"


def test_acks_of_less_than_a_quorum_do_not_extend_the_lease() -> None:
    e, h = started(5)
    t0 = elect(e, h, (2, 3))
    end = e.lease_until
    assert end == t0 + e.cfg.lease
    seen = 0
    while role(e) is Role.LEADER:
        for _, hb in sent(h, Heartbeat)[seen:]:
            seen += 1
            ack(e, h, 2, hb, e.next_deadline() or 0.0)  # one member of five: no quorum
        t = fire(e)
    assert t == end


def test_the_lease_runs_from_the_send_time_not_the_ack_time() -> None:
    e, h = started(3)
    elect(e, h)
    t = fire(e)  # the second heartbeat
    ((_, hb),) = sent(h, Heartbeat)[-2:-1]
    ack(e, h, 2, hb, t + 0.5)  # a slow ack
    assert e.lease_until == t + e.cfg.lease


def test_a_single_node_cluster_leads_on_its_own_heartbeats() -> None:
    e, _ = started(1, cfg=ElectionConfig(1))
    t = fire(e)
    assert e.is_leader(t)
    for _ in range(20):
        t = fire(e)
        assert e.is_leader(t)


def test_a_member_follows_and_acks_the_leader_of_its_term() -> None:
    e, h = started(3)
    a = heartbeat(e, h, 2, 3, 2.0)
    assert a.ok and a.term == 3 and a.member_term == 3 and e.term == 3
    assert e.current_leader(2.0) == (2).to_bytes(16, "big")
    assert e.current_leader(2.0 + e.cfg.follower_wait) is None  # silence: no leader
    stale = heartbeat(e, h, 3, 2, 2.1)
    assert not stale.ok and stale.member_term == 3  # the old leader learns our term
    assert e.current_leader(2.1) == (2).to_bytes(16, "big")
