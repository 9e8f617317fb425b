"""The receive path of a node: opening frames, dispatching their messages, the merge.

The path of a datagram, from the socket to a membership event::

    runtime/net/transport.py   UdpProtocol.datagram_received (or sim/world.py)
    runtime/driver.py          CoreDriver.datagram_received
                                 -> Node.receive_datagram (the facade: one call)
    core/membership/inbound.py Inbound.receive_datagram
                                 -> Keyring.open_frame (wire/crypto: header, key, body)
                                 -> Inbound._dispatch -> Inbound.merge
    core/membership/table.py   MemberTable.apply_alive / apply_suspect / apply_dead
                                 -> table.sink: Node._on_table_event, which fans the
                                    event out to every capability and to pop_events

Everything that comes back from the IO layer enters here: datagrams, stream requests,
stream replies and failures. Frames are checked (frame type, key, cluster, sender,
whether we are running), their messages decoded and handed to the component that owns
them: probe traffic to the :class:`~.probe.Prober`, beacons to the
:class:`~.beacons.Beacons`, push-pull state to the :class:`~.sync.Syncer`, extension
messages to their capability. Alive, suspect and dead updates are merged here
(:meth:`Inbound.merge`, also used by timers and push-pull): applied to the table and
re-gossiped, or refuted when they are about us. Bad input never raises: it is dropped
and counted per reason.
"""

from __future__ import annotations

from covey.core.config import CoreConfig
from covey.core.effects import StreamPurpose
from covey.core.events import TraceOp
from covey.core.member import Member
from covey.core.membership.awareness import Awareness
from covey.core.membership.beacons import Beacons
from covey.core.membership.capabilities import Capabilities
from covey.core.membership.gossip import Disseminator
from covey.core.membership.outbox import Outbox
from covey.core.membership.probe import Prober
from covey.core.membership.stats import Counters, Trace
from covey.core.membership.sync import Syncer
from covey.core.membership.table import MemberTable
from covey.core.plugin import ExtensionMessage
from covey.core.types import Address, DropReason, MemberState
from covey.core.wire.frame import MAX_STREAM_FRAME, FrameError, FrameType
from covey.core.wire.messages import (
    Ack,
    Alive,
    Beacon,
    Dead,
    MalformedMessage,
    Message,
    MessageTypes,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    UnknownMessage,
)

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


