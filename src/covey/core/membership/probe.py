"""Failure detection: SWIM probes, indirect probes through k members, Lifeguard nacks.

Each probe interval (stretched by the local health score) the node pings the next member
of a shuffled round-robin order. Without an ack after ``tcp_check_after`` (0.1 s) it asks
the IO layer for a TCP ping: a refused connection is proof the process is gone, so a
killed agent on a live host is failed within a round trip of its first unanswered ping,
not at the probe timeout. Without an ack by the probe timeout it asks k random members to
ping the target for it (ping-req). Without any ack by the end of the interval the target
becomes suspect.

Two more checks use the same TCP ping: :meth:`Prober.check` when the kernel reports a
datagram to a member refused (ICMP port unreachable: nothing listens on its UDP port),
and :meth:`Prober.verify` when another node declares failed a member we heard from
lately (see :meth:`~.inbound.Inbound.merge`): the verdict is taken only if the member
does not answer within a probe interval.

The :class:`Prober` owns the probe order (every member id it may probe, which makes it
the node's list of live members too: it picks the random members gossip rounds and
push-pull exchanges go to), the probe under way, and the pings it relays for others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field

from covey.core.config import CoreConfig
from covey.core.effects import StreamPurpose
from covey.core.events import TraceOp
from covey.core.member import Member
from covey.core.membership.awareness import Awareness
from covey.core.membership.outbox import Outbox
from covey.core.membership.rtt import RoundTrips
from covey.core.membership.stats import Counters, Trace
from covey.core.membership.table import MemberTable
from covey.core.records import record
from covey.core.types import Address, MemberState, Rng
from covey.core.wire.frame import FrameType, encode_message_bytes
from covey.core.wire.messages import Ack, Dead, Nack, Ping, PingReq, Suspect

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


@record(frozen=False)
class _Probe:
    seq: int
    target: bytes
    address: Address
    ack_deadline: float
    end: float
    #: when the ping went out (a direct ack before ack_deadline is a round-trip sample)
    sent: float = 0.0
    #: when the TCP ping goes out, if no ack came first
    tcp_deadline: float = 0.0
    tcp_sent: bool = False
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0
    #: the members asked to ping the target for us: the only others whose ack counts
    helpers: set[bytes] = field(default_factory=set)


@record(frozen=False)
class _Relay:
    requester: Address
    seq: int
    deadline: float
    want_nack: bool
    target: bytes = b""


class Prober:
    """Failure detection for one node: owns the probe order, the probe under way and the
    pings relayed for others.

    Args:
        config: timings (probe interval and timeout, indirect checks).
        table: the member table, read to pick targets.
        awareness: the local health score, which stretches intervals and moves with results.
        rng: the node's randomness (first draw: the phase of the first probe).
        outbox: where pings, ping-reqs, acks, nacks and TCP pings go.
        now: the current monotonic time.
        merge: merges a suspicion of a target that did not answer, or a failed verdict
            that :meth:`verify` could not refute.
        want_sync: asks for a state exchange with a member (a tag fetch to retry).
        trace: records a trace event.
        counters: where probes sent and failed are counted.
    """

    def __init__(
        self,
        config: CoreConfig,
        table: MemberTable,
        awareness: Awareness,
        rng: Rng,
        outbox: Outbox,
        *,
        now: float,
        merge: Callable[[Suspect | Dead, float], None],
        want_sync: Callable[[Member, float], None],
        trace: Trace,
        counters: Counters,
    ) -> None:
        self._config = config
        self._table = table
        self._awareness = awareness
        self._rng = rng
        self._outbox = outbox
        self._merge = merge
        self._want_sync = want_sync
        self._trace = trace
        self._counters = counters
        self._node_id = config.node_id
        self._seq = 0
        self._probe: _Probe | None = None
        self._next_probe = now + rng.random() * config.probe_interval
        #: Every member id to probe, shuffled each round (reaped ids leave at reshuffle).
        self.order: list[bytes] = []
        self._probe_index = 0
        self._relays: dict[int, _Relay] = {}
        #: Failed verdicts under check: member id -> (ping seq, incarnation, deadline).
        self._verifying: dict[bytes, tuple[int, int, float]] = {}
        #: Members checked for an ICMP report, until when (one check per probe interval).
        self._checked: dict[bytes, float] = {}
        #: Round trips measured by direct acks (``covey rtt``).
        self.round_trips = RoundTrips()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def add_member(self, node_id: bytes) -> None:
        """Put a member into the probe order at a random place (as memberlist does)."""
        m = self._table.get(node_id)
        if m is None or m.in_probe_order or node_id == self._node_id:
            return
        m.in_probe_order = True
        self.order.insert(self._rng.randrange(len(self.order) + 1), node_id)

    def deadline(self) -> float:
        """When :meth:`on_timer` must next run: the next probe, a probe step or a relay."""
        p = self._probe
        if p is None:
            deadline = self._next_probe
        elif not p.tcp_sent:
            deadline = p.tcp_deadline
        else:
            deadline = p.end if p.indirect_sent else p.ack_deadline
        if self._relays:
            deadline = min(deadline, min(r.deadline for r in self._relays.values()))
        if self._verifying:
            deadline = min(deadline, min(v[2] for v in self._verifying.values()))
        return deadline

    def on_timer(self, now: float) -> None:
        """Run what is due: relay nacks, the indirect step, a failed probe, the next probe."""
        if self._relays:
            for seq, r in list(self._relays.items()):
                if r.deadline <= now:
                    del self._relays[seq]
                    if r.want_nack:
                        self._outbox.send_message(r.requester, Nack(r.seq), now)
        if self._verifying:
            self._verdicts_due(now)
        p = self._probe
        if p is not None and not p.tcp_sent and now >= p.tcp_deadline:
            self._tcp_ping(p, now)
        if p is not None and not p.indirect_sent and now >= p.ack_deadline:
            self._indirect(p, now)
        if p is not None and now >= p.end:
            self._probe_failed(p, now)
        if self._probe is None and now >= self._next_probe:
            self._start_probe(now)

    def _pick_target(self) -> Member | None:
        order = self.order
        for _ in range(len(order) + 1):
            if self._probe_index >= len(order):
                self._probe_index = 0
                # Drop ids that were reaped, then reshuffle for the next round.
                members = self._table.members
                for nid in order:
                    if nid not in members:
                        self.round_trips.forget(nid)
                order[:] = list(dict.fromkeys(nid for nid in order if nid in members))
                self._rng.shuffle(order)
                if not order:
                    return None
            nid = order[self._probe_index]
            self._probe_index += 1
            m = self._table.get(nid)
            if m is not None and m.state in _LIVE:
                return m
        return None

    def _start_probe(self, now: float) -> None:
        interval = self._awareness.scale(self._config.probe_interval)
        self._next_probe = now + interval
        m = self._pick_target()
        if m is None:
            return
        seq = self._next_seq()
        timeout = self._awareness.scale(self._config.probe_timeout)
        tcp_after = self._awareness.scale(self._config.tcp_check_after)
        self._probe = _Probe(
            seq, m.node_id, m.address, now + timeout, now + interval, now, now + tcp_after
        )
        self._counters.probes_sent += 1
        self._outbox.send_message(m.address, Ping(seq, m.node_id), now)

    def _indirect(self, p: _Probe, now: float) -> None:
        p.indirect_sent = True
        peers = self.random_members(self._config.indirect_checks, exclude=p.target)
        req = encode_message_bytes(PingReq(p.seq, p.target, p.address, want_nack=True))
        for peer in peers:
            self._outbox.send(peer.address, [req], now)
        p.helpers = {peer.node_id for peer in peers}
        p.expected_nacks = len(peers)
        if not p.tcp_sent:
            self._tcp_ping(p, now)

    def _tcp_ping(self, p: _Probe, now: float) -> None:
        # Reaches a live node across UDP loss, and a refused connect is proof it is gone.
        p.tcp_sent = True
        self._open_tcp_ping(p.seq, p.target, p.address, now)

    def _open_tcp_ping(self, seq: int, target: bytes, address: Address, now: float) -> None:
        frame = self._outbox.seal(FrameType.STREAM_REQUEST, [Ping(seq, target)], now)
        self._outbox.open_stream(address, frame, StreamPurpose.PING, target)

    def _probe_failed(self, p: _Probe, now: float) -> None:
        self._probe = None
        self._counters.probes_failed += 1
        if p.expected_nacks:
            self._awareness.apply(max(0, p.expected_nacks - p.nacks))
        else:
            self._awareness.apply(1)
        m = self._table.get(p.target)
        if m is None or m.state not in _LIVE:
            return
        self._trace(TraceOp.PROBE, now, f"no ack from {m.name}", m.incarnation)
        self._merge(Suspect(m.incarnation, m.node_id, self._node_id), now)

    def check(self, m: Member, now: float) -> None:
        """The kernel refused a datagram to ``m`` (nothing listens on its UDP port): try
        its TCP port now, so a refusal fails it at once (at most once per interval)."""
        p = self._probe
        if p is not None and p.target == m.node_id:
            if not p.tcp_sent:
                self._tcp_ping(p, now)
            return
        if self._checked.get(m.node_id, now) > now:
            return
        if len(self._checked) > len(self.order) + 16:
            self._checked = {k: t for k, t in self._checked.items() if t > now}
        self._checked[m.node_id] = now + self._config.probe_interval
        self._open_tcp_ping(self._next_seq(), m.node_id, m.address, now)

    def verify(self, m: Member, incarnation: int, now: float) -> None:
        """Ping ``m`` (UDP and TCP) before taking another node's failed verdict about it.

        An ack discards the verdict; a refused connection fails it at once (the syncer);
        no answer within a probe interval takes the verdict as our own.
        """
        if m.node_id in self._verifying:
            return
        seq = self._next_seq()
        self._verifying[m.node_id] = (seq, incarnation, now + self._config.probe_interval)
        self._outbox.send_message(m.address, Ping(seq, m.node_id), now)
        self._open_tcp_ping(seq, m.node_id, m.address, now)

    def _verdicts_due(self, now: float) -> None:
        for nid, (_, inc, deadline) in list(self._verifying.items()):
            if deadline <= now:
                del self._verifying[nid]
                self._merge(Dead(inc, nid, self._node_id, left=False), now)

    def on_ack(self, seq: int, sender: bytes, now: float) -> bool:
        """An ack for our probe (over UDP or TCP), or for a ping we relay for another.

        An ack counts only from whom it can come: the probed member itself, or one of the
        members we asked to ping it (a sequence number alone is guessable, and an ack
        replayed from another pair must not vouch for a hung node). Returns False for an
        ack with a matching sequence number from anybody else (the caller counts it).
        """
        v = self._verifying.get(sender)
        if v is not None and v[0] == seq:
            del self._verifying[sender]
            self._counters.verdicts_refuted += 1
            self._trace(TraceOp.PROBE, now, "failed verdict refuted by an ack", v[1])
            return True
        p = self._probe
        if p is not None and seq == p.seq:
            if sender != p.target and sender not in p.helpers:
                return False
            self._probe = None
            self._awareness.apply(-1)
            if sender == p.target and not p.indirect_sent:
                self.round_trips.record(p.target, now - p.sent, now)
            m = self._table.get(p.target)
            if m is not None and not m.tags_complete:
                # A lost tag fetch is retried on the member's next good probe.
                self._want_sync(m, now)
            return True
        r = self._relays.get(seq)
        if r is not None:
            if sender != r.target:
                return False
            del self._relays[seq]
            self._outbox.send_message(r.requester, Ack(r.seq), now)
        return True

    def on_nack(self, seq: int, sender: bytes) -> None:
        """An intermediary could not reach our target either (Lifeguard)."""
        p = self._probe
        if p is not None and seq == p.seq and sender in p.helpers:
            p.nacks += 1

    def on_ping_req(self, msg: PingReq, requester: Address, now: float) -> None:
        """Ping a target on behalf of ``requester`` and relay its ack (or a nack)."""
        seq = self._next_seq()
        # Answer with a nack a little before the requester gives up on the probe (Lifeguard).
        deadline = now + 0.8 * self._config.probe_timeout
        self._relays[seq] = _Relay(requester, msg.seq, deadline, msg.want_nack, msg.target)
        self._outbox.send_message(msg.address, Ping(seq, msg.target), now)

    def random_members(self, k: int, exclude: bytes | None) -> list[Member]:
        """Up to ``k`` distinct live members other than us and ``exclude``, chosen at random."""
        pool = self.order  # every live member id
        n = len(pool)
        picked: list[Member] = []
        seen: set[bytes] = set()
        tries = 0
        while len(picked) < k and tries < 3 * k + 8 and n:
            tries += 1
            nid = pool[self._rng.randrange(n)]
            if nid in seen or nid == exclude or nid == self._node_id:
                continue
            seen.add(nid)
            m = self._table.get(nid)
            if m is not None and m.state in _LIVE:
                picked.append(m)
        return picked
