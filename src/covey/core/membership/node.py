"""The protocol core of one node: SWIM membership with Lifeguard, beacons and push-pull.

Theory of operation (sans-IO, after aioquic). The caller feeds inbound bytes with
:meth:`Node.receive_datagram` / :meth:`Node.handle_stream`, finishes the TCP exchanges the
core asked for with :meth:`Node.stream_reply` / :meth:`Node.stream_failed`, calls
:meth:`Node.handle_timer` once :meth:`Node.get_timer` is due, and after each call collects
:meth:`Node.datagrams_to_send`, :meth:`Node.streams_to_open` and :meth:`Node.pop_events`.
Every call takes ``now`` (monotonic seconds); wall time, needed only for token ages, is
``now + wall_offset``. Randomness comes from the ``rng`` given at construction. Inbound
bytes never raise: bad frames are dropped and counted per reason.
"""

from __future__ import annotations

from collections.abc import Iterable

from covey.core.config import CoreConfig, check_tags, push_pull_scale
from covey.core.crypto.keyring import Keyring
from covey.core.effects import Datagram, Effect, StreamPurpose, StreamRequest
from covey.core.events import Event, MemberEvent, MemberUpdated, TraceOp, TraceRecord
from covey.core.member import Member, MemberInfo
from covey.core.membership.awareness import Awareness
from covey.core.membership.gossip import DisseminationMixin
from covey.core.membership.gossip_queue import GossipQueue
from covey.core.membership.handle import NodeHandle
from covey.core.membership.inbound import ReceiveMixin
from covey.core.membership.probe import ProbeMixin
from covey.core.membership.stats import Counters, NodeStatistics
from covey.core.membership.sync import SyncMixin
from covey.core.membership.table import MemberTable
from covey.core.plugin import Capability
from covey.core.types import Address, BeaconState, MemberState, Rng
from covey.core.wire.frame import body_prefix, encode_message_bytes
from covey.core.wire.messages import Alive, Dead, Message, MessageTypes, Suspect