class Inbound:
    """Opens what one node receives and hands each message to its owner.

    Args:
        config: our identity (cluster, id) and limits.
        table: the member table updates are merged into.
        awareness: the local health score (a refutation raises it).
        counters: traffic and drop counters.
        outbox: seals replies and sends answers; holds the keyring and wall offset.
        message_types: the node's registered message types.
        capabilities: the node's capabilities, which handle extension messages.
        prober / syncer / disseminator / beacons: the node's components.
        trace: records a trace event.
        now: the current monotonic time.
    """

    def __init__(
        self,
        config: CoreConfig,
        table: MemberTable,
        awareness: Awareness,
        counters: Counters,
        outbox: Outbox,
        message_types: MessageTypes,
        capabilities: Capabilities,
        *,
        prober: Prober,
        syncer: Syncer,
        disseminator: Disseminator,
        beacons: Beacons,
        trace: Trace,
        now: float,
    ) -> None:
        self._config = config
        self._node_id = config.node_id
        self._table = table
        self._awareness = awareness
        self._counters = counters
        self._outbox = outbox
        self._keyring = outbox.keyring
        self._types = message_types
        self._capabilities = capabilities
        self._prober = prober
        self._syncer = syncer
        self._gossip = disseminator
        self._beacons = beacons
        self._trace = trace
        #: Frames are accepted only between start and leave.
        self.accepting = False
        self._stranger_after = now
        self._told_suspect: dict[bytes, float] = {}

    # -------------------------------------------------------------- entry points

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> bytes | DropReason:
        """Feed one inbound datagram; returns its sender's id, or the reason the frame was
        dropped (the runtime counts both per interface). Never raises on bad input."""
        self._counters.datagrams_received += 1
        self._counters.bytes_received += len(data)
        decoded = self._open(data, FrameType.DATAGRAM, self._config.max_datagram, now)
        if isinstance(decoded, DropReason):
            if decoded is DropReason.BAD_KEY:
                self._beacons.answer_unopened(now)  # tell a mis-keyed node it is one
            return decoded
        sender, msgs = decoded
        # A lost member speaks: its failed record comes back first (see .lost), so that
        # the exchange below lets it refute instead of it reappearing unannounced.
        self._table.restore(sender, now)
        for msg in msgs:
            self._dispatch(msg, addr, sender, now)
        m = self._table.members.get(sender)
        if m is not None:
            m.heard_at = now
        if m is not None and m.state is MemberState.SUSPECT:
            self._tell_suspect(m, addr, now)
        elif m is not None and m.state is MemberState.FAILED:
            # It speaks, so it lives (a partition healed): an exchange lets it refute.
            self._syncer.want_sync_with(m, now)
        if m is None and now >= self._stranger_after:
            # An authenticated member we have never heard of: our view has a hole (a mass
            # join, or a partition outlasting reaping). One exchange with it fills it.
            self._stranger_after = now + self._config.probe_interval
            self._syncer.open_push_pull(addr, StreamPurpose.PUSH_PULL, None, now)
        return sender

    def handle_stream(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """Answer one inbound stream request frame; returns the reply frame, if any."""
        decoded = self._open(data, FrameType.STREAM_REQUEST, MAX_STREAM_FRAME, now)
        if isinstance(decoded, DropReason):
            return None
        self._counters.streams_served += 1
        sender, msgs = decoded
        self._table.restore(sender, now)
        reply: list[Message] = []
        for msg in msgs:
            if isinstance(msg, PushPull) and not msg.reply:
                self._syncer.merge_state(msg, sender, now)
                reply.append(self._syncer.push_pull_message(reply=True, join=False))
            elif isinstance(msg, Ping):
                if msg.target == self._node_id:
                    reply.append(Ack(msg.seq))
                else:
                    self._counters.drop(DropReason.MISDIRECTED)
            elif isinstance(msg, ExtensionMessage):
                capability = self._capabilities.handler(msg.TYPE)
                if capability is None:
                    self._counters.drop(DropReason.UNKNOWN_MESSAGE)
                else:
                    reply.extend(capability.on_stream(msg, sender, addr, now))
            else:
                self._dispatch(msg, addr, sender, now)
        if not reply:
            return None
        return self._outbox.seal(FrameType.STREAM_REPLY, reply, now)

    def stream_reply(self, request_id: int, data: bytes, now: float) -> None:
        """Finish one of our stream requests with the reply frame the peer sent."""
        pending = self._outbox.finish_stream(request_id)
        if pending is None:
            return
        decoded = self._open(data, FrameType.STREAM_REPLY, MAX_STREAM_FRAME, now)
        if isinstance(decoded, DropReason):
            self._syncer.on_failed(pending, refused=False, now=now)
            return
        sender, msgs = decoded
        for msg in msgs:
            if isinstance(msg, PushPull) and msg.reply:
                self._syncer.on_reply(pending, msg, sender, now)
            elif isinstance(msg, Ack):
                if not self._prober.on_ack(msg.seq, sender, now):
                    self._counters.drop(DropReason.MISDIRECTED)
            elif isinstance(msg, ExtensionMessage):
                self._dispatch(msg, pending.address, sender, now)

    def stream_failed(self, request_id: int, refused: bool, now: float) -> None:
        """Finish one of our stream requests that could not complete."""
        pending = self._outbox.finish_stream(request_id)
        if pending is not None:
            self._syncer.on_failed(pending, refused=refused, now=now)

    def unreachable(self, addr: Address, now: float) -> None:
        """The kernel refused a datagram we sent to ``addr`` (ICMP port unreachable).

        Not proof by itself (ICMP is easy to forge, and the member may have moved):
        a live member at that address gets its TCP port checked at once.
        """
        self._counters.unreachable += 1
        for m in self._table.members.values():
            if m.address == addr and m.state in _LIVE and m.node_id != self._node_id:
                self._prober.check(m, now)
                return

    # ------------------------------------------------------------ open, dispatch

    def _open(
        self, data: bytes, want: FrameType, limit: int, now: float
    ) -> tuple[bytes, list[Message]] | DropReason:
        """(sender, messages) of a frame we accept, or why it was dropped (counted)."""
        try:
            cluster, sender, raw = self._keyring.open_frame(
                data, want, limit, self._outbox.wall(now)
            )
            if cluster != self._config.cluster:
                raise FrameError(DropReason.FOREIGN_CLUSTER, cluster)
            if sender == self._node_id:
                raise FrameError(DropReason.FROM_SELF)
            if not self.accepting:
                raise FrameError(DropReason.AFTER_LEAVE)
            msgs: list[Message] = []
            for arr in raw:
                try:
                    msgs.append(self._types.decode(arr))
                except UnknownMessage:
                    self._counters.drop(DropReason.UNKNOWN_MESSAGE)
            # Push-pull state is only accepted on streams, where its size belongs.
            if want is FrameType.DATAGRAM and any(isinstance(m, PushPull) for m in msgs):
                raise FrameError(DropReason.MALFORMED, "push-pull in a datagram")
        except FrameError as exc:
            self._counters.drop(exc.reason)
            return exc.reason
        except MalformedMessage:
            self._counters.drop(DropReason.MALFORMED)
            return DropReason.MALFORMED
        return sender, msgs

    def _dispatch(self, msg: Message, addr: Address, sender: bytes, now: float) -> None:
        match msg:
            case Ping(seq, target):
                if target != self._node_id:
                    self._counters.drop(DropReason.MISDIRECTED)
                    return
                self._outbox.send_message(addr, Ack(seq), now)
            case Ack(seq):
                if not self._prober.on_ack(seq, sender, now):
                    self._counters.drop(DropReason.MISDIRECTED)
            case Nack(seq):
                self._prober.on_nack(seq, sender)
            case PingReq():
                self._prober.on_ping_req(msg, addr, now)
            case Alive() | Suspect() | Dead():
                if msg.node_id == self._node_id and not isinstance(msg, Alive):
                    if self._refute(msg, now):
                        # The accuser may hold us failed and gossip only to live members:
                        # answer it directly as well.
                        self._outbox.send_message(addr, self._gossip.self_alive(), now)
                else:
                    self.merge(msg, now)
            case Beacon():
                self._beacons.on_beacon(msg, now)
            case PushPull():
                self._syncer.merge_state(msg, sender, now)
            case ExtensionMessage():
                capability = self._capabilities.handler(msg.TYPE)
                if capability is None:
                    self._counters.drop(DropReason.UNKNOWN_MESSAGE)
                else:
                    capability.on_message(msg, sender, addr, now)

    def _tell_suspect(self, m: Member, addr: Address, now: float) -> None:
        """A member we suspect speaks to us: make sure it knows, so it can refute.

        Our suspicion's gossip may have been spent while it was out of reach (a
        partition); without this it would expire and fail a member that is back.
        """
        if self._told_suspect.get(m.node_id, 0.0) > now:
            return
        self._told_suspect[m.node_id] = now + self._config.probe_interval
        self._outbox.send_message(addr, Suspect(m.incarnation, m.node_id, self._node_id), now)

    # ---------------------------------------------------------- merge and refute

    def merge(self, msg: Alive | Suspect | Dead, now: float, *, bulk: bool = False) -> None:
        """Merge one membership update (from the wire, a timer or a peer's table).

        News is applied to the table (which reports the event) and re-gossiped; an
        update about us is refuted instead. ``bulk`` marks mere news (see the syncer).
        """
        if msg.node_id == self._node_id:
            self._refute(msg, now)
            return
        if isinstance(msg, Alive):
            accepted = self._table.apply_alive(msg, now)
            if accepted:
                self._prober.add_member(msg.node_id)
                if msg.tags is None:
                    # A tag-less alive by gossip means "my tags changed but are too big
                    # for a datagram": fetch them from the member itself.
                    m = self._table.get(msg.node_id)
                    if m is not None:
                        self._syncer.want_sync_with(m, now)
        elif isinstance(msg, Suspect):
            accepted = self._table.apply_suspect(msg, now)
        elif self._heard_lately(msg, now):
            return
        else:
            accepted = self._table.apply_dead(msg, now)
        if accepted:
            self._gossip.queue(msg.node_id, msg, now, bulk=bulk)

    def _heard_lately(self, msg: Dead, now: float) -> bool:
        """A failed verdict from another node about a member we heard from lately, at the
        incarnation we know: ping it first (the prober takes the verdict if it stays
        silent). The verdict may come from the far side of a partition that just healed,
        where the member was unreachable while it was talking to us all along."""
        if msg.left or msg.sender == self._node_id:
            return False
        m = self._table.get(msg.node_id)
        if m is None or m.state not in _LIVE or m.incarnation != msg.incarnation:
            return False
        if now - m.heard_at >= self._config.suspicion_mult * self._config.probe_interval:
            return False
        self._counters.verdicts_checked += 1
        self._prober.verify(m, msg.incarnation, now)
        return True

    def _refute(self, msg: Alive | Suspect | Dead, now: float) -> bool:
        """Refute a wrong view of ourselves; True if we did."""
        local = self._table.local
        if isinstance(msg, Alive):
            same = msg.incarnation == local.incarnation and msg.address == local.address
            if msg.incarnation < local.incarnation or same:
                return False
        elif msg.incarnation < local.incarnation:
            return False
        # Someone holds a view of us that is wrong or newer than ours: refute it.
        local.incarnation = msg.incarnation + 1
        self._awareness.apply(1)
        self._gossip.queue_self_alive(now, direct=True)
        self._counters.refutations += 1
        self._trace(TraceOp.REFUTE, now, type(msg).__name__.lower(), local.incarnation)
        return True
