"""The role transitions of the election: the only place where a node's role changes.

As etcd raft's ``becomeFollower`` / ``becomeCandidate`` / ``becomeLeader``, each function
does everything that goes with entering its role, so no other code needs to know which
fields belong to which role:

* :func:`become_candidate` starts a real vote: the term grows, the node votes for itself
  (saved as a :class:`~covey.core.election.state.SaveVote` effect before any request
  leaves) and forgets the leader.
* :func:`become_leader` takes the lease from the won round's start, starts a fresh
  :class:`~covey.core.election.state.Leadership` and announces itself. The one caller,
  :meth:`covey.core.election.voting.Voting.round_won`, then sends the first heartbeat and
  looks at members that failed meanwhile (the parts that own those).
* :func:`become_follower` drops any candidacy, vote round and lease; a leader that steps
  down announces it has no leader any more. The election timer is armed, so a follower
  always stands again some day.
* :func:`adopt_term` is the transition a higher term forces on any role: adopt it with
  no vote given in it, and follow nobody until its leader is heard.

Invariants kept here: a node that is not leader has ``lease_until = -inf`` and no
heartbeat due; a follower that has not left has an election timer or a vote round.
"""

from __future__ import annotations

import math

from covey.core.election.state import ElectionState, Leadership, Role
from covey.core.events import TraceOp


def become_candidate(s: ElectionState, term: int, now: float) -> None:
    """Stand in ``term``: vote for ourselves (persisted) and follow nobody."""
    s.role = Role.CANDIDATE
    s.store.term = term
    s.store.voted_for = s.handle.node_id
    s.save_vote()
    s.leader_id = None
    s.elections += 1
    s.trace(TraceOp.ELECTION, now, "candidate", term)


def become_leader(s: ElectionState, now: float, *, lease_from: float) -> None:
    """Lead the current term, with a lease from ``lease_from`` (the won round's start).

    The caller sends the first heartbeat right after (see the module docstring).
    """
    s.role = Role.LEADER
    s.leader_id = s.handle.node_id
    s.lease_until = lease_from + s.cfg.lease
    s.leader_stable = False
    s.leadership = Leadership()
    s.election_at = None  # a leader does not stand; it steps down when its lease ends
    s.trace(TraceOp.LEADER_START, now, "elected", s.term)
    s.announce(now)


def become_follower(
    s: ElectionState, now: float, why: str, *, stand_at: float | None = None
) -> None:
    """Be a follower (also from a follower: drops its pre-vote round).

    A leader stepping down traces ``why`` and announces that it knows no leader. The
    election timer is set to ``stand_at`` if given, else kept if armed, else armed at
    ``follower_wait`` plus a random back-off (one rng draw).
    """
    was_leader = s.role is Role.LEADER
    s.role = Role.FOLLOWER
    s.round = None
    s.lease_until = -math.inf
    s.next_hb = None
    if was_leader:
        s.leader_id = None
        s.trace(TraceOp.LEADER_DELTA, now, "step down: " + why, s.term)
        s.announce(now)
    if stand_at is not None:
        s.election_at = stand_at
    elif s.election_at is None:
        s.election_at = now + s.cfg.follower_wait + s.backoff()


def adopt_term(s: ElectionState, term: int, now: float) -> None:
    """A higher ``term`` was seen: adopt it (no vote given yet, saved) and follow nobody.

    Lower or equal terms change nothing.
    """
    if term <= s.store.term:
        return
    s.store.term = term
    s.store.voted_for = None
    s.save_vote()
    # Also for a follower: its pre-vote round is for a term now past, and without a timer
    # it would never stand again (chaos seed 594: the one node with the highest term sat
    # silent while two others could not win).
    become_follower(s, now, "higher term")
    s.leader_id = None
