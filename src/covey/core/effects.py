"""What a core hands to its IO layer: datagrams to send and streams to open."""

from __future__ import annotations

import enum
from dataclasses import field

from covey.core.records import record
from covey.core.types import Address


@record
class Datagram:
    """One datagram to send.

    Attributes:
        address: the destination, or ``None`` for the discovery group: the IO layer sends
            it to the multicast group / broadcast addresses on every chosen interface.
        data: the complete frame.
    """

    address: Address | None
    data: bytes


class StreamPurpose(enum.Enum):
    """Why a stream is opened (for statistics and for the IO layer's timeouts)."""

    JOIN = "join"
    PUSH_PULL = "push_pull"
    PING = "ping"
    RECONNECT = "reconnect"
    EXTENSION = "extension"


@record
class StreamRequest:
    """A TCP exchange the core asks for: connect, send ``data``, read one reply frame.

    The IO layer must finish every request exactly once, with ``Node.stream_reply`` or
    ``Node.stream_failed`` (``refused=True`` when the connection was actively refused).
    """

    request_id: int
    address: Address
    data: bytes
    purpose: StreamPurpose
    node_id: bytes | None = field(default=None)


class Effect:
    """Base of the durable effects a capability hands out (etcd raft's ``Ready.HardState``).

    An effect is state that must be on disk before anything the same core step produced
    leaves the node: the datagrams and streams of that step, and its events (an event
    may start a handler whose exactly-once promise rests on the record). The runtime
    writes a step's effects in order, off the event-loop thread, and only then sends
    what the step produced; the simulator applies them at once to its simulated disks.
    Subclasses are frozen dataclasses that carry everything the write needs, so the
    writer never reads the core's live state.
    """

    __slots__ = ()
