"""ICMP port unreachable, read from a real socket's error queue, and used by real agents."""

from __future__ import annotations

import select
import signal
import socket
import time

import pytest

from covey.runtime.localcluster import LocalCluster, wait_until
from covey.runtime.net.refusals import enable_refusals, read_refusals


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
