"""Leader heartbeats and the lease of the election (mixed into Election).

This module holds the leader's side and the member's side of the heartbeats: sending a
heartbeat every ``heartbeat_interval`` (carrying term, panic and recover generation),
accepting or refusing a leader's heartbeat as a member and acknowledging it, extending
the lease from the acknowledgements of a quorum, and counting the accepted heartbeats
after which leadership is *stable*. The theory of operation, and why the lease is safe,
is in :mod:`covey.core.election.election`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from covey.core.election.messages import Heartbeat, HeartbeatAck, clip_reason
from covey.core.election.state import ElectionState
from covey.core.election.voting import Role
from covey.core.events import TraceOp
from covey.core.types import Address

if TYPE_CHECKING:
    pass

#: A leader heartbeat trace is recorded once per this many heartbeats.
HEART_TRACE_EVERY = 50


class LeaseMixin(ElectionState):
    """Heartbeat and lease state of :class:`~covey.core.election.election.Election`."""

    def _send_heartbeat(self, now: float) -> None:
        self._hb_seq += 1
        seq = self._hb_seq
        self._hb_sent[seq] = now
        for old in [s for s, t in self._hb_sent.items() if t < now - self.cfg.lease]:
            del self._hb_sent[old]
        self._next_hb = now + self.cfg.heartbeat_interval
        if self.quorum() <= 1:
            self.lease_until = max(self.lease_until, now + self.cfg.lease)
            self._count_stable(seq, now)
        hb = Heartbeat(
            self.term,
            seq,
            self.cfg.expected_votes,
            clip_reason(self.panic_reason or ""),
            self.recover_gen,
            self.leader_stable,
        )
        self._broadcast(hb, now)
        if seq % HEART_TRACE_EVERY == 1:
            self._trace(TraceOp.LEADER_HEART, now, "heartbeat", seq)

    def _count_stable(self, seq: int, now: float) -> None:
        if seq <= self._stable_seq:
            return
        self._stable_seq = seq
        self.stable_count += 1
        if not self.leader_stable and self.stable_count >= self.cfg.stable_after:
            self.leader_stable = True
            self._trace(TraceOp.LEADER_DELTA, now, "stable", self.term)

    def _on_heartbeat(self, m: Heartbeat, sender: bytes, addr: Address, now: float) -> None:
        if now < self._quiet_until:
            return
        if not self._config_agrees(m.expected, sender, now):
            return
        self._adopt_term(m.term, now)
        ok = m.term == self.term
        if ok and self.role is Role.LEADER:
            self._panic(now, f"two leaders claim term {m.term}")
            ok = False
        elif ok and self.leader_id not in (None, sender):
            self._panic(now, f"two leaders claim term {m.term}")
        if ok:
            if self.role is Role.CANDIDATE:
                self.role = Role.FOLLOWER
                self._round = None
            self.leader_id = sender
            self.leader_heard = now
            self.heard_from = sender
            self.leader_stable = m.stable
            if self._election_at is None:
                self._election_at = now + self.cfg.follower_wait
            self._announce(now)
            self._follow_panic(m.panic, m.recover_gen, now)
        ack = HeartbeatAck(
            m.term, m.seq, self.term, ok, clip_reason(self.panic_reason or ""), self.panic_gen
        )
        self.handle.send(addr, [ack], now=now)

    def _on_ack(self, m: HeartbeatAck, sender: bytes, now: float) -> None:
        if m.member_term > self.term:
            self._adopt_term(m.member_term, now)
            return
        if self.role is not Role.LEADER or m.term != self.term or not m.ok:
            return
        self.member_acks[sender] = now
        if m.panic and m.panic_gen >= self.recover_gen:
            self._panic(now, f"{self._name_of(sender)}: {m.panic}")
        sent = self._hb_sent.get(m.seq)
        if sent is None or sent <= self._acked.get(sender, -math.inf):
            return
        # Each member refuses votes until (its latest accepted heartbeat's send time +
        # follower_wait), so the lease may run from the quorum-th latest of those times,
        # even when no single heartbeat reached a whole quorum.
        self._acked[sender] = sent
        need = self.quorum() - 1
        if need <= 0 or len(self._acked) < need:
            return
        base = sorted(self._acked.values(), reverse=True)[need - 1]
        if base + self.cfg.lease > self.lease_until:
            self.lease_until = base + self.cfg.lease
            self._count_stable(m.seq, now)
