"""The agent's UDP endpoints, bound and counted: its unicast socket, the discovery
receivers and one beacon sender per interface.

:func:`open_udp` binds them (before the core's driver exists) and wraps each in the
per-interface counters of :mod:`covey.runtime.net.interface_stats`: the driver sends
through the counting senders, and :meth:`UdpEndpoints.attach` points every socket's
protocol at the driver through the counting receivers.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from covey.core import Address
from covey.runtime.net.interface_stats import NetCounters, Receive, Sendto
from covey.runtime.net.interfaces import DiscoveryPlan
from covey.runtime.net.transport import (
    RefusalHandler,
    UdpProtocol,
    UnicastSender,
    discovery_receive_sockets,
    discovery_send_sockets,
    unicast_socket,
)

if TYPE_CHECKING:
    from covey.runtime.net.local_channel import LocalChannel


class Handled(Protocol):
    """What hands received datagrams to ``handler`` (a UDP protocol, the local channel)."""

    handler: Any


@dataclass
class UdpEndpoints:
    """The bound UDP sockets of one agent.

    Attributes:
        net: the counters every socket reports to.
        unicast: sends on the agent's own socket (counted).
        senders: (sender, destination) per discovery interface, in the plan's order.
        transports: every transport, to flush and close.
        protocols: (protocol, label, interface index) of every socket.
    """

    net: NetCounters
    unicast: Sendto
    senders: list[tuple[Sendto, Address]]
    transports: list[asyncio.DatagramTransport]
    protocols: list[tuple[Handled, str, int]]

    def attach(self, handler: Receive, refused: RefusalHandler | None = None) -> None:
        """From now on every socket hands its datagrams to ``handler`` (the driver's
        ``datagram_received``), and what it answers is counted; the unicast socket hands
        the destinations the kernel reported refused to ``refused``."""
        for proto, label, index in self.protocols:
            proto.handler = self.net.receiver(handler, label, index)
            if isinstance(proto, UdpProtocol) and proto.sock is not None:
                proto.refused = refused


async def open_udp(
    bind: Address, plan: DiscoveryPlan, net: NetCounters, local: LocalChannel | None = None
) -> UdpEndpoints:
    """Bind the unicast socket on ``bind`` and the discovery sockets of ``plan``; with an
    opened ``local`` channel, unicast goes through it to the peers of this host (counted
    as unicast either way) and what it receives is handled as unicast.

    Raises:
        OSError: a socket could not be bound (those already bound are closed).
    """
    loop = asyncio.get_running_loop()
    transports: list[asyncio.DatagramTransport] = []
    protocols: list[tuple[Handled, str, int]] = []

    async def endpoint(sock: socket.socket, label: str, index: int = 0) -> Sendto:
        # The unicast socket has IP_RECVERR set: its protocol reads the error queue, and
        # its sender resends what another datagram's pending error made fail.
        unicast = label == "unicast"
        proto = UdpProtocol(label, sock=sock if unicast else None)
        transport, _ = await loop.create_datagram_endpoint(lambda: proto, sock=sock)
        transports.append(transport)
        protocols.append((proto, label, index))
        return UnicastSender(transport, sock, proto) if unicast else transport

    try:
        udp: Sendto = await endpoint(unicast_socket(bind), "unicast")
        unicast = net.sender(udp if local is None else local.wrap(udp))
        if local is not None:
            protocols.append((local, "unicast", 0))
        for sock in discovery_receive_sockets(plan):
            await endpoint(sock, "discovery")
        senders = []
        for index, (sock, dest) in enumerate(discovery_send_sockets(plan)):
            senders.append((net.sender(await endpoint(sock, "beacon-send", index), index), dest))
    except BaseException:
        for transport in transports:
            transport.close()
        raise
    return UdpEndpoints(net, unicast, senders, transports, protocols)
