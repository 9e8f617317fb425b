"""ICMP port unreachable, read from a real socket's error queue, and used by real agents."""

from __future__ import annotations

import asyncio
import select
import signal
import socket
import time

import pytest

from covey.runtime.localcluster import LocalCluster, wait_until
from covey.runtime.net.refusals import enable_refusals, read_refusals
from covey.runtime.net.transport import UdpProtocol, UnicastSender, unicast_socket


def _closed_port() -> int:
    """A loopback UDP port nothing listens on (bound once, then closed)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


def test_a_datagram_to_a_closed_port_is_reported_with_its_destination() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        assert enable_refusals(sock)
        port = _closed_port()
        sock.sendto(b"anyone?", ("127.0.0.1", port))
        # The ICMP error makes the socket poll as readable; its receive fails once.
        ready, _, _ = select.select([sock], [], [], 10.0)
        assert ready
        with pytest.raises(ConnectionRefusedError):
            sock.recvfrom(100)
        assert read_refusals(sock) == [("127.0.0.1", port)]
        assert read_refusals(sock) == []  # drained: nothing is left to poll as ready
        assert select.select([sock], [], [], 0.0)[0] == []
    finally:
        sock.close()


def test_without_recverr_an_unconnected_socket_hears_nothing() -> None:
    """Why the option is needed: by default Linux keeps ICMP errors from unconnected UDP
    sockets to itself."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(b"anyone?", ("127.0.0.1", _closed_port()))
        assert select.select([sock], [], [], 0.5)[0] == []
        assert read_refusals(sock) == []
    finally:
        sock.close()


def test_a_killed_agent_is_found_by_the_refusal_of_a_datagram(cluster: LocalCluster) -> None:
    agents = cluster.start(3)
    names = [a.name for a in agents]
    wait_until(lambda: cluster.converged(names), 60.0, what="3 agents to converge")
    victim, others = agents[-1], agents[:-1]
    victim.signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    start = time.monotonic()
    wait_until(
        lambda: all(o.states().get(victim.name) == "failed" for o in others),
        30.0,
        interval=0.05,
        what="the killed agent failed everywhere",
    )
    print(f"\nkill -9 seen failed by both survivors in {time.monotonic() - start:.2f} s")
    # Whoever failed it first sent it a datagram that came back refused.
    refused = [o.client().info()["runtime"].get("udp_refused", 0) for o in others]
    stats = [o.client().info()["stats"]["unreachable"] for o in others]
    assert max(refused) >= 1 and max(stats) >= 1, (refused, stats)


def test_a_datagram_after_a_refused_one_still_goes_out() -> None:
    """With IP_RECVERR the ICMP error of one datagram makes the next send fail, whatever
    its destination; on loopback it arrives during the first send. The unicast sender
    sends that next datagram again, so a heartbeat after one to a dead member is not lost."""

    async def run() -> tuple[list[bytes], list[tuple[str, int]], int]:
        loop = asyncio.get_running_loop()
        sock = unicast_socket(("127.0.0.1", 0))
        proto = UdpProtocol("unicast", sock=sock)
        refused: list[tuple[str, int]] = []
        proto.refused = refused.append
        transport, _ = await loop.create_datagram_endpoint(lambda: proto, sock=sock)
        live = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        live.bind(("127.0.0.1", 0))
        live.settimeout(10.0)
        try:
            sender = UnicastSender(transport, sock, proto)
            dead = ("127.0.0.1", _closed_port())
            got = []
            for i in range(5):
                sender.sendto(b"to the dead", dead)
                sender.sendto(b"to the living %d" % i, live.getsockname())
                got.append(live.recvfrom(100)[0])
            await asyncio.sleep(0)  # let the transport read what is left of the queue
            return got, refused, sender.resent
        finally:
            live.close()
            transport.close()

    got, refused, resent = asyncio.run(run())
    assert got == [b"to the living %d" % i for i in range(5)]
    assert refused and resent >= 1  # the kernel did refuse, and the sender went again
