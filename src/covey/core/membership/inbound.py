"""The receive path of a node: opening frames and dispatching the messages inside.

Inbound datagrams and stream requests are checked (frame type, key, cluster, sender,
whether we are running), their messages decoded and handed to the probe, merge, beacon,
push-pull or extension code that owns them. Bad input never raises: it is dropped and
counted per reason. Replies to stream requests are sealed here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from covey.core.effects import StreamPurpose
from covey.core.membership.node_state import NodeState
from covey.core.plugin import ExtensionMessage
from covey.core.types import Address, DropReason, MemberState
from covey.core.wire.frame import (
    MAX_STREAM_FRAME,
    FrameError,
    FrameType,
    encode_message_bytes,
    parse_header,
    unpack_body,
)
from covey.core.wire.messages import (
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
)

if TYPE_CHECKING:
    from covey.core.member import Member


class ReceiveMixin(NodeState):
    """The receive path of :class:`covey.core.membership.node.Node`."""

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
                    msgs.append(self.message_types.decode(arr))
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
