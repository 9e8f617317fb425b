"""Voting: one vote per term, saved before the reply leaves, and the safety rule."""

from __future__ import annotations

from typing import Any

from covey.core.effects import Effect
from covey.core.election.election import Role, SaveVote, VoteStore
from covey.core.election.events import PanicEntered
from covey.core.election.messages import VoteReply, VoteRequest
from covey.core.types import Address

from ..fakes import FakeHandle, node_id
from .support import addr, heartbeat, request, role, started

WAIT = 1.2  # ElectionConfig's default follower_wait: a node refuses votes that long
LATE = WAIT + 0.1  # past every refusal window opened at 0


class SendRecorder(FakeHandle):
    """Remembers, for every datagram, which effects had been handed out when it was sent."""

    def __init__(self, i: int = 1) -> None:
        super().__init__(i)
        self.effects_at_send: list[tuple[list[Any], list[Effect]]] = []

    def send(self, addr: Address | None, msgs: list[Any], *, now: float) -> None:
        self.effects_at_send.append((list(msgs), list(self.effects)))
        super().send(addr, msgs, now=now)


def test_a_vote_is_saved_before_the_reply_is_sent() -> None:
    h = SendRecorder()
    e, _ = started(3, handle=h)
    reply = request(e, h, 2, 1, LATE)
    assert reply.granted and reply.term == 1 and reply.voter_term == 1
    msgs, saved = h.effects_at_send[-1]
    assert isinstance(msgs[0], VoteReply)
    assert saved[-1] == SaveVote(1, node_id(2))  # already handed out when the reply left


def test_at_most_one_vote_per_term() -> None:
    e, h = started(3)
    assert request(e, h, 2, 1, LATE).granted
    assert request(e, h, 2, 1, LATE + 0.01).granted  # the same candidate asking again
    # Another candidate of the same term, after the no-dueling wait: still refused.
    assert not request(e, h, 3, 1, LATE + WAIT + 0.1).granted
    assert h.effects == [SaveVote(1, None), SaveVote(1, node_id(2)), SaveVote(1, node_id(2))]
    assert request(e, h, 3, 2, LATE + WAIT + 0.2).granted  # a new term, a new vote
    assert h.effects[-1] == SaveVote(2, node_id(3))


def test_a_restarted_node_remembers_its_vote() -> None:
    store = VoteStore()
    e, h = started(3, store=store)
    assert request(e, h, 2, 1, LATE).granted
    assert store == VoteStore(1, node_id(2))
    again, h2 = started(3, store=store)  # the runtime passes back what it saved
    assert not request(again, h2, 3, 1, LATE).granted
    assert again.term == 1 and h2.effects == []


def test_a_pre_vote_changes_nothing() -> None:
    e, h = started(3)
    reply = request(e, h, 2, 5, LATE, pre=True)
    assert reply.granted and reply.pre and reply.voter_term == 0
    assert e.term == 0 and h.effects == [] and role(e) is Role.FOLLOWER
    assert request(e, h, 3, 5, LATE + 0.01, pre=True).granted  # nothing was promised


def test_votes_are_refused_while_a_lease_may_be_valid() -> None:
    e, h = started(3)
    assert not request(e, h, 2, 1, WAIT - 0.1).granted  # just started: may have acked
    assert heartbeat(e, h, 2, 1, LATE).ok
    # Another candidate must wait follower_wait after the heartbeat we accepted...
    assert not request(e, h, 3, 2, LATE + WAIT - 0.1).granted
    assert e.term == 1  # ...and a refused request does not even move our term
    # ...but the leader we acked may stand again at once.
    assert request(e, h, 2, 2, LATE + 0.1).granted


def test_older_terms_are_refused_and_answered_with_ours() -> None:
    e, h = started(3)
    assert request(e, h, 2, 4, LATE).granted
    reply = request(e, h, 2, 3, LATE + 0.1)
    assert not reply.granted and reply.voter_term == 4


def test_a_different_expected_votes_is_refused_and_panics() -> None:
    e, h = started(3)
    h.take_sent()
    e.on_message(VoteRequest(1, False, 5, 0), node_id(2), addr(h, 2), LATE)
    ((_, reply),) = [(a, m) for a, msgs in h.sent for m in msgs]
    assert isinstance(reply, VoteReply) and not reply.granted
    assert e.term == 0 and h.effects == []
    panics = [ev for ev in h.events if isinstance(ev, PanicEntered)]
    assert len(panics) == 1 and "invalid shared configuration" in panics[0].reason
