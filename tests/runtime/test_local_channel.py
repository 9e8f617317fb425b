"""The local channel: agents of one host talk over unix sockets (``--local-channel``).

Real agent processes on 127.0.0.1; the counters under ``covey info``'s ``local_channel``
say which way their datagrams and streams went.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from covey.runtime.localcluster import AgentProcess, LocalCluster, wait_until
from covey.runtime.net.local_channel import channel_name

CONVERGE = 60.0
DETECT = 30.0
LOCAL = ["--local-channel"]


def local(agent: AgentProcess) -> dict[str, Any]:
    """The ``local_channel`` part of the agent's ``covey info``."""
    info: dict[str, Any] = agent.client().info()
    return dict(info["local_channel"])


def _pair(cluster: LocalCluster) -> tuple[AgentProcess, AgentProcess]:
    a = cluster.spawn("a", extra=LOCAL)
    b = cluster.spawn("b", extra=[*LOCAL, "--join", a.address])
    wait_until(lambda: cluster.converged(["a", "b"]), CONVERGE, what="a and b")
    return a, b


def test_two_agents_of_one_host_talk_over_the_local_channel(cluster: LocalCluster) -> None:
    a, b = _pair(cluster)
    wait_until(lambda: local(a)["datagrams_in"] > 5 and local(b)["datagrams_in"] > 5, DETECT)
    for agent in (a, b):
        shown = local(agent)
        assert shown["bound"] and shown["peers_reached"] == 1
        assert shown["datagrams_out"] > 5 and shown["fallbacks"] == 0
        assert shown["malformed"] == 0
        assert Path(shown["directory"]).name.startswith("local-")
    # b's join push-pull with a went through a's stream socket, not TCP.
    assert local(b)["streams_out"] >= 1 and local(b)["stream_fallbacks"] == 0
    # An agent without the flag shows nothing of it and is still reached by UDP.
    c = cluster.spawn("c", extra=["--join", a.address])
    wait_until(lambda: cluster.converged(["a", "b", "c"]), CONVERGE, what="c joins by UDP")
    assert "local_channel" not in c.client().info()
    assert local(a)["peers_reached"] == 1  # c has no socket here: a reaches it by UDP


def test_a_killed_peer_is_detected_over_the_local_channel(cluster: LocalCluster) -> None:
    a, b = _pair(cluster)
    wait_until(lambda: local(a)["datagrams_out"] > 5, DETECT, what="local traffic")
    start = time.monotonic()
    b.signal(signal.SIGKILL)
    assert b.wait(10) == -signal.SIGKILL
    wait_until(lambda: a.states()["b"] == "failed", DETECT, interval=0.05, what="b failed")
    print(f"\nkill -9 seen failed over the local channel in {time.monotonic() - start:.2f} s")
    # Its stale socket file was refused: a fell back to UDP, and says so.
    assert local(a)["fallbacks"] >= 1


def test_removed_socket_files_fall_back_to_udp_without_a_false_failure(
    cluster: LocalCluster,
) -> None:
    a, b = _pair(cluster)
    wait_until(lambda: local(a)["datagrams_out"] > 5, DETECT, what="local traffic")
    b_incarnation = {m["name"]: m["incarnation"] for m in a.members()}["b"]
    directory = Path(local(b)["directory"])
    before = local(b)["datagrams_in"]
    # Remove the socket files of both (and only theirs: the folder is the host's).
    for agent in (a, b):
        base = channel_name(cluster.cluster, ("127.0.0.1", agent.port))
        for suffix in (".d", ".s"):
            path = directory / (base + suffix)
            assert path.exists()
            path.unlink()

    def rebound_and_used() -> bool:
        assert a.states()["b"] == "alive" and b.states()["a"] == "alive"
        return local(b)["rebinds"] >= 2 and local(b)["datagrams_in"] > before + 3

    # b binds its files again within a few seconds; meanwhile a reached it by UDP.
    wait_until(rebound_and_used, DETECT, interval=0.1, what="b's files bound again and used")
    assert local(a)["fallbacks"] >= 1
    # No suspicion had to be refuted: b's incarnation did not move.
    assert {m["name"]: m["incarnation"] for m in a.members()}["b"] == b_incarnation
