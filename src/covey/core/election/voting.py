"""Candidacy and voting of the election (mixed into Election).

This module holds what a node needs to stand and to vote: the :class:`Role` it plays,
the durable :class:`VoteStore` (current term and the vote given in it), one vote round
(pre-vote or real vote), the eligibility and priority tags, the random back-off before
standing, the round's win and failure, term adoption, stepping down, the safety rule
that refuses votes while a lease may still be valid, and the handlers of
``VoteRequest`` and ``VoteReply``. The theory of operation is in
:mod:`covey.core.election.election`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from covey.core.effects import Effect
from covey.core.election.messages import VoteReply, VoteRequest
from covey.core.election.state import ElectionState
from covey.core.events import TraceOp
from covey.core.types import Address, MemberState

if TYPE_CHECKING:
    pass

#: Tag that makes a member ineligible when set to "no"/"false"/"0".
ELIGIBLE_TAG = "covey.eligible"
#: Tag carrying a member's election priority (integer, higher stands first; default 0).
PRIORITY_TAG = "covey.priority"
#: A vote request is sent this many times per round to members that have not answered.
RESENDS = 3


class Role(enum.Enum):
    """What this node is in the election."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(slots=True)
class VoteStore:
    """The durable part of the election: the current term and the vote given in it.

    The election holds it in memory and, after every change, hands out a
    :class:`SaveVote` effect; the runtime writes it (fsync'd) before any datagram of that
    step leaves, so a vote is never sent before it is on disk. At start the runtime
    passes what it read back.
    """

    term: int = 0
    voted_for: bytes | None = None


@dataclass(frozen=True, slots=True)
class SaveVote(Effect):
    """Make the election's term and vote durable before this step's messages leave."""

    term: int
    voted_for: bytes | None


@dataclass(slots=True)
class _Round:
    pre: bool
    term: int
    started: float
    deadline: float
    resend_at: float
    request: VoteRequest | None = None
    received: int = 0  # the node's datagram count when the round began
    votes: set[bytes] = field(default_factory=set)
    replies: set[bytes] = field(default_factory=set)
    max_term: int = 0


