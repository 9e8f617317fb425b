"""Failure detection: SWIM probes, indirect probes through k members, Lifeguard nacks.

Each probe interval (stretched by the local health score) the node pings the next member
of a shuffled round-robin order. Without an ack by the probe timeout it asks k random
members to ping the target for it (ping-req) and asks the IO layer for a TCP ping as well;
a refused TCP connection is proof the process is gone. Without any ack by the end of the
interval the target becomes suspect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from covey.core.effects import StreamPurpose
from covey.core.events import TraceOp
from covey.core.membership.node_state import NodeState
from covey.core.types import Address, MemberState
from covey.core.wire.frame import FrameType, encode_message_bytes
from covey.core.wire.messages import Ack, Nack, Ping, PingReq, Suspect

if TYPE_CHECKING:
    from covey.core.member import Member

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


@dataclass(slots=True)
class _Probe:
    seq: int
    target: bytes
    address: Address
    ack_deadline: float
    end: float
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True)
class _Relay:
    requester: Address
    seq: int
    deadline: float
    want_nack: bool


class ProbeMixin(NodeState):
    """The probing half of :class:`covey.core.membership.node.Node`."""

    def _init_probe(self, now: float) -> None:
        self._seq = 0
        self._probe: _Probe | None = None
        self._next_probe = now + self.rng.random() * self.config.probe_interval
        self._probe_order: list[bytes] = []
        self._probe_index = 0
        self._relays: dict[int, _Relay] = {}

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _on_new_member_maybe(self, node_id: bytes, now: float) -> None:
        """Put a member into the probe order at a random place (as memberlist does)."""
        m = self.table.get(node_id)
        if m is None or m.in_probe_order or node_id == self.node_id:
            return
        m.in_probe_order = True
        self._probe_order.insert(self.rng.randrange(len(self._probe_order) + 1), node_id)

    def _probe_deadline(self) -> float | None:
        p = self._probe
        if p is None:
            deadline = self._next_probe
        else:
            deadline = p.end if p.indirect_sent else p.ack_deadline
        if self._relays:
            deadline = min(deadline, min(r.deadline for r in self._relays.values()))
        return deadline

    def _probe_timers(self, now: float) -> None:
        if self._relays:
            for seq, r in list(self._relays.items()):
                if r.deadline <= now:
                    del self._relays[seq]
                    if r.want_nack:
                        self._emit(r.requester, [encode_message_bytes(Nack(r.seq))], now)
        p = self._probe
        if p is not None and not p.indirect_sent and now >= p.ack_deadline:
            self._indirect(p, now)
        if p is not None and now >= p.end:
            self._probe_failed(p, now)
        if self._probe is None and now >= self._next_probe:
            self._start_probe(now)

    def _pick_target(self) -> Member | None:
        order = self._probe_order
        for _ in range(len(order) + 1):
            if self._probe_index >= len(order):
                self._probe_index = 0
                # Drop ids that were reaped, then reshuffle for the next round.
                members = self.table.members
                order[:] = list(dict.fromkeys(nid for nid in order if nid in members))
                self.rng.shuffle(order)
                if not order:
                    return None
            nid = order[self._probe_index]
            self._probe_index += 1
            m = self.table.get(nid)
            if m is not None and m.state in _LIVE:
                return m
        return None

    def _start_probe(self, now: float) -> None:
        interval = self.awareness.scale(self.config.probe_interval)
        self._next_probe = now + interval
        m = self._pick_target()
        if m is None:
            return
        seq = self._next_seq()
        timeout = self.awareness.scale(self.config.probe_timeout)
        self._probe = _Probe(seq, m.node_id, m.address, now + timeout, now + interval)
        self._emit(m.address, [encode_message_bytes(Ping(seq, m.node_id))], now)

    def _indirect(self, p: _Probe, now: float) -> None:
        p.indirect_sent = True
        peers = self._random_members(self.config.indirect_checks, exclude=p.target)
        req = encode_message_bytes(PingReq(p.seq, p.target, p.address, want_nack=True))
        for peer in peers:
            self._emit(peer.address, [req], now)
        p.expected_nacks = len(peers)
        # TCP fallback: reaches a live node across UDP loss, and a refused connect is proof.
        frame = self._seal_frame(FrameType.STREAM_REQUEST, [Ping(p.seq, p.target)], now)
        self._open_stream(p.address, frame, StreamPurpose.PING, p.target, now)

    def _probe_failed(self, p: _Probe, now: float) -> None:
        self._probe = None
        if p.expected_nacks:
            self.awareness.apply(max(0, p.expected_nacks - p.nacks))
        else:
            self.awareness.apply(1)
        m = self.table.get(p.target)
        if m is None or m.state not in _LIVE:
            return
        self._trace(TraceOp.PROBE, now, f"no ack from {m.name}", m.incarnation)
        self._apply(Suspect(m.incarnation, m.node_id, self.node_id), now)

    def _on_ack(self, seq: int, now: float) -> None:
        p = self._probe
        if p is not None and seq == p.seq:
            self._probe = None
            self.awareness.apply(-1)
            m = self.table.get(p.target)
            if m is not None and not m.tags_complete:
                # A lost tag fetch is retried on the member's next good probe.
                self._want_sync_with(m, now)
            return
        r = self._relays.pop(seq, None)
        if r is not None:
            self._emit(r.requester, [encode_message_bytes(Ack(r.seq))], now)

    def _on_nack(self, seq: int) -> None:
        p = self._probe
        if p is not None and seq == p.seq:
            p.nacks += 1

    def _on_ping_req(self, msg: PingReq, requester: Address, now: float) -> None:
        seq = self._next_seq()
        # Answer with a nack a little before the requester gives up on the probe (Lifeguard).
        deadline = now + 0.8 * self.config.probe_timeout
        self._relays[seq] = _Relay(requester, msg.seq, deadline, msg.want_nack)
        self._emit(msg.address, [encode_message_bytes(Ping(seq, msg.target))], now)
