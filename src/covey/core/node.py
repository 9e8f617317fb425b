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

import math
from collections.abc import Iterable

from .awareness import Awareness
from .config import CoreConfig, check_tags
from .events import Event, MemberEvent, MemberUpdated, TraceOp, TraceRecord
from .extension import Extension, ExtensionMessage
from .gossip_queue import GossipQueue
from .io import Datagram, StreamPurpose, StreamRequest
from .keyring import Keyring
from .member import Member, MemberInfo
from .messages import (
    Ack,
    Alive,
    Beacon,
    Dead,
    MalformedMessage,
    Message,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    UnknownMessage,
    decode_message,
    register_message,
)
from .probe import ProbeMixin
from .stats import Counters, NodeStatistics
from .sync import SyncMixin
from .table import MemberTable
from .types import Address, BeaconState, DropReason, MemberState, Rng
from .wire import (
    MAX_STREAM_FRAME,
    FrameError,
    FrameType,
    body_overhead,
    body_prefix,
    build_frame,
    encode_message_bytes,
    pack_body,
    parse_header,
    unpack_body,
)

#: Delays of the first beacons after start, before the steady beacon interval.
_FAST_BEACONS = (0.0, 0.25, 0.5, 1.0, 2.0)


class Node(ProbeMixin, SyncMixin):
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
        self._extensions: dict[str, Extension] = {}
        self._ext_by_type: dict[int, Extension] = {}
        self._notified = 0  # table.events already shown to extensions
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

    def add_extension(self, ext: Extension) -> None:
        """Plug in a protocol feature (before :meth:`start`)."""
        if self._started:
            raise RuntimeError("extensions are added before start")
        if not ext.name or ext.name in self._extensions:
            raise ValueError(f"extension name {ext.name!r} is empty or taken")
        for cls in ext.message_types:
            if cls.TYPE in self._ext_by_type:
                raise ValueError(f"message type {cls.TYPE} is handled twice")
            register_message(cls)
            self._ext_by_type[cls.TYPE] = ext
        self._extensions[ext.name] = ext
        ext.attach(self)

    def extension(self, name: str) -> Extension | None:
        """The extension registered under ``name``."""
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

    def _push_direct(self, encoded: bytes, now: float) -> None:
        if self.table.live_count > self.config.direct_push_limit:
            return
        for m in self.table.live():
            if m is not self.table.local:
                self._emit(m.address, [encoded], now, piggyback=False)

    def emit(self, event: Event) -> None:
        """Hand an event to the caller (through :meth:`pop_events`)."""
        self.table.events.append(event)

    def _notify(self, now: float) -> None:
        """Show extensions the membership changes applied since the last call."""
        events = self.table.events
        if not self._extensions or self._notified >= len(events):
            self._notified = len(events)
            return
        while self._notified < len(events):
            e = events[self._notified]
            self._notified += 1
            if isinstance(e, MemberEvent):
                for ext in self._extensions.values():
                    ext.on_member_event(e, now)

    def start(self, *, now: float, incarnation: int = 0) -> None:
        """Begin: announce ourselves (alive gossip, fast beacons) and start probing."""
        if self._started:
            raise RuntimeError("node already started")
        self._started = True
        self.table.local.incarnation = incarnation
        self.table.events.append(MemberUpdated(self.table.local.snapshot(), now))
        self._queue_self_alive(now)
        self._next_beacon = now
        self._trace(TraceOp.JOIN, now, "start", incarnation)
        for ext in self._extensions.values():
            ext.on_start(now)
        self._notify(now)

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
        self.table.events.append(MemberUpdated(local.snapshot(), now))
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
        events, self.table.events = self.table.events, []
        self._notified = 0
        return events

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
        self._notify(now)
        for ext in self._extensions.values():
            d = ext.next_deadline()
            if d is not None and d <= now:
                ext.on_timer(now)
        self._notify(now)

    # ------------------------------------------------------------- receive path

    def receive_datagram(self, data: bytes, addr: Address, *, now: float) -> None:
        """Feed one inbound datagram. Never raises on bad input: drops and counts it."""
        self.counters.datagrams_received += 1
        self.counters.bytes_received += len(data)
        decoded = self._open(data, FrameType.DATAGRAM, self.config.max_datagram, now)
        if decoded is None:
            return
        sender, msgs = decoded
        for msg in msgs:
            self._dispatch(msg, addr, sender, now)
        self._notify(now)
        m = self.table.members.get(sender)
        if m is not None and m.state is MemberState.SUSPECT:
            self._tell_suspect(m, addr, now)
        elif m is not None and m.state is MemberState.FAILED:
            # It speaks, so it lives (a partition healed): an exchange lets it refute.
            self._want_sync_with(m, now)
        if m is None and now >= self._stranger_after:
            # An authenticated member we have never heard of: our view has a hole (a mass
            # join, or a partition outlasting reaping). One exchange with it fills it.
            self._stranger_after = now + self.config.probe_interval
            self._open_push_pull(addr, StreamPurpose.PUSH_PULL, None, now)

    def _tell_suspect(self, m: Member, addr: Address, now: float) -> None:
        """A member we suspect speaks to us: make sure it knows, so it can refute.

        Our suspicion's gossip may have been spent while it was out of reach (a
        partition); without this it would expire and fail a member that is back.
        """
        if self._told_suspect.get(m.node_id, 0.0) > now:
            return
        self._told_suspect[m.node_id] = now + self.config.probe_interval
        suspect = Suspect(m.incarnation, m.node_id, self.node_id)
        self._emit(addr, [encode_message_bytes(suspect)], now)

    def handle_stream(self, data: bytes, addr: Address, *, now: float) -> bytes | None:
        """Answer one inbound stream request frame; returns the reply frame, if any."""
        decoded = self._open(data, FrameType.STREAM_REQUEST, MAX_STREAM_FRAME, now)
        if decoded is None:
            return None
        self.counters.streams_served += 1
        sender, msgs = decoded
        reply: list[Message] = []
        for msg in msgs:
            if isinstance(msg, PushPull) and not msg.reply:
                self._merge_state(msg, sender, now)
                reply.append(self._push_pull_message(reply=True, join=False))
            elif isinstance(msg, Ping):
                if msg.target == self.node_id:
                    reply.append(Ack(msg.seq))
                else:
                    self.counters.drop(DropReason.MISDIRECTED)
            elif isinstance(msg, ExtensionMessage):
                ext = self._ext_by_type.get(msg.TYPE)
                if ext is None:
                    self.counters.drop(DropReason.UNKNOWN_MESSAGE)
                else:
                    reply.extend(ext.on_stream(msg, sender, addr, now))
            else:
                self._dispatch(msg, addr, sender, now)
        self._notify(now)
        if not reply:
            return None
        return self._seal_frame(FrameType.STREAM_REPLY, reply, now)

    def _open(
        self, data: bytes, want: FrameType, limit: int, now: float
    ) -> tuple[bytes, list[Message]] | None:
        try:
            ftype, security, payload = parse_header(data, limit)
            if ftype is not want:
                raise FrameError(DropReason.BAD_FRAME_TYPE, ftype.name)
            body = self.keyring.open(security, payload, now + self.wall_offset)
            cluster, sender, raw = unpack_body(body)
            if cluster != self.config.cluster:
                raise FrameError(DropReason.FOREIGN_CLUSTER, cluster)
            if sender == self.node_id:
                raise FrameError(DropReason.FROM_SELF)
            if self.left or not self._started:
                raise FrameError(DropReason.AFTER_LEAVE)
            msgs: list[Message] = []
            for arr in raw:
                try:
                    msgs.append(decode_message(arr))
                except UnknownMessage:
                    self.counters.drop(DropReason.UNKNOWN_MESSAGE)
            # Push-pull state is only accepted on streams, where its size belongs.
            if want is FrameType.DATAGRAM and any(isinstance(m, PushPull) for m in msgs):
                raise FrameError(DropReason.MALFORMED, "push-pull in a datagram")
        except FrameError as exc:
            self.counters.drop(exc.reason)
            return None
        except MalformedMessage:
            self.counters.drop(DropReason.MALFORMED)
            return None
        return sender, msgs

    def _dispatch(self, msg: Message, addr: Address, sender: bytes, now: float) -> None:
        match msg:
            case Ping(seq, target):
                if target != self.node_id:
                    self.counters.drop(DropReason.MISDIRECTED)
                    return
                self._emit(addr, [encode_message_bytes(Ack(seq))], now)
            case Ack(seq):
                self._on_ack(seq, now)
            case Nack(seq):
                self._on_nack(seq)
            case PingReq():
                self._on_ping_req(msg, addr, now)
            case Alive() | Suspect() | Dead():
                if msg.node_id == self.node_id and not isinstance(msg, Alive):
                    if self._about_self(msg, now):
                        # The accuser may hold us failed and gossip only to live members:
                        # answer it directly as well.
                        self._emit(addr, [encode_message_bytes(self._self_alive())], now)
                else:
                    self._apply(msg, now)
            case Beacon():
                self._on_beacon(msg, now)
            case PushPull():
                self._merge_state(msg, sender, now)
            case ExtensionMessage():
                ext = self._ext_by_type.get(msg.TYPE)
                if ext is None:
                    self.counters.drop(DropReason.UNKNOWN_MESSAGE)
                else:
                    ext.on_message(msg, sender, addr, now)

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

    def _self_alive(self) -> Alive:
        local = self.table.local
        alive = Alive(local.incarnation, local.node_id, local.name, local.address, local.tags)
        if len(encode_message_bytes(alive)) > self._max_body // 2:
            return Alive(local.incarnation, local.node_id, local.name, local.address, None)
        return alive

    def _queue_self_alive(self, now: float, *, direct: bool = False) -> None:
        encoded = self._queue(self.node_id, self._self_alive(), now)
        if direct:
            self._push_direct(encoded, now)

    def _queue(self, key: bytes, msg: Message, now: float, *, bulk: bool = False) -> bytes:
        encoded = encode_message_bytes(msg)
        if isinstance(msg, Alive) and msg.tags is not None and len(encoded) > self._max_body // 2:
            # Large tags travel by push-pull; the alive only says that they changed.
            encoded = encode_message_bytes(
                Alive(msg.incarnation, msg.node_id, msg.name, msg.address, None)
            )
        self.gossip.push(key, encoded, bulk=bulk)
        if self._next_gossip < now:
            # The gossip ticker keeps its phase while idle; news waits for its next tick
            # (unless eager push sends it at once).
            interval = self.config.gossip_interval
            self._next_gossip += math.ceil((now - self._next_gossip) / interval) * interval
        if self.config.eager_gossip and not bulk:
            self._eager_at = now
        return encoded

    def _on_beacon(self, b: Beacon, now: float) -> None:
        if b.node_id == self.node_id:
            return  # only we speak for ourselves
        m = self.table.get(b.node_id)
        if b.state is BeaconState.EXIT:
            if m is not None and b.incarnation >= m.incarnation:
                self._apply(Dead(b.incarnation, b.node_id, b.node_id, left=True), now)
            return
        if m is None:
            self.table.apply_alive(
                Alive(b.incarnation, b.node_id, b.name, b.address, None), now, beacon=b.state
            )
            self._on_new_member_maybe(b.node_id, now)
            if not self.joined and not self.joins_in_flight:
                self._open_push_pull(b.address, StreamPurpose.JOIN, b.node_id, now)
            else:
                self._answer_init(b, now)
            return
        self._answer_init(b, now)
        m.beacon_state = b.state
        if m.state not in (MemberState.ALIVE, MemberState.SUSPECT):
            # It speaks, so it lives: a state exchange lets it refute our verdict.
            self._want_sync_with(m, now)
        elif not m.tags_complete and now - m.state_change > 2 * self.config.probe_interval:
            # Its own alive gossip normally brings the tags within moments; it did not.
            self._want_sync_with(m, now)
        elif not self.joined and not self.joins_in_flight:
            self._open_push_pull(b.address, StreamPurpose.JOIN, b.node_id, now)

    def _answer_init(self, b: Beacon, now: float) -> None:
        """Answer a node that just (re)started: settled members send no beacons of their
        own, and a restarted member we still know has an empty table all the same."""
        if b.state is not BeaconState.INIT or not self.joined:
            return
        # About eight answers in all, whatever the cluster's size: no implosion on it.
        if self.rng.random() < 8 / self.table.live_count:
            # The answer says READY even during our own fast start: an INIT answer would
            # be answered in turn, and two starting nodes would ping-pong for ever.
            local = self.table.local
            ready = Beacon(
                local.node_id, local.name, local.address, BeaconState.READY, local.incarnation
            )
            self._emit(b.address, [encode_message_bytes(ready)], now, piggyback=False)

    # ------------------------------------------------------------------ sending

    def _emit(
        self, addr: Address | None, encoded: list[bytes], now: float, *, piggyback: bool = True
    ) -> None:
        if piggyback:
            used = sum(len(e) for e in encoded) + body_overhead(self._prefix, 65535)
            encoded = encoded + self.gossip.take(self._max_body - used, 0, self.table.live_count)
        body = pack_body(self._prefix, encoded)
        frame = build_frame(
            FrameType.DATAGRAM,
            self.keyring.security,
            self.keyring.seal(body, now + self.wall_offset),
        )
        self.counters.datagrams_sent += 1
        self.counters.bytes_sent += len(frame)
        self._outbox.append(Datagram(addr, frame))

    def _seal_frame(self, ftype: FrameType, msgs: list[Message], now: float) -> bytes:
        body = pack_body(self._prefix, [encode_message_bytes(m) for m in msgs])
        return build_frame(
            ftype, self.keyring.security, self.keyring.seal(body, now + self.wall_offset)
        )

    def _gossip_round(self, now: float, *, fresh_only: bool = False) -> None:
        n = self.table.live_count
        budget = self._max_body - body_overhead(self._prefix, 65535)
        if fresh_only:
            # Eager push: news goes to gossip_nodes members at once, once each.
            targets = self._random_members(self.config.gossip_nodes, exclude=None)
            picked = self.gossip.take(budget, 0, n, fresh_only=True) if targets else []
            for m in targets:
                if picked:
                    self._emit(m.address, picked, now, piggyback=False)
            return
        self._next_gossip = now + self.config.gossip_interval
        for m in self._random_members(self.config.gossip_nodes, exclude=None):
            picked = self.gossip.take(budget, 0, n)
            if not picked:
                break
            self._emit(m.address, picked, now, piggyback=False)

    def _beacon(self) -> Beacon:
        local = self.table.local
        state = local.beacon_state or BeaconState.INIT
        return Beacon(local.node_id, local.name, local.address, state, local.incarnation)

    def _searching(self) -> bool:
        """True while beacons may find someone: not joined, alone, or missing members."""
        return (
            not self.joined
            or self.table.live_count < 2
            or any(m.state is MemberState.FAILED for m in self.table.gone.values())
        )

    def _send_beacon(self, now: float) -> None:
        fast = self._beacon_step < len(_FAST_BEACONS)
        if fast or self.config.settled_beacons or self._searching():
            # A settled node (joined, nobody missing) stays quiet: newcomers announce
            # themselves and get answers, so its beacons would only cost packets.
            self._emit(None, [encode_message_bytes(self._beacon())], now, piggyback=False)
        self._beacon_step += 1
        if self._beacon_step < len(_FAST_BEACONS):
            self._next_beacon = now + _FAST_BEACONS[self._beacon_step]
            return
        self.table.local.beacon_state = BeaconState.READY
        jitter = self.config.beacon_jitter * (2 * self.rng.random() - 1)
        self._next_beacon = now + self.config.beacon_interval * (1 + jitter)

    def _random_members(self, k: int, exclude: bytes | None) -> list[Member]:
        """Up to ``k`` distinct live members other than us and ``exclude``, chosen at random."""
        pool = self._probe_order  # every live member id, kept by the prober
        n = len(pool)
        picked: list[Member] = []
        seen: set[bytes] = set()
        tries = 0
        while len(picked) < k and tries < 3 * k + 8 and n:
            tries += 1
            nid = pool[self.rng.randrange(n)]
            if nid in seen or nid == exclude or nid == self.node_id:
                continue
            seen.add(nid)
            m = self.table.get(nid)
            if m is not None and m.state in (MemberState.ALIVE, MemberState.SUSPECT):
                picked.append(m)
        return picked

    def _require_running(self) -> None:
        if not self._started:
            raise RuntimeError("node not started")

    def _trace(self, op: TraceOp, now: float, detail: str, n: int = 0) -> None:
        self.table.events.append(TraceRecord(op, now, self.config.name, detail, n))

    def cluster_size_hint(self) -> int:
        """Live members, this node included (drives timeouts and retransmit limits)."""
        return self.table.live_count

    def push_pull_scale(self) -> float:
        """memberlist's scaling of the anti-entropy interval beyond 32 members."""
        n = self.table.live_count
        if n <= 32:
            return 1.0
        return math.ceil(math.log2(n) - math.log2(32)) + 1.0