class VotingMixin(ElectionState):
    """Candidacy and voting state of :class:`~covey.core.election.election.Election`."""

    def _save_vote(self) -> None:
        self.handle.persist(SaveVote(self.store.term, self.store.voted_for))

    def _eligible(self) -> bool:
        return self.handle.members.local.tags.get(ELIGIBLE_TAG, "yes").lower() not in (
            "no",
            "false",
            "0",
        )

    def priority(self, tags: Mapping[str, str] | None = None) -> int:
        """A member's priority tag (ours by default); bad values count as 0."""
        raw = (tags if tags is not None else self.handle.members.local.tags).get(PRIORITY_TAG, "0")
        try:
            return max(0, min(int(raw), 1 << 31))
        except ValueError:
            return 0

    def _backoff(self) -> float:
        delay = self.cfg.backoff * self.handle.rng.random()
        mine = self.priority()
        for m in self.handle.members.live():
            if m.node_id != self.handle.node_id and self.priority(m.tags) > mine:
                return delay + self.cfg.backoff  # let the higher priority stand first
        return delay

    def _maybe_stand(self, now: float) -> None:
        cfg = self.cfg
        self._election_at = None
        if self.role is not Role.FOLLOWER or self._round is not None:
            return
        quiet = max(self.leader_heard + cfg.follower_wait, self._quiet_until)
        if now < quiet:
            self._election_at = quiet + self._backoff()
            return
        if not self._eligible():
            self._election_at = now + cfg.follower_wait
            return
        self._start_round(True, self.term + 1, now)

    def _start_round(self, pre: bool, term: int, now: float) -> None:
        timeout = self.cfg.vote_timeout
        rnd = _Round(pre, term, now, now + timeout, now + timeout / RESENDS)
        rnd.received = self.handle.datagrams_received
        rnd.votes.add(self.handle.node_id)
        self._round = rnd
        if not pre:
            self.role = Role.CANDIDATE
            self.store.term = term
            self.store.voted_for = self.handle.node_id
            self._save_vote()
            self.leader_id = None
            self.elections += 1
            self._trace(TraceOp.ELECTION, now, "candidate", term)
        if len(rnd.votes) >= self.quorum():
            self._round_won(rnd, now)
            return
        rnd.request = VoteRequest(term, pre, self.cfg.expected_votes, self.priority())
        self._broadcast(rnd.request, now)

    def _resend_round(self, rnd: _Round, now: float) -> None:
        # A lost request or reply must not cost a whole round (and the voters' no-dueling
        # wait after a failed one): ask again whoever has not answered yet. Voters answer
        # a repeated request the same way, so this changes no outcome, only its odds.
        rnd.resend_at = now + self.cfg.vote_timeout / RESENDS
        if rnd.request is None:
            return
        answered = rnd.replies | rnd.votes
        for m in self.handle.members.members.values():
            if m.node_id not in answered and m.state is not MemberState.LEFT:
                self.handle.send(m.address, [rnd.request], now=now)

    def _round_won(self, rnd: _Round, now: float) -> None:
        self._round = None
        if rnd.pre:
            self._start_round(False, max(rnd.term, rnd.max_term + 1, self.term + 1), now)
            return
        self.role = Role.LEADER
        self.leader_id = self.handle.node_id
        self.lease_until = rnd.started + self.cfg.lease
        self.stable_count = 0
        self.leader_stable = False
        self._hb_sent.clear()
        self._acked.clear()
        self._stable_seq = 0
        self._election_at = None
        self._trace(TraceOp.LEADER_START, now, "elected", self.term)
        self._announce(now)
        self._send_heartbeat(now)
        self._on_leadership(now)

    def _round_failed(self, rnd: _Round, now: float) -> None:
        self._round = None
        if self.role is Role.CANDIDATE:
            self.role = Role.FOLLOWER
        self._note_silence(rnd, now)
        self._election_at = now + self.cfg.backoff * (1.0 + self.handle.rng.random())

    def _adopt_term(self, term: int, now: float) -> None:
        if term <= self.store.term:
            return
        self.store.term = term
        self.store.voted_for = None
        self._save_vote()
        if self.role is not Role.FOLLOWER:
            self._step_down(now, "higher term")
        self._round = None
        self.leader_id = None
        if self._election_at is None:
            # A pre-vote round (a follower's) was just dropped: without this the node
            # would never stand again (chaos seed 594: the one node with the highest term
            # sat silent while two others could not win).
            self._election_at = now + self.cfg.follower_wait + self._backoff()

    def _step_down(self, now: float, why: str) -> None:
        was_leader = self.role is Role.LEADER
        self.role = Role.FOLLOWER
        self._round = None
        self.lease_until = -math.inf
        self._next_hb = None
        if was_leader:
            self.leader_id = None
            self._trace(TraceOp.LEADER_DELTA, now, "step down: " + why, self.term)
            self._announce(now)
        if self._election_at is None:
            self._election_at = now + self.cfg.follower_wait + self._backoff()

    def _refuses(self, candidate: bytes, now: float) -> bool:
        """True while a leader's lease may still be valid somewhere (the safety rule)."""
        if now < self._quiet_until:
            return True
        if self.role is Role.LEADER:
            return now < self.lease_until
        # The node whose lease our last acceptance may back can stand again at once (and
        # be answered again when it repeats a request); anyone else waits it out.
        return now < self.leader_heard + self.cfg.follower_wait and candidate != self.heard_from

    def _on_vote_request(self, m: VoteRequest, sender: bytes, addr: Address, now: float) -> None:
        agrees = self._config_agrees(m.expected, sender, now)
        if not agrees or self._refuses(sender, now) or m.term < self.term:
            granted = False
        elif m.pre:
            granted = True
        else:
            self._adopt_term(m.term, now)
            granted = self.store.voted_for in (None, sender) and self.role is Role.FOLLOWER
            if granted:
                self.store.voted_for = sender
                self._save_vote()
                self.leader_heard = now  # behave as if the candidate had led: no dueling
                self.heard_from = sender
                self.leader_id = None
        reply = VoteReply(m.term, m.pre, granted, self.cfg.expected_votes, self.term)
        self.handle.send(addr, [reply], now=now)

    def _on_vote_reply(self, m: VoteReply, sender: bytes, now: float) -> None:
        if not m.pre and not m.granted and m.voter_term > self.term:
            self._adopt_term(m.voter_term, now)
            return
        rnd = self._round
        if rnd is None or rnd.pre != m.pre or rnd.term != m.term:
            return
        rnd.replies.add(sender)
        rnd.max_term = max(rnd.max_term, m.voter_term)
        if m.granted:
            rnd.votes.add(sender)
            if len(rnd.votes) >= self.quorum():
                self._round_won(rnd, now)
