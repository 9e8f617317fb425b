"""The protocol core of one node: SWIM membership with Lifeguard, beacons and push-pull.

Theory of operation (sans-IO, after aioquic). The caller feeds inbound bytes with
``receive_datagram`` / ``handle_stream``, finishes the TCP exchanges the core asked for
with ``stream_reply`` / ``stream_failed``, calls ``handle_timer`` once ``get_timer`` is
due, and after each call collects ``effects_to_apply``, ``datagrams_to_send``,
``streams_to_open`` and ``pop_events``. Every call takes ``now`` (monotonic seconds); wall
time, needed only for token ages, is ``now + wall_offset``. Randomness comes from the
``rng`` given at construction. Inbound bytes never raise: bad frames are dropped and
counted per reason.

The :class:`Node` is a facade over components that each own their state and are given
only what they need, never the node: the :class:`~.table.MemberTable` (members, SWIM's
merge rules; it reports each change through :meth:`Node._on_table_event` to
:meth:`pop_events` and every capability at once), :class:`~.inbound.Inbound` (opens,
dispatches and merges what arrives, or refutes it), :class:`~.outbox.Outbox` (seals,
piggybacks, collects datagrams and streams), :class:`~.probe.Prober` (failure detection),
:class:`~.gossip.Disseminator` (gossip), :class:`~.beacons.Beacons` (discovery),
:class:`~.sync.Syncer` (push-pull, joins, reconnection) and
:class:`~.capabilities.Capabilities` (the plugged-in capabilities).

The node keeps the lifecycle (start, leave), the events and effects to hand out, and
runs the components' timer duties in a fixed order in :meth:`Node.handle_timer`: that
order, like the order of every rng draw, is behaviour a seeded simulation replays.
"""

from __future__ import annotations

from collections.abc import Iterable

from covey.core.config import CoreConfig, check_tags
from covey.core.crypto.keyring import Keyring
from covey.core.effects import Datagram, Effect, StreamPurpose, StreamRequest
from covey.core.events import Event, MemberEvent, MemberSuspect, MemberUpdated, TraceOp, TraceRecord
from covey.core.member import MemberInfo
from covey.core.membership.awareness import Awareness
from covey.core.membership.beacons import Beacons
from covey.core.membership.capabilities import Capabilities
from covey.core.membership.gossip import Disseminator
from covey.core.membership.gossip_queue import GossipQueue
from covey.core.membership.handle import NodeHandle
from covey.core.membership.inbound import Inbound
from covey.core.membership.names import NameClaims
from covey.core.membership.operator import forced_leave
from covey.core.membership.outbox import Outbox
from covey.core.membership.probe import Prober
from covey.core.membership.rtt import RoundTrip
from covey.core.membership.stats import Counters, NodeStatistics
from covey.core.membership.sync import Syncer
from covey.core.membership.table import MemberTable
from covey.core.membership.wakeups import next_wakeup
from covey.core.plugin import Capability
from covey.core.types import Address, BeaconState, DropReason, Rng
from covey.core.wire.frame import FrameType, encode_message_bytes
from covey.core.wire.messages import Dead, Message, MessageTypes

#: Seconds between two reaps of long-gone members.
_REAP_EVERY = 5.0