class Node(ReceiveMixin, DisseminationMixin, ProbeMixin, SyncMixin):
    """One node's membership protocol state machine.

    Args:
        config: identity and timings.
        keyring: seals and opens frames.
        rng: the only source of randomness (``random.Random(seed)`` in simulations).
        now: the current monotonic time.
    """

    def __init__(self, config: CoreConfig, keyring: Keyring, *, rng: Rng, now: float) -> None:
        self.config = config
        self.keyring = keyring
        self.rng = rng
        self.wall_offset = 0.0
        local = Member(
            config.node_id,
            config.name,
            config.address,
            0,
            MemberState.ALIVE,
            now,
            dict(config.tags),
            beacon_state=BeaconState.INIT,
        )
        self.table = MemberTable(
            local,
            probe_interval=config.probe_interval,
            suspicion_mult=config.suspicion_mult,
            suspicion_max_mult=config.suspicion_max_mult,
        )
        self._max_body = keyring.max_body(config.max_datagram)
        self.gossip = GossipQueue(config.retransmit_mult, self._max_body)
        self.awareness = Awareness(config.awareness_max)
        self.counters = Counters()
        self._prefix = body_prefix(config.cluster, config.node_id)
        self._outbox: list[Datagram] = []
        self._streams: list[StreamRequest] = []
        self._started = False
        self.left = False
        self._beacon_step = 0
        self._next_beacon: float | None = None
        self._next_gossip = now
        self._eager_at: float | None = None
        self._stranger_after = now
        self._told_suspect: dict[bytes, float] = {}
        self._next_reap = now + 5.0
        self._extensions: dict[str, Capability] = {}
        self._ext_by_type: dict[int, Capability] = {}
        self.message_types = MessageTypes()
        self._events: list[Event] = []
        self._effects: list[Effect] = []
        self._handle = NodeHandle(self)
        # The table reports each change here, and we fan it out to every capability at
        # once: whatever the entry point (datagram, timer, stream, set_tags) no capability
        # misses one.
        self.table.sink = self._on_table_event
        self._init_probe(now)
        self._init_sync(now)

    # ----------------------------------------------------------------- public API

    @property
    def node_id(self) -> bytes:
        """This node's id."""
        return self.config.node_id

    @property
    def incarnation(self) -> int:
        """This node's current incarnation."""
        return self.table.local.incarnation

    @property
    def payload_limit(self) -> int:
        """Largest message body one sealed datagram carries."""
        return self._max_body

    def add_capability(self, ext: Capability) -> None:
        """Plug in a protocol capability (before :meth:`start`); it gets a narrow handle."""
        if self._started:
            raise RuntimeError("extensions are added before start")
        if not ext.name or ext.name in self._extensions:
            raise ValueError(f"extension name {ext.name!r} is empty or taken")
        for cls in ext.message_types:
            if cls.TYPE in self._ext_by_type:
                raise ValueError(f"message type {cls.TYPE} is handled twice")
            self.message_types.add(cls)
            self._ext_by_type[cls.TYPE] = ext
        self._extensions[ext.name] = ext
        ext.attach(self._handle)

    def capability(self, name: str) -> Capability | None:
        """The capability registered under ``name``."""
        return self._extensions.get(name)

    def send(self, addr: Address | None, msgs: list[Message], *, now: float) -> None:
        """Send ``msgs`` in one datagram to ``addr`` (None: the discovery group)."""
        self._emit(addr, [encode_message_bytes(m) for m in msgs], now, piggyback=addr is not None)

    def gossip_message(self, key: bytes, msg: Message, *, now: float, direct: bool = False) -> None:
        """Spread ``msg`` by gossip; a later message with the same ``key`` replaces it.

        With ``direct`` (for news that originates here) a small cluster also gets it from
        us straight away, one hop to everyone (see ``CoreConfig.direct_push_limit``).
        """
        encoded = self._queue(key, msg, now)
        if direct:
            self._push_direct(encoded, now)

    def emit(self, event: Event) -> None:
        """Hand an event to the caller (through :meth:`pop_events`)."""
        self._events.append(event)

    def persist(self, effect: Effect) -> None:
        """Queue a durable effect (see :meth:`effects_to_apply`)."""
        self._effects.append(effect)

    def _on_table_event(self, event: MemberEvent) -> None:
        self._events.append(event)
        for ext in self._extensions.values():
            ext.on_member_event(event, event.at)

    def start(self, *, now: float, incarnation: int = 0) -> None:
        """Begin: announce ourselves (alive gossip, fast beacons) and start probing."""
        if self._started:
            raise RuntimeError("node already started")
        self._started = True
        self.table.local.incarnation = incarnation
        first = MemberUpdated(self.table.local.snapshot(), now)
        self._events.append(first)
        self._queue_self_alive(now)
        self._next_beacon = now
        self._trace(TraceOp.JOIN, now, "start", incarnation)
        for ext in self._extensions.values():
            ext.on_start(now)
        for ext in self._extensions.values():
            ext.on_member_event(first, now)  # capabilities see our own record once started

    def join(self, addresses: Iterable[Address], *, now: float) -> None:
        """Contact static seed addresses (push-pull); retried with backoff until one answers."""
        self._require_running()
        seeds = [a for a in addresses if a != self.config.address]
        self.seeds.extend(s for s in seeds if s not in self.seeds)
        for addr in seeds:
            self._open_push_pull(addr, StreamPurpose.JOIN, None, now)

    def leave(self, *, now: float) -> None:
        """Leave gracefully: tell every live member directly and send an EXIT beacon."""
        self._require_running()
        if self.left:
            return
        for ext in self._extensions.values():
            ext.on_leave(now)
        local = self.table.local
        local.incarnation += 1
        local.beacon_state = BeaconState.EXIT
        bye = Dead(local.incarnation, local.node_id, local.node_id, left=True)
        encoded = [encode_message_bytes(bye)]
        for m in list(self.table.live()):
            if m is not local:
                self._emit(m.address, encoded, now, piggyback=False)
        self._emit(None, [encode_message_bytes(self._beacon())], now, piggyback=False)
        self.left = True
        self.gossip.clear()
        self._trace(TraceOp.EXIT, now, "leave", local.incarnation)

    def set_tags(self, tags: dict[str, str], *, now: float) -> None:
        """Replace this node's tags and spread them (bumps the incarnation)."""
        self._require_running()
        check_tags(tags)
        local = self.table.local
        local.tags = dict(tags)
        local.incarnation += 1
        self._on_table_event(MemberUpdated(local.snapshot(), now))
        self._queue_self_alive(now, direct=True)

    def members(self) -> list[MemberInfo]:
        """Snapshots of every known member, this node included."""
        return [m.snapshot() for m in self.table.members.values()]

    def member(self, node_id: bytes) -> MemberInfo | None:
        """Snapshot of one member, if known."""
        m = self.table.get(node_id)
        return None if m is None else m.snapshot()

    def pop_events(self) -> list[Event]:
        """Take the events produced since the last call."""
        events, self._events = self._events, []
        return events

    def effects_to_apply(self) -> list[Effect]:
        """Take the durable effects produced since the last call, in order.

        The caller must make them durable before it sends the datagrams, opens the
        streams or publishes the events of the same step.
        """
        out, self._effects = self._effects, []
        return out

    def datagrams_to_send(self, *, now: float) -> list[Datagram]:
        """Take the datagrams produced since the last call."""
        out, self._outbox = self._outbox, []
        return out

    def streams_to_open(self, *, now: float) -> list[StreamRequest]:
        """Take the stream exchanges requested since the last call."""
        out, self._streams = self._streams, []
        return out

    def statistics(self) -> NodeStatistics:
        """A frozen snapshot of this core's counters."""
        c = self.counters
        states: dict[str, int] = {}
        for m in self.table.members.values():
            states[m.state.label] = states.get(m.state.label, 0) + 1
        return NodeStatistics(
            c.datagrams_sent,
            c.bytes_sent,
            c.datagrams_received,
            c.bytes_received,
            c.streams_opened,
            c.streams_served,
            {r.value: n for r, n in c.drops.items()},
            self.awareness.score,
            self.incarnation,
            states,
        )

    def get_timer(self) -> float | None:
        """The next time :meth:`handle_timer` must run, or None when nothing is pending."""
        if not self._started or self.left:
            return None
        deadlines = [self._probe_deadline(), self._sync_deadline(), self._next_reap]
        if self._next_beacon is not None:
            deadlines.append(self._next_beacon)
        if len(self.gossip):
            deadlines.append(self._next_gossip)
            if self._eager_at is not None:
                deadlines.append(self._eager_at)
        s = self.table.next_suspicion_deadline()
        if s is not None:
            deadlines.append(s)
        for ext in self._extensions.values():
            d = ext.next_deadline()
            if d is not None:
                deadlines.append(d)
        return min(d for d in deadlines if d is not None)

    def handle_timer(self, *, now: float) -> None:
        """Run every periodic duty that is due at ``now``."""
        if not self._started or self.left:
            return
        self._probe_timers(now)
        for nid, inc in self.table.expired_suspicions(now, self.config.probe_interval):
            self._apply(Dead(inc, nid, self.node_id, left=False), now)
        if self._eager_at is not None and now >= self._eager_at:
            self._eager_at = None
            if self.gossip.has_fresh():
                self._gossip_round(now, fresh_only=True)
        if len(self.gossip) and now >= self._next_gossip:
            self._gossip_round(now)
        if self._next_beacon is not None and now >= self._next_beacon:
            self._send_beacon(now)
        self._sync_timers(now)
        if now >= self._next_reap:
            self.table.reap(now, self.config.reap_failed_after, self.config.reap_left_after)
            self._next_reap = now + 5.0
        for ext in self._extensions.values():
            d = ext.next_deadline()
            if d is not None and d <= now:
                ext.on_timer(now)

    # ---------------------------------------------------------- merge and refute

    def _apply(
        self, msg: Alive | Suspect | Dead, now: float, *, gossip: bool = True, bulk: bool = False
    ) -> None:
        if msg.node_id == self.node_id:
            self._about_self(msg, now)
            return
        if isinstance(msg, Alive):
            accepted = self.table.apply_alive(msg, now)
            if accepted:
                self._on_new_member_maybe(msg.node_id, now)
                if msg.tags is None and gossip:
                    # A tag-less alive by gossip means "my tags changed but are too big
                    # for a datagram": fetch them from the member itself.
                    m = self.table.get(msg.node_id)
                    if m is not None:
                        self._want_sync_with(m, now)
        elif isinstance(msg, Suspect):
            accepted = self.table.apply_suspect(msg, now)
        else:
            accepted = self.table.apply_dead(msg, now)
        if accepted and gossip:
            self._queue(msg.node_id, msg, now, bulk=bulk)

    def _about_self(self, msg: Alive | Suspect | Dead, now: float) -> bool:
        """Refute a wrong view of ourselves; True if we did."""
        local = self.table.local
        if isinstance(msg, Alive):
            same = msg.incarnation == local.incarnation and msg.address == local.address
            if msg.incarnation < local.incarnation or same:
                return False
        elif msg.incarnation < local.incarnation:
            return False
        # Someone holds a view of us that is wrong or newer than ours: refute it.
        local.incarnation = msg.incarnation + 1
        self.awareness.apply(1)
        self._queue_self_alive(now, direct=True)
        self._trace(TraceOp.REFUTE, now, type(msg).__name__.lower(), local.incarnation)
        return True

    # ------------------------------------------------------------------ helpers

    def _require_running(self) -> None:
        if not self._started:
            raise RuntimeError("node not started")

    def _trace(self, op: TraceOp, now: float, detail: str, n: int = 0) -> None:
        self._events.append(TraceRecord(op, now, self.config.name, detail, n))

    def cluster_size_hint(self) -> int:
        """Live members, this node included (drives timeouts and retransmit limits)."""
        return self.table.live_count

    def push_pull_scale(self) -> float:
        """memberlist's scaling of the anti-entropy interval beyond 32 members."""
        return push_pull_scale(self.table.live_count)
