"""Role transitions of one node's election, driven through a FakeHandle."""

from __future__ import annotations

import math
from collections.abc import Sequence

from covey.core.election.election import Role, SaveVote
from covey.core.election.events import LeaderChanged
from covey.core.election.messages import Heartbeat, VoteReply, VoteRequest

from ..fakes import node_id
from .support import addr, elect, fire, grant, heartbeat, role, sent, started


def leader_changes(events: Sequence[object]) -> list[bytes | None]:
    return [e.leader_id for e in events if isinstance(e, LeaderChanged)]


def test_a_follower_stands_with_a_pre_vote_then_a_vote_and_leads() -> None:
    e, h = started(3)
    assert role(e) is Role.FOLLOWER and e.term == 0
    at = e._election_at
    assert at is not None and at >= e.cfg.follower_wait  # refuses to stand right after start

    t = fire(e)
    assert t == at
    rnd = e._round
    assert rnd is not None and rnd.pre and rnd.term == 1
    # The pre-vote changes nobody's state: no term, no vote, nothing to save.
    assert role(e) is Role.FOLLOWER and e.term == 0 and h.effects == []
    pre = sent(h, VoteRequest)
    assert {a for a, _ in pre} == {addr(h, 2), addr(h, 3)}
    assert all(m.pre and m.term == 1 for _, m in pre)

    h.take_sent()
    grant(e, h, 2, t)
    assert role(e) is Role.CANDIDATE and e.term == 1
    assert h.effects == [SaveVote(1, node_id(1))]  # voted for itself, saved
    real = sent(h, VoteRequest)
    assert len(real) == 2 and all(not m.pre and m.term == 1 for _, m in real)

    h.take_sent()
    grant(e, h, 2, t)
    assert role(e) is Role.LEADER and e.is_leader(t) and e.current_leader(t) == node_id(1)
    assert e._round is None and e._election_at is None
    assert e.lease_until == t + e.cfg.lease
    assert leader_changes(h.events) == [node_id(1)]
    assert len(sent(h, Heartbeat)) == 2  # the first heartbeat leaves at once


def test_a_leader_without_acks_steps_down_when_its_lease_ends() -> None:
    e, h = started(3)
    t0 = elect(e, h)
    end = e.lease_until
    while role(e) is Role.LEADER:
        t = fire(e)
        assert t <= end
    assert t == end and not e.is_leader(t)
    assert e.lease_until == -math.inf and e.current_leader(t) is None
    assert leader_changes(h.events) == [node_id(1), None]
    # It stands again soon (its followers still back it), well before follower_wait.
    assert e._election_at is not None and e._election_at <= t + e.cfg.backoff
    assert len(sent(h, Heartbeat)) // 2 == math.ceil((end - t0) / e.cfg.heartbeat_interval)


def test_a_leader_steps_down_on_a_higher_term_and_follows_its_leader() -> None:
    e, h = started(3)
    t = elect(e, h)
    ack = heartbeat(e, h, 3, e.term + 1, t + 0.1)
    assert role(e) is Role.FOLLOWER and e.term == 2 and not e.is_leader(t + 0.1)
    assert ack.ok and ack.member_term == 2
    assert h.effects[-1] == SaveVote(2, None)  # the new term, no vote given in it
    assert e.current_leader(t + 0.1) == node_id(3)
    assert leader_changes(h.events) == [node_id(1), None, node_id(3)]
    assert e._election_at is not None


def test_a_candidate_steps_down_on_a_refusal_with_a_higher_term() -> None:
    e, h = started(3)
    t = fire(e)
    grant(e, h, 2, t)
    assert role(e) is Role.CANDIDATE
    refusal = VoteReply(1, False, False, 3, 7)
    e.on_message(refusal, node_id(3), addr(h, 3), t)
    assert role(e) is Role.FOLLOWER and e.term == 7 and e._round is None
    assert h.effects[-1] == SaveVote(7, None)
    assert e._election_at is not None  # it will stand again


def test_a_candidate_follows_a_leader_of_its_term() -> None:
    e, h = started(3)
    t = fire(e)
    grant(e, h, 2, t)
    assert role(e) is Role.CANDIDATE and e.term == 1
    ack = heartbeat(e, h, 3, 1, t + 0.05)
    assert ack.ok and role(e) is Role.FOLLOWER and e._round is None
    assert e.current_leader(t + 0.05) == node_id(3)
    assert e._election_at is not None and e._election_at >= t + 0.05 + e.cfg.follower_wait - 1e-9


def test_a_failed_round_falls_back_to_follower_and_stands_again_later() -> None:
    e, h = started(3)
    t = fire(e)
    grant(e, h, 2, t)
    assert role(e) is Role.CANDIDATE
    rnd = e._round
    assert rnd is not None
    while e._round is not None:
        t = fire(e)
    assert t == rnd.deadline and role(e) is Role.FOLLOWER and e.term == 1
    at = e._election_at
    assert at is not None and t + e.cfg.backoff <= at <= t + 2 * e.cfg.backoff
    # The unanswered requests were asked again within the round.
    assert len(sent(h, VoteRequest)) > 4


def test_an_ineligible_node_never_stands() -> None:
    e, h = started(3)
    h.members.local.tags["covey.eligible"] = "no"
    for _ in range(5):
        fire(e)
    assert role(e) is Role.FOLLOWER and e._round is None and e.term == 0
    assert sent(h, VoteRequest) == [] and e._election_at is not None


def test_leave_steps_down_and_never_stands_again() -> None:
    e, h = started(3)
    t = elect(e, h)
    e.on_leave(t + 0.1)
    assert role(e) is Role.FOLLOWER and e.next_deadline() is None
    assert leader_changes(h.events) == [node_id(1), None]
