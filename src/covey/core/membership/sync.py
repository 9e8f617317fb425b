"""Full-state exchange (push-pull over TCP): joins, anti-entropy, reconnection.

A push-pull sends our whole member table and merges the peer's reply. It serves four
needs: joining through static seed addresses; periodic anti-entropy; fetching tags that
did not fit a datagram; and finding the way back after a partition (memberlist issue 222:
isolated nodes never rejoin). For the last, every node keeps re-contacting a random failed
member, or its seeds when alone, with exponential backoff, until it is reaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from covey.core.effects import StreamPurpose, StreamRequest
from covey.core.events import TraceOp
from covey.core.membership.node_state import NodeState
from covey.core.plugin import ExtensionMessage
from covey.core.types import Address, MemberState
from covey.core.wire.frame import MAX_STREAM_FRAME, FrameType
from covey.core.wire.messages import Ack, Alive, Dead, MemberRecord, Message, PushPull, Suspect

if TYPE_CHECKING:
    from covey.core.member import Member


@dataclass(slots=True)
class _Pending:
    purpose: StreamPurpose
    address: Address
    node_id: bytes | None


class SyncMixin(NodeState):
    """The push-pull half of :class:`covey.core.membership.node.Node`."""

    def _init_sync(self, now: float) -> None:
        self.seeds: list[Address] = []
        #: True once any full-state exchange succeeded.
        self.joined = False
        self._requests: dict[int, _Pending] = {}
        #: join exchanges under way; beacons heard meanwhile do not start more
        self.joins_in_flight = 0
        self._req_id = 0
        # Stagger the first exchange so nodes started together do not sync in lockstep.
        self._next_push_pull = now + self.config.push_pull_interval * (0.5 + self.rng.random())
        self._last_push_pull = now
        self._reconnect_delay = self.config.reconnect_interval
        self._next_reconnect = now + self._reconnect_delay
        self._sync_after: dict[bytes, float] = {}

    def _sync_deadline(self) -> float:
        return min(self._next_push_pull, self._next_reconnect)

    def _sync_timers(self, now: float) -> None:
        if now >= self._next_push_pull:
            interval = self.config.push_pull_interval * self.push_pull_scale()
            jitter = 0.75 + 0.5 * self.rng.random()
            if now - self._last_push_pull < 0.75 * interval:
                # Scheduled when the cluster looked smaller (at start we know only
                # ourselves): a large cluster must not sync in one burst.
                self._next_push_pull = self._last_push_pull + interval * jitter
            else:
                self._next_push_pull = now + interval * jitter
                self._last_push_pull = now
                for m in self._random_members(1, exclude=None):
                    self._open_push_pull(m.address, StreamPurpose.PUSH_PULL, m.node_id, now)
        if now >= self._next_reconnect:
            self._reconnect(now)

    def _reconnect(self, now: float) -> None:
        failed = [m for m in self.table.gone.values() if m.state is MemberState.FAILED]
        if failed:
            m = failed[self.rng.randrange(len(failed))]
            self._open_push_pull(m.address, StreamPurpose.RECONNECT, m.node_id, now)
        elif self.seeds and (self.table.live_count == 1 or not self.joined):
            seed = self.seeds[self.rng.randrange(len(self.seeds))]
            self._open_push_pull(seed, StreamPurpose.RECONNECT, None, now)
        else:
            self._reconnect_delay = self.config.reconnect_interval
        jitter = 0.75 + 0.5 * self.rng.random()
        self._next_reconnect = now + self._reconnect_delay * jitter

    def _want_sync_with(self, m: Member, now: float) -> None:
        """Exchange state with ``m`` soon, at most once per two probe intervals."""
        if self._sync_after.get(m.node_id, 0.0) > now:
            return
        self._sync_after[m.node_id] = now + 2 * self.config.probe_interval
        self._open_push_pull(m.address, StreamPurpose.PUSH_PULL, m.node_id, now)

    def _push_pull_message(self, *, reply: bool, join: bool) -> PushPull:
        records = tuple(
            MemberRecord(
                m.node_id,
                m.name,
                m.address,
                m.incarnation,
                m.state,
                m.tags if m.tags_complete else None,
            )
            for m in self.table.members.values()
        )
        ext = {}
        for name, extension in self._extensions.items():
            state = extension.sync_state()
            if state is not None:
                ext[name] = state
        return PushPull(join=join, reply=reply, members=records, ext=ext or None)

    def _open_push_pull(
        self, addr: Address, purpose: StreamPurpose, node_id: bytes | None, now: float
    ) -> None:
        msg = self._push_pull_message(reply=False, join=purpose is StreamPurpose.JOIN)
        self._open_stream(
            addr, self._seal_frame(FrameType.STREAM_REQUEST, [msg], now), purpose, node_id, now
        )

    def _open_stream(
        self,
        addr: Address,
        data: bytes,
        purpose: StreamPurpose,
        node_id: bytes | None,
        now: float,
    ) -> None:
        self._req_id += 1
        self._requests[self._req_id] = _Pending(purpose, addr, node_id)
        if purpose is StreamPurpose.JOIN:
            self.joins_in_flight += 1
        self._streams.append(StreamRequest(self._req_id, addr, data, purpose, node_id))
        self.counters.streams_opened += 1

    def _merge_state(self, pp: PushPull, sender: bytes, now: float) -> None:
        self._merge_members(pp, sender, now)
        if pp.ext:
            for name, state in pp.ext.items():
                extension = self._extensions.get(name)
                if extension is not None:
                    extension.merge_sync_state(state, sender, now)

    def _merge_members(self, pp: PushPull, sender: bytes, now: float) -> None:
        for r in pp.members:
            if r.state is MemberState.ALIVE:
                known = self.table.get(r.node_id)
                # News to us is re-gossiped even if it came by push-pull (as memberlist
                # does): in a mass join, every later joiner then spreads the earlier ones.
                # Members merely new to us are bulk: they never crowd out real news.
                alive = Alive(r.incarnation, r.node_id, r.name, r.address, r.tags)
                self._apply(alive, now, bulk=known is None)
                if (
                    known is not None
                    and known.state is MemberState.FAILED
                    and known.incarnation == r.incarnation
                ):
                    # The peer still hears from a member we gave up on: let it refute us.
                    self._want_sync_with(known, now)
            elif r.state is MemberState.LEFT:
                self._apply(Dead(r.incarnation, r.node_id, r.node_id, left=True), now)
            else:
                # A remote failed verdict only makes us suspect: we may know better.
                self._apply(Suspect(r.incarnation, r.node_id, sender), now)

    def stream_reply(self, request_id: int, data: bytes, *, now: float) -> None:
        """Finish a stream request with the reply frame the peer sent."""
        pending = self._pop_request(request_id)
        if pending is None:
            return
        decoded = self._open(data, FrameType.STREAM_REPLY, MAX_STREAM_FRAME, now)
        if decoded is None:
            self._stream_failed(pending, refused=False, now=now)
            return
        sender, msgs = decoded
        for msg in msgs:
            if isinstance(msg, PushPull) and msg.reply:
                self._merge_state(msg, sender, now)
                if not self.joined:
                    self._trace(TraceOp.JOIN, now, "joined", self.table.live_count)
                self.joined = True
                if pending.purpose is StreamPurpose.RECONNECT:
                    self._reconnect_delay = self.config.reconnect_interval
            elif isinstance(msg, Ack):
                self._on_ack(msg.seq, now)
            elif isinstance(msg, ExtensionMessage):
                self._dispatch(msg, pending.address, sender, now)

    def stream_failed(self, request_id: int, *, refused: bool, now: float) -> None:
        """Finish a stream request that could not complete; ``refused`` if actively refused."""
        pending = self._pop_request(request_id)
        if pending is not None:
            self._stream_failed(pending, refused=refused, now=now)

    def open_stream(self, addr: Address, msgs: list[Message], *, now: float) -> None:
        """Send ``msgs`` to ``addr`` over TCP; reply messages come back as if received."""
        frame = self._seal_frame(FrameType.STREAM_REQUEST, msgs, now)
        self._open_stream(addr, frame, StreamPurpose.EXTENSION, None, now)

    def _pop_request(self, request_id: int) -> _Pending | None:
        pending = self._requests.pop(request_id, None)
        if pending is not None and pending.purpose is StreamPurpose.JOIN:
            self.joins_in_flight -= 1
        return pending

    def _stream_failed(self, pending: _Pending, *, refused: bool, now: float) -> None:
        if pending.purpose in (StreamPurpose.RECONNECT, StreamPurpose.JOIN):
            self._reconnect_delay = min(self._reconnect_delay * 2, self.config.reconnect_max)
        if not refused or pending.node_id is None:
            return
        m = self.table.get(pending.node_id)
        if m is None or m.address != pending.address:
            return
        if m.state in (MemberState.ALIVE, MemberState.SUSPECT):
            # Nothing listens on its port: the process is gone, no need to wait out suspicion.
            self._trace(TraceOp.PROBE, now, f"{m.name} refused connection", m.incarnation)
            self._apply(Dead(m.incarnation, m.node_id, self.node_id, left=False), now)

    def pending_streams(self) -> int:
        """Stream requests handed out and not yet finished."""
        return len(self._requests)
