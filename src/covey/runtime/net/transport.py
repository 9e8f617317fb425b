"""Sockets: the unicast UDP socket, discovery senders/receivers, and TCP stream framing.

Several agents may share one host. Each binds its own unicast port; the discovery receive
socket is shared through SO_REUSEADDR + SO_REUSEPORT on the group port (the kernel hands a
copy of every multicast or broadcast datagram to each such socket, while unicast datagrams
would be load-balanced — which is why unicast traffic never goes to that socket). Beacons
leave through one small socket per chosen interface, so IP_MULTICAST_IF never has to be
switched under a queued datagram.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from typing import cast

from covey.core import MAX_STREAM_FRAME, STREAM_PREFIX_LEN, Address
from covey.runtime.net.interfaces import DiscoveryPlan, Interface
from covey.runtime.net.refusals import enable_refusals, read_refusals

log = logging.getLogger("covey.transport")

#: Linux: deliver to a wildcard-bound socket only the groups it joined itself.
_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)
#: Largest datagram read; the core rejects anything above its own limit and counts it.
RECV_BUFFER = 65535

DatagramHandler = Callable[[bytes, Address], None]
RefusalHandler = Callable[[Address], None]


class StreamFrameError(Exception):
    """A TCP peer sent a length prefix above :data:`MAX_STREAM_FRAME`."""


def _not_yet(data: bytes, addr: Address) -> None:
    """Datagrams that arrive before the core's driver exists are dropped."""


class UdpProtocol(asyncio.DatagramProtocol):
    """Hands every datagram to ``handler``; errors are logged, never raised into asyncio.

    The socket is bound before the core's driver exists, so ``handler`` starts as a drop
    and the agent points it at ``CoreDriver.datagram_received`` once the driver is built,
    through the socket's counter (``NetCounters.receiver`` in
    :mod:`covey.runtime.net.interface_stats`: one call, then a few increments).
    """

    def __init__(
        self, label: str, handler: DatagramHandler = _not_yet, sock: socket.socket | None = None
    ) -> None:
        self.handler = handler
        self._label = label
        self.transport: asyncio.DatagramTransport | None = None
        self.errors = 0
        #: The socket whose error queue is read (one with IP_RECVERR), if any.
        self.sock = sock
        #: Called with each destination the kernel reported refused (port unreachable).
        self.refused: RefusalHandler | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (3.11's selector transport does not subclass DatagramTransport, hence the cast)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.handler(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from earlier sends (port unreachable...): with IP_RECVERR they wait
        # on the error queue, which must be drained (see covey.runtime.net.refusals).
        self.errors += 1
        log.debug("%s socket error: %s", self._label, exc)
        self.drain()

    def drain(self) -> None:
        """Read the socket's error queue and report each refused destination."""
        if self.sock is None:
            return
        try:
            for addr in read_refusals(self.sock):
                if self.refused is not None:
                    self.refused(addr)
        except Exception:
            log.exception("%s socket: handling a refusal failed", self._label)


class UnicastSender:
    """Sends on the unicast socket, which has IP_RECVERR set.

    With IP_RECVERR an ICMP error sets the socket's pending error, and the *next* send —
    to any destination — fails with it instead of going out (measured: the datagram is
    lost). On loopback the ICMP for a datagram to a dead port arrives during that very
    send, so the datagram right after it (a heartbeat to the next member, say) would be
    lost every time. A send refused that way drains the error queue and goes again once.
    While the transport holds a backlog, datagrams go through it, to keep their order.
    """

    def __init__(
        self, transport: asyncio.DatagramTransport, sock: socket.socket, proto: UdpProtocol
    ) -> None:
        self._transport = transport
        self._sock = sock
        self._proto = proto
        # The selector datagram transport has it (typeshed puts it on WriteTransport only).
        self._backlog = cast(asyncio.WriteTransport, transport).get_write_buffer_size
        #: Sends that failed on another datagram's pending ICMP error and went again.
        self.resent = 0

    def sendto(self, data: bytes, addr: Address, /) -> None:
        """Send one datagram (errors are logged and counted, never raised)."""
        if self._backlog() == 0 and not self._transport.is_closing():
            for _ in range(2):
                try:
                    self._sock.sendto(data, addr)
                    return
                except ConnectionRefusedError:
                    self.resent += 1
                    self._proto.drain()  # the error was an earlier datagram's
                except (BlockingIOError, InterruptedError):
                    break  # the kernel's buffer is full: the transport queues it
                except OSError as exc:
                    self._proto.error_received(exc)
                    return
        self._transport.sendto(data, addr)


def family_of(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal (or ``::``), AF_INET otherwise."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _udp_socket(family: socket.AddressFamily = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    return sock


def unicast_socket(bind: Address) -> socket.socket:
    """The agent's own UDP socket (no SO_REUSEPORT: two agents must not share a port).

    Of the bind address's family; bound to ``::`` it is IPv6 only (IPV6_V6ONLY), so an
    IPv6 cluster never meets IPv4 peers as mapped ``::ffff:`` addresses.
    """
    family = family_of(bind[0])
    sock = _udp_socket(family)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        elif bind[0] in ("0.0.0.0", ""):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
        sock.bind(bind)
        enable_refusals(sock)
    except BaseException:
        sock.close()
        raise
    return sock


def discovery_receive_sockets(plan: DiscoveryPlan) -> list[socket.socket]:
    """Sockets that receive beacons: one on the multicast group, or one per broadcast address."""
    out: list[socket.socket] = []
    try:
        if plan.broadcast:
            for addr in sorted({dest for _, dest in plan.destinations()}):
                sock = _udp_socket()
                out.append(sock)
                _share_port(sock)
                sock.bind((addr, plan.port))
        elif plan.interfaces and family_of(plan.group) == socket.AF_INET6:
            sock = _udp_socket(socket.AF_INET6)
            out.append(sock)
            _share_port(sock)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((plan.group, plan.port))
            group = socket.inet_pton(socket.AF_INET6, plan.group)
            for iface in plan.interfaces:
                mreq = group + struct.pack("@I", iface.index)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        elif plan.interfaces:
            sock = _udp_socket()
            out.append(sock)
            _share_port(sock)
            # Bound to the group address, it receives only the group's traffic.
            sock.bind((plan.group, plan.port))
            for iface in plan.interfaces:
                mreq = socket.inet_aton(plan.group) + socket.inet_aton(iface.address)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    except BaseException:
        for sock in out:
            sock.close()
        raise
    return out


def discovery_send_sockets(plan: DiscoveryPlan) -> list[tuple[socket.socket, Address]]:
    """One sending socket per chosen interface, with the destination it sends beacons to."""
    out: list[tuple[socket.socket, Address]] = []
    try:
        for iface, dest in plan.destinations():
            if iface.ipv6:
                out.append((_ipv6_sender(iface), (dest, plan.port)))
                continue
            sock = _udp_socket()
            out.append((sock, (dest, plan.port)))
            if plan.broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            else:
                sock.setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface.address)
                )
                # Other agents on this very host must hear us too.
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            # Bound to the interface address, so the datagram leaves by that interface.
            sock.bind((iface.address, 0))
    except BaseException:
        for sock, _ in out:
            sock.close()
        raise
    return out


