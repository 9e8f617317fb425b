"""What the kernel says about datagrams we sent: ICMP port unreachable, read per address.

A UDP datagram to a port nothing listens on, on a host that is up, comes back as an ICMP
port-unreachable. Linux reports it on an *unconnected* socket only with ``IP_RECVERR``
(``IPV6_RECVERR``): the ICMP message is queued on the socket's error queue with the
destination of the datagram that caused it, and the next receive fails with
``ECONNREFUSED`` (asyncio hands that to ``error_received``). :func:`read_refusals` then
drains the queue (bounded per call) and returns the refused destinations; the core checks
the member at such an address by TCP at once (a killed agent on a live host is found
within a round trip of the first datagram sent to it, not when a probe happens to pick it).

The queue must be drained whenever it is not empty: while it holds anything the socket
polls as readable-with-error. Each entry sets the socket's pending error again, so every
entry left over after the bound makes the next read fail and drain again.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct

from covey.core import Address

log = logging.getLogger("covey.transport")

#: linux/in.h and linux/in6.h (the socket module does not export them).
IP_RECVERR = 11
IPV6_RECVERR = 25
#: Entries read from the error queue per call.
DRAIN_LIMIT = 64
#: struct sock_extended_err: ee_errno (u32), ee_origin, ee_type, ee_code, ee_pad (u8)...
_EXTENDED_ERR = struct.Struct("=IBBBBII")
_CMSG_SPACE = 512
#: The (level, type) of the control message that carries one queued error.
_RECVERR = {(socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)}


def enable_refusals(sock: socket.socket) -> bool:
    """Ask the kernel to queue ICMP errors on ``sock``; False where it cannot (not Linux)."""
    level, name = (
        (socket.IPPROTO_IPV6, IPV6_RECVERR)
        if sock.family == socket.AF_INET6
        else (socket.IPPROTO_IP, IP_RECVERR)
    )
    try:
        sock.setsockopt(level, name, 1)
    except OSError as exc:
        log.debug("no ICMP error reports on this socket: %s", exc)
        return False
    return True


def read_refusals(sock: socket.socket) -> list[Address]:
    """Drain up to :data:`DRAIN_LIMIT` entries of ``sock``'s error queue; the destinations
    whose datagram was refused (port unreachable). Other errors are read and ignored."""
    out: list[Address] = []
    for _ in range(DRAIN_LIMIT):
        try:
            _, ancillary, _, addr = sock.recvmsg(1, _CMSG_SPACE, socket.MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            break
        except OSError as exc:
            log.debug("reading the error queue failed: %s", exc)
            break
        for level, kind, data in ancillary:
            if (level, kind) not in _RECVERR or len(data) < _EXTENDED_ERR.size:
                continue
            if _EXTENDED_ERR.unpack_from(data)[0] == errno.ECONNREFUSED and addr:
                out.append((addr[0], addr[1]))
    return out