class Node:
    """One node's membership protocol state machine.

    Args:
        config: identity and timings.
        keyring: seals and opens frames.
        rng: the only source of randomness (``random.Random(seed)`` in simulations).
        now: the current monotonic time.
    """

    # Declared up front: the wiring lambdas in __init__ refer to them before they exist.
    _syncer: Syncer
    _inbound: Inbound

    def __init__(self, config: CoreConfig, keyring: Keyring, *, rng: Rng, now: float) -> None:
        self.config = config
        self.keyring = keyring
        self.rng = rng
        self.table = MemberTable.for_node(config, now)
        self.gossip = GossipQueue(config.retransmit_mult, keyring.max_body(config.max_datagram))
        self.awareness = Awareness(config.awareness_max)
        self.counters = Counters()
        self.message_types = MessageTypes()
        self.left = False
        self._started = False
        self._next_reap = now + _REAP_EVERY
        self._capabilities = Capabilities(self.message_types)
        self._events: list[Event] = []
        self._effects: list[Effect] = []
        self._handle = NodeHandle(self)
        # The table reports each change here, and we fan it out to every capability at
        # once: whatever the entry point, no capability misses one.
        self.table.sink = self._on_table_event
        self.names = NameClaims(config, self.table, self.emit)  # (sets table.on_conflict)

        # The components (the prober and the syncer draw from the rng as they are built, in
        # this order); lambdas reach those built later (bound once everything exists).
        self._outbox = Outbox(config, keyring, self.gossip, self.table, self.counters)
        self._prober = Prober(
            config,
            self.table,
            self.awareness,
            rng,
            self._outbox,
            now=now,
            merge=lambda msg, at: self._inbound.merge(msg, at),
            want_sync=lambda m, at: self._syncer.want_sync_with(m, at),
            trace=self._trace,
            counters=self.counters,
        )
        self._syncer = Syncer(
            config,
            self.table,
            rng,
            self._outbox,
            self._capabilities,
            now=now,
            pick=self._prober.random_members,
            merge=lambda msg, at, *, bulk=False: self._inbound.merge(msg, at, bulk=bulk),
            trace=self._trace,
            join_refused=self.names.check_join_reply,
        )
        self._disseminator = Disseminator(
            config, self.table, self.gossip, self._outbox, now=now, pick=self._prober.random_members
        )
        self._beacons = Beacons(
            config,
            self.table,
            rng,
            self._outbox,
            self._syncer,
            add_member=self._prober.add_member,
            merge=lambda msg, at, *, bulk=False: self._inbound.merge(msg, at, bulk=bulk),
        )
        self._inbound = Inbound(
            config,
            self.table,
            self.awareness,
            self.counters,
            self._outbox,
            self.message_types,
            self._capabilities,
            prober=self._prober,
            syncer=self._syncer,
            disseminator=self._disseminator,
            beacons=self._beacons,
            trace=self._trace,
            now=now,
        )

    # ------------------------------------------------------------ identity, state

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
        return self._outbox.max_body

    @property
    def wall_offset(self) -> float:
        """Wall-clock time minus the monotonic ``now`` (set by the caller)."""
        return self._outbox.wall_offset

    @wall_offset.setter
    def wall_offset(self, offset: float) -> None:
        self._outbox.wall_offset = offset

    @property
    def joined(self) -> bool:
        """True once any full-state exchange succeeded."""
        return self._syncer.joined

    @joined.setter
    def joined(self, value: bool) -> None:
        # The simulator's bootstrap builds a converged cluster directly.
        self._syncer.joined = value

    @property
    def seeds(self) -> list[Address]:
        """The static seed addresses given to :meth:`join`."""
        return self._syncer.seeds

    def pending_streams(self) -> int:
        """Stream requests handed out and not yet finished."""
        return self._outbox.pending_streams()

    # -------------------------------------------------------------- capabilities

    def add_capability(self, ext: Capability) -> None:
        """Plug in a protocol capability (before :meth:`start`); it gets a narrow handle."""
        if self._started:
            raise RuntimeError("extensions are added before start")
        self._capabilities.add(ext, self._handle)

    def capability(self, name: str) -> Capability | None:
        """The capability registered under ``name``."""
        return self._capabilities.get(name)

    def send(self, addr: Address | None, msgs: list[Message], *, now: float) -> None:
        """Send ``msgs`` in one datagram to ``addr`` (None: the discovery group)."""
        encoded = [encode_message_bytes(m) for m in msgs]
        self._outbox.send(addr, encoded, now, piggyback=addr is not None)

    def gossip_message(self, key: bytes, msg: Message, *, now: float, direct: bool = False) -> None:
        """Spread ``msg`` by gossip; a later message with the same ``key`` replaces it.

        With ``direct`` (for news that originates here) a small cluster also gets it from
        us straight away, one hop to everyone (see ``CoreConfig.direct_push_limit``).
        """
        encoded = self._disseminator.queue(key, msg, now)
        if direct:
            self._disseminator.push_direct(encoded, now)

    def open_stream(self, addr: Address, msgs: list[Message], *, now: float) -> None:
        """Send ``msgs`` to ``addr`` over TCP; reply messages come back as if received."""
        frame = self._outbox.seal(FrameType.STREAM_REQUEST, msgs, now)
        self._outbox.open_stream(addr, frame, StreamPurpose.EXTENSION, None)

    def emit(self, event: Event) -> None:
        """Hand an event to the caller (through :meth:`pop_events`)."""
        self._events.append(event)

    def persist(self, effect: Effect) -> None:
        """Queue a durable effect (see :meth:`effects_to_apply`)."""
        self._effects.append(effect)

    def _on_table_event(self, event: MemberEvent) -> None:
        self.counters.suspicions += isinstance(event, MemberSuspect)
        self._events.append(event)
        self._capabilities.on_member_event(event)

    # ----------------------------------------------------------------- lifecycle

    def start(self, *, now: float, incarnation: int = 0) -> None:
        """Begin: announce ourselves (alive gossip, fast beacons) and start probing."""
        if self._started:
            raise RuntimeError("node already started")
        self._started = True
        self._inbound.accepting = True
        self.table.local.incarnation = incarnation
        first = MemberUpdated(self.table.local.snapshot(), now)
        self._events.append(first)
        self._disseminator.queue_self_alive(now)
        self._beacons.start(now)
        self._trace(TraceOp.JOIN, now, "start", incarnation)
        self._capabilities.on_start(now)
        self._capabilities.on_member_event(first)  # they see our own record once started

    def join(self, addresses: Iterable[Address], *, now: float) -> None:
        """Contact static seed addresses (push-pull); retried with backoff until one answers."""
        self._require_running()
        self._syncer.join(addresses, now)

    def leave(self, *, now: float) -> None:
        """Leave gracefully: tell every live member directly and send an EXIT beacon."""
        self._require_running()
        if self.left:
            return
        self._capabilities.on_leave(now)
        local = self.table.local
        local.incarnation += 1
        local.beacon_state = BeaconState.EXIT
        bye = Dead(local.incarnation, local.node_id, local.node_id, left=True)
        self._disseminator.tell_all([encode_message_bytes(bye)], now)
        self._beacons.send_exit(now)
        self.left = True
        self._inbound.accepting = False
        self.gossip.clear()
        self._trace(TraceOp.EXIT, now, "leave", local.incarnation)

    def force_leave(self, node_id: bytes, *, now: float) -> MemberInfo:
        """Mark failed member ``node_id`` left and gossip it (see :mod:`.operator`); raises
        KeyError for an unknown id, ValueError for this node or a member not failed."""
        self._require_running()
        self._inbound.merge(forced_leave(self.table, self.node_id, node_id), now)
        return self.table.members[node_id].snapshot()

    def round_trip(self, node_id: bytes) -> RoundTrip | None:
        """Round trips measured to ``node_id`` by direct probe acks, if any (``covey rtt``)."""
        return self._prober.round_trips.get(node_id)

    def set_tags(self, tags: dict[str, str], *, now: float) -> None:
        """Replace this node's tags and spread them (bumps the incarnation)."""
        self._require_running()
        check_tags(tags)
        local = self.table.local
        local.tags = dict(tags)
        local.incarnation += 1
        self._on_table_event(MemberUpdated(local.snapshot(), now))
        self._disseminator.queue_self_alive(now, direct=True)

    # ------------------------------------------------------------------- inbound

    def receive_datagram(self, data: bytes, addr: Address, *, now: float) -> bytes | DropReason:
        """Feed one inbound datagram; returns its sender's id, or why it was dropped
        (bad input never raises: it is dropped and counted)."""
        return self._inbound.receive_datagram(data, addr, now)

    def handle_stream(self, data: bytes, addr: Address, *, now: float) -> bytes | None:
        """Answer one inbound stream request frame; returns the reply frame, if any."""
        return self._inbound.handle_stream(data, addr, now)

    def stream_reply(self, request_id: int, data: bytes, *, now: float) -> None:
        """Finish a stream request with the reply frame the peer sent."""
        self._inbound.stream_reply(request_id, data, now)

    def stream_failed(self, request_id: int, *, refused: bool, now: float) -> None:
        """Finish a stream request that could not complete; ``refused`` if actively refused."""
        self._inbound.stream_failed(request_id, refused, now)

    def unreachable(self, addr: Address, *, now: float) -> None:
        """Report a datagram to ``addr`` that the kernel refused (ICMP port unreachable)."""
        self._inbound.unreachable(addr, now)

    # ------------------------------------------------------------------ outbound

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
        return self._outbox.take_datagrams()

    def streams_to_open(self, *, now: float) -> list[StreamRequest]:
        """Take the stream exchanges requested since the last call."""
        return self._outbox.take_streams()

    def statistics(self) -> NodeStatistics:
        """A frozen snapshot of this core's counters."""
        states = self.table.state_counts()
        return self.counters.snapshot(self.awareness.score, self.incarnation, states)

    # -------------------------------------------------------------------- timers

    def get_timer(self) -> float | None:
        """The next time :meth:`handle_timer` must run, or None when nothing is pending."""
        if not self._started or self.left:
            return None
        hard = [self._prober.deadline(), self._syncer.deadline(), self._beacons.deadline()]
        hard += [self._disseminator.deadline(), self.table.next_suspicion_deadline()]
        hard += self._capabilities.deadlines()
        # Reaping, reconnection and push-pull, the periodic beacon and capability sweeps
        # may run up to a probe interval late: on the probe's wake-up (see .wakeups).
        soft = [self._syncer.soft_deadline(), self._next_reap, self._beacons.soft_deadline()]
        soft += self._capabilities.soft_deadlines()
        return next_wakeup(hard, soft, self.config.probe_interval)

    def handle_timer(self, *, now: float) -> None:
        """Run every periodic duty that is due at ``now``, in a fixed order."""
        if not self._started or self.left:
            return
        self._prober.on_timer(now)
        for nid, inc in self.table.expired_suspicions(now, self.config.probe_interval):
            self._inbound.merge(Dead(inc, nid, self.node_id, left=False), now)
        self._disseminator.on_timer(now)
        self._beacons.on_timer(now)
        self._syncer.on_timer(now)
        if now >= self._next_reap:
            self.table.reap(now, self.config.reap_failed_after, self.config.reap_left_after)
            self._next_reap = now + _REAP_EVERY
        self._capabilities.on_timer(now)

    def _require_running(self) -> None:
        if not self._started:
            raise RuntimeError("node not started")

    def _trace(self, op: TraceOp, now: float, detail: str, n: int = 0) -> None:
        self._events.append(TraceRecord(op, now, self.config.name, detail, n))