def _ipv6_sender(iface: Interface) -> socket.socket:
    """A socket that sends to an IPv6 group through ``iface`` alone (by its index)."""
    sock = _udp_socket(socket.AF_INET6)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, iface.index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        # A link-local source needs its scope; any other address binds as it is.
        sock.bind((iface.address, 0, 0, iface.index if iface.address.startswith("fe80:") else 0))
    except BaseException:
        sock.close()
        raise
    return sock


def _share_port(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


# ------------------------------------------------------------------ TCP framing


def frame_stream(data: bytes) -> bytes:
    """Prefix a frame with its four-octet big-endian length."""
    return struct.pack(">I", len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """Read one length-prefixed frame; raises IncompleteReadError or StreamFrameError."""
    head = await reader.readexactly(STREAM_PREFIX_LEN)
    (length,) = struct.unpack(">I", head)
    if length > MAX_STREAM_FRAME:
        raise StreamFrameError(f"stream frame of {length} octets is too large")
    return await reader.readexactly(length)


async def exchange(address: Address, data: bytes, timeout: float) -> bytes:
    """Connect, send one frame, read one reply frame; the whole exchange within ``timeout``.

    Raises ConnectionRefusedError when nothing listens, TimeoutError, OSError,
    IncompleteReadError or StreamFrameError otherwise.
    """
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(address[0], address[1])
        return await converse(reader, writer, data)


async def converse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    """On an open connection: send one frame, read the reply frame, close (TCP or unix)."""
    try:
        writer.write(frame_stream(data))
        await writer.drain()
        return await read_frame(reader)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
