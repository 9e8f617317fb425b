"""What a node hands the IO layer: sealed datagrams and the stream exchanges it asked for.

The :class:`Outbox` seals every outbound frame (it holds the keyring, the constant body
prefix and the wall-clock offset Fernet timestamps need), tops datagrams up with queued
gossip (piggybacking), counts the traffic, and remembers each stream request until the
IO layer finishes it with a reply or a failure. The node's components all send through
it; the node's facade drains it (``datagrams_to_send``, ``streams_to_open``).
"""

from __future__ import annotations

from covey.core.config import CoreConfig
from covey.core.crypto.keyring import Keyring
from covey.core.effects import Datagram, StreamPurpose, StreamRequest
from covey.core.membership.gossip_queue import GossipQueue
from covey.core.membership.stats import Counters
from covey.core.membership.table import MemberTable
from covey.core.records import record
from covey.core.types import Address
from covey.core.wire.frame import (
    FrameType,
    body_overhead,
    body_prefix,
    encode_message_bytes,
    pack_body,
)
from covey.core.wire.messages import Message


@record(frozen=False)
class PendingStream:
    """A stream request handed to the IO layer and not yet finished."""

    purpose: StreamPurpose
    address: Address
    node_id: bytes | None


class Outbox:
    """Seals and collects one node's outbound datagrams and stream requests.

    Args:
        config: the node's identity (cluster, id) and datagram size limit.
        keyring: seals the frames.
        gossip: the queue whose news tops up datagrams sent with ``piggyback``.
        table: the member table (its live count sets the gossip retransmit limit).
        counters: traffic counters, updated on every send.
    """

    def __init__(
        self,
        config: CoreConfig,
        keyring: Keyring,
        gossip: GossipQueue,
        table: MemberTable,
        counters: Counters,
    ) -> None:
        self.keyring = keyring
        #: Largest message body one sealed datagram carries.
        self.max_body = keyring.max_body(config.max_datagram)
        #: Wall time minus monotonic time: Fernet tokens carry wall-clock stamps.
        self.wall_offset = 0.0
        #: join exchanges under way; beacons heard meanwhile do not start more
        self.joins_in_flight = 0
        self._prefix = body_prefix(config.cluster, config.node_id)
        self._gossip = gossip
        self._table = table
        self._counters = counters
        self._datagrams: list[Datagram] = []
        self._streams: list[StreamRequest] = []
        self._requests: dict[int, PendingStream] = {}
        self._req_id = 0

    def wall(self, now: float) -> float:
        """The wall-clock time at monotonic ``now``."""
        return now + self.wall_offset

    @property
    def gossip_budget(self) -> int:
        """Octets of messages a datagram holds (body framing taken off)."""
        return self.max_body - body_overhead(self._prefix, 65535)

    # ---------------------------------------------------------------- datagrams

    def send(
        self, addr: Address | None, encoded: list[bytes], now: float, *, piggyback: bool = True
    ) -> None:
        """Seal already-encoded messages into one datagram to ``addr`` (None: discovery).

        With ``piggyback`` the room left is filled with queued gossip.
        """
        if piggyback:
            used = sum(len(e) for e in encoded) + body_overhead(self._prefix, 65535)
            encoded = encoded + self._gossip.take(self.max_body - used, 0, self._table.live_count)
        frame = self.keyring.seal_frame(
            FrameType.DATAGRAM, pack_body(self._prefix, encoded), self.wall(now)
        )
        self._counters.datagrams_sent += 1
        self._counters.bytes_sent += len(frame)
        self._datagrams.append(Datagram(addr, frame))

    def send_message(self, addr: Address | None, msg: Message, now: float) -> None:
        """Send one message to ``addr``, topped up with gossip."""
        self.send(addr, [encode_message_bytes(msg)], now)

    def seal(self, ftype: FrameType, msgs: list[Message], now: float) -> bytes:
        """A sealed frame of type ``ftype`` holding ``msgs`` (no gossip added)."""
        body = pack_body(self._prefix, [encode_message_bytes(m) for m in msgs])
        return self.keyring.seal_frame(ftype, body, self.wall(now))

    def take_datagrams(self) -> list[Datagram]:
        """Take the datagrams produced since the last call."""
        out, self._datagrams = self._datagrams, []
        return out

    # ------------------------------------------------------------------ streams

    def open_stream(
        self, addr: Address, data: bytes, purpose: StreamPurpose, node_id: bytes | None
    ) -> None:
        """Ask the IO layer to send the request frame ``data`` to ``addr`` over TCP."""
        self._req_id += 1
        self._requests[self._req_id] = PendingStream(purpose, addr, node_id)
        if purpose is StreamPurpose.JOIN:
            self.joins_in_flight += 1
        self._streams.append(StreamRequest(self._req_id, addr, data, purpose, node_id))
        self._counters.streams_opened += 1

    def finish_stream(self, request_id: int) -> PendingStream | None:
        """Forget a stream request the IO layer finished; None if unknown (or finished)."""
        pending = self._requests.pop(request_id, None)
        if pending is not None and pending.purpose is StreamPurpose.JOIN:
            self.joins_in_flight -= 1
        return pending

    def pending_streams(self) -> int:
        """Stream requests handed out and not yet finished."""
        return len(self._requests)

    def take_streams(self) -> list[StreamRequest]:
        """Take the stream exchanges requested since the last call."""
        out, self._streams = self._streams, []
        return out
