"""Leader heartbeats and the lease: :class:`Heartbeats`.

The leader's side: a heartbeat every ``heartbeat_interval`` (carrying term, panic and
recover generation, and whether leadership is stable), and the lease extended from the
acknowledgements of a quorum (:func:`covey.core.election.quorum.lease_base`); the
heartbeats a quorum accepted are counted until leadership is *stable*. The member's side:
accept a leader's heartbeat (following it, and its panic or recovery) or refuse it, and
acknowledge either way. The theory of operation, and why the lease is safe, is in
:mod:`covey.core.election.election`.
"""

from __future__ import annotations

import math

from covey.core.election.fence import Fencing
from covey.core.election.messages import Heartbeat, HeartbeatAck, clip_reason
from covey.core.election.quorum import lease_base, quorate
from covey.core.election.roles import adopt_term, become_follower
from covey.core.election.sizing import Sizing
from covey.core.election.state import ElectionState, Role
from covey.core.events import TraceOp
from covey.core.types import Address

#: A leader heartbeat trace is recorded once per this many heartbeats.
HEART_TRACE_EVERY = 50


class Heartbeats:
    """Heartbeats and the lease of one node's election, over its :class:`ElectionState`.

    Args:
        state: the shared state.
        fencing: the panic mode the heartbeats carry and the acks report.
        sizing: checks and learns the expected size the heartbeats and acks carry.
    """

    def __init__(self, state: ElectionState, fencing: Fencing, sizing: Sizing) -> None:
        self.s = state
        self.fencing = fencing
        self.sizing = sizing
        #: The latest heartbeat sequence number (grows across leaderships).
        self.seq = 0
        #: Leader: member -> when its latest ack arrived (seed 003).
        self.member_acks: dict[bytes, float] = {}

    def send(self, now: float) -> None:
        """Send the next heartbeat to every member and arm the one after."""
        s, cfg = self.s, self.s.cfg
        self.seq += 1
        seq = self.seq
        sent = s.leadership.sent
        sent[seq] = now
        for old in [n for n, t in sent.items() if t < now - cfg.lease]:
            del sent[old]
        s.next_hb = now + cfg.heartbeat_interval
        if quorate(1, s.quorum()):  # our own acceptance is a quorum: the lease runs from now
            s.lease_until = max(s.lease_until, now + cfg.lease)
            self._count_stable(seq, now)
        panic = self.fencing
        gen, expected = s.size_pair
        hb = Heartbeat(
            s.term,
            seq,
            expected,
            clip_reason(panic.panic_reason or ""),
            panic.recover_gen,
            s.leader_stable,
            gen,
        )
        s.broadcast(hb, now)
        if seq % HEART_TRACE_EVERY == 1:
            s.trace(TraceOp.LEADER_HEART, now, "heartbeat", seq)

    def _count_stable(self, seq: int, now: float) -> None:
        s, lead = self.s, self.s.leadership
        if seq <= lead.stable_seq:
            return
        lead.stable_seq = seq
        lead.stable_count += 1
        if not s.leader_stable and lead.stable_count >= s.cfg.stable_after:
            s.leader_stable = True
            s.trace(TraceOp.LEADER_DELTA, now, "stable", s.term)

    def on_heartbeat(self, m: Heartbeat, sender: bytes, addr: Address, now: float) -> None:
        """A leader's heartbeat: follow it if its term is ours, and acknowledge."""
        s, panic = self.s, self.fencing
        if now < s.quiet_until:
            return
        if not self.sizing.accepts(m.size_gen, m.expected, sender, now):
            if s.cfg.tracked:  # a leader behind our size: refuse, and tell it ours
                self._ack(m, False, addr, now)
            return
        adopt_term(s, m.term, now)
        ok = m.term == s.term
        if ok and s.role is Role.LEADER:
            panic.panic(now, f"two leaders claim term {m.term}")
            ok = False
        elif ok and s.leader_id not in (None, sender):
            panic.panic(now, f"two leaders claim term {m.term}")
        if ok:
            # Hearing a leader is as good as an armed timer: stand after follower_wait.
            stand_at = s.election_at if s.election_at is not None else now + s.cfg.follower_wait
            if s.role is Role.CANDIDATE:
                become_follower(s, now, "a leader of our term", stand_at=stand_at)
            s.leader_id = sender
            s.leader_heard = now
            s.heard_from = sender
            s.leader_stable = m.stable
            s.election_at = stand_at
            s.announce(now)
            panic.follow_panic(m.panic, m.recover_gen, now)
        self._ack(m, ok, addr, now)

    def _ack(self, m: Heartbeat, ok: bool, addr: Address, now: float) -> None:
        s, panic = self.s, self.fencing
        gen, expected = s.size_pair
        reason = clip_reason(panic.panic_reason or "")
        ack = HeartbeatAck(m.term, m.seq, s.term, ok, reason, panic.panic_gen, expected, gen)
        s.handle.send(addr, [ack], now=now)

    def on_ack(self, m: HeartbeatAck, sender: bytes, now: float) -> None:
        """A member's acknowledgement: adopt its panic, extend the lease with a quorum's."""
        s = self.s
        self.sizing.learn(m.size_gen, m.expected)  # a larger size raises the lease's quorum
        if m.member_term > s.term:
            adopt_term(s, m.member_term, now)
            return
        if s.role is not Role.LEADER or m.term != s.term or not m.ok:
            return
        self.member_acks[sender] = now
        if m.panic and m.panic_gen >= self.fencing.recover_gen:
            self.fencing.panic(now, f"{s.name_of(sender)}: {m.panic}")
        lead = s.leadership
        sent = lead.sent.get(m.seq)
        if sent is None or sent <= lead.acked.get(sender, -math.inf):
            return
        lead.acked[sender] = sent
        base = lease_base(lead.acked.values(), s.quorum())
        if base is not None and base + s.cfg.lease > s.lease_until:
            s.lease_until = base + s.cfg.lease
            self._count_stable(m.seq, now)
