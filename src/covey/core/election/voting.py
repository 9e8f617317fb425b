"""Candidacy and voting: standing for election, vote rounds, and answering candidates.

:class:`Voting` holds what a node does to stand and to vote: the eligibility tag, the
decision to stand when the election timer fires, one vote round at a time (a pre-vote,
then the real vote; requests asked again within the round to whoever has not answered),
the round's win and failure, the safety rule that refuses votes while a lease may still be
valid somewhere, and the handlers of ``VoteRequest`` and ``VoteReply``. Role changes go
through :mod:`covey.core.election.roles`; the theory of operation is in
:mod:`covey.core.election.election`.

:class:`Role`, :class:`VoteStore` and :class:`SaveVote` live in
:mod:`covey.core.election.state` and stay importable from here.
"""

from __future__ import annotations

from covey.core.election.fence import Fencing
from covey.core.election.lease import Heartbeats
from covey.core.election.messages import VoteReply, VoteRequest
from covey.core.election.quorum import quorate
from covey.core.election.roles import adopt_term, become_candidate, become_follower, become_leader
from covey.core.election.sizing import Sizing
from covey.core.election.state import PRIORITY_TAG as PRIORITY_TAG
from covey.core.election.state import ElectionState, VoteRound
from covey.core.election.state import Role as Role
from covey.core.election.state import SaveVote as SaveVote
from covey.core.election.state import VoteStore as VoteStore
from covey.core.types import Address, MemberState

#: Tag that makes a member ineligible when set to "no"/"false"/"0".
ELIGIBLE_TAG = "covey.eligible"
#: A vote request is sent this many times per round to members that have not answered.
RESENDS = 3


class Voting:
    """Standing and voting for one node's election, over its shared :class:`ElectionState`.

    Args:
        state: the shared state.
        fencing: checks the peers' configuration and notes unanswered rounds (panic).
        heartbeats: sends a new leader's first heartbeat.
        sizing: checks and learns the expected size the requests and replies carry.
    """

    def __init__(
        self, state: ElectionState, fencing: Fencing, heartbeats: Heartbeats, sizing: Sizing
    ) -> None:
        self.s = state
        self.fencing = fencing
        self.heartbeats = heartbeats
        self.sizing = sizing

    def eligible(self) -> bool:
        """False when our ``covey.eligible`` tag says no: we never stand."""
        return self.s.handle.members.local.tags.get(ELIGIBLE_TAG, "yes").lower() not in (
            "no",
            "false",
            "0",
        )

    # ---------------------------------------------------------------- standing

    def maybe_stand(self, now: float) -> None:
        """The election timer fired: start a pre-vote, or re-arm the timer."""
        s, cfg = self.s, self.s.cfg
        s.election_at = None
        if s.role is not Role.FOLLOWER or s.round is not None:
            return
        quiet = max(s.leader_heard + cfg.follower_wait, s.quiet_until)
        if cfg.tracked:
            quiet = max(quiet, s.started_at + cfg.bootstrap)  # still collecting peers
        if now < quiet:
            s.election_at = quiet + s.backoff()
            return
        if not self.eligible():
            s.election_at = now + cfg.follower_wait
            return
        self.start_round(True, s.term + 1, now)

    def start_round(self, pre: bool, term: int, now: float) -> None:
        """Ask every member for a (pre-)vote in ``term``; a real vote makes us candidate."""
        s = self.s
        timeout = s.cfg.vote_timeout
        rnd = VoteRound(pre, term, now, now + timeout, now + timeout / RESENDS)
        rnd.received = s.handle.datagrams_received
        rnd.votes.add(s.handle.node_id)
        s.round = rnd
        if not pre:
            become_candidate(s, term, now)
        if quorate(len(rnd.votes), s.quorum()):
            self.round_won(rnd, now)
            return
        gen, expected = s.size_pair
        rnd.request = VoteRequest(term, pre, expected, s.priority(), gen)
        s.broadcast(rnd.request, now)

    def resend_round(self, rnd: VoteRound, now: float) -> None:
        """Ask again whoever has not answered ``rnd`` yet."""
        # A lost request or reply must not cost a whole round (and the voters' no-dueling
        # wait after a failed one). Voters answer a repeated request the same way, so this
        # changes no outcome, only its odds.
        s = self.s
        rnd.resend_at = now + s.cfg.vote_timeout / RESENDS
        if rnd.request is None:
            return
        answered = rnd.replies | rnd.votes
        for m in s.handle.members.members.values():
            if m.node_id not in answered and m.state is not MemberState.LEFT:
                s.handle.send(m.address, [rnd.request], now=now)

    def round_won(self, rnd: VoteRound, now: float) -> None:
        """A quorum granted ``rnd``: a pre-vote leads to the real vote, a vote to leadership."""
        s = self.s
        s.round = None
        if rnd.pre:
            self.start_round(False, max(rnd.term, rnd.max_term + 1, s.term + 1), now)
            return
        become_leader(s, now, lease_from=rnd.started)
        self.heartbeats.send(now)
        self.fencing.on_leadership(now)

    def round_failed(self, rnd: VoteRound, now: float) -> None:
        """``rnd`` timed out: back to follower, stand again after a random back-off."""
        s = self.s
        retry = now + s.cfg.backoff * (1.0 + s.handle.rng.random())
        become_follower(s, now, "vote round failed", stand_at=retry)
        self.fencing.note_silence(rnd, now)

    # ---------------------------------------------------------------- voting

    def refuses(self, candidate: bytes, now: float) -> bool:
        """True while a leader's lease may still be valid somewhere (the safety rule)."""
        s = self.s
        if now < s.quiet_until:
            return True
        if s.role is Role.LEADER:
            return now < s.lease_until
        # The node whose lease our last acceptance may back can stand again at once (and
        # be answered again when it repeats a request); anyone else waits it out.
        return now < s.leader_heard + s.cfg.follower_wait and candidate != s.heard_from

    def on_vote_request(self, m: VoteRequest, sender: bytes, addr: Address, now: float) -> None:
        """Answer a candidate: at most one vote per term, saved before the reply leaves."""
        s = self.s
        agrees = self.sizing.accepts(m.size_gen, m.expected, sender, now)
        if not agrees or self.refuses(sender, now) or m.term < s.term:
            granted = False
        elif m.pre:
            granted = True
        else:
            adopt_term(s, m.term, now)
            granted = s.store.voted_for in (None, sender) and s.role is Role.FOLLOWER
            if granted:
                s.store.voted_for = sender
                s.save_vote()
                s.leader_heard = now  # behave as if the candidate had led: no dueling
                s.heard_from = sender
                s.leader_id = None
        gen, expected = s.size_pair
        reply = VoteReply(m.term, m.pre, granted, expected, s.term, gen)
        s.handle.send(addr, [reply], now=now)

    def on_vote_reply(self, m: VoteReply, sender: bytes, now: float) -> None:
        """Count a voter's answer to the round under way (a higher term ends our hopes)."""
        s = self.s
        self.sizing.learn(m.size_gen, m.expected)  # a larger size raises the quorum below
        if not m.pre and not m.granted and m.voter_term > s.term:
            adopt_term(s, m.voter_term, now)
            return
        rnd = s.round
        if rnd is None or rnd.pre != m.pre or rnd.term != m.term:
            return
        rnd.replies.add(sender)
        rnd.max_term = max(rnd.max_term, m.voter_term)
        if m.granted:
            rnd.votes.add(sender)
            if quorate(len(rnd.votes), s.quorum()):
                self.round_won(rnd, now)
