"""covey beside real pyre nodes (ZRE v2, RFC 36), in a namespace whose only interface is lo.

pyre chooses its beacon interface itself and would broadcast on a real one in the
caller's namespace, so every pyre node here runs in the test's own
:class:`~covey.lab.LoopbackLab` namespace (``lo`` with the MULTICAST flag and the route
``224.0.0.0/4 dev lo src 127.0.0.1``: pyre, finding no interface but loopback, beacons to
225.25.25.25 there, and covey's beacons on ``--interface lo`` go to the same group).
Everything is stopped by PID and the namespace deleted at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from covey.lab import LabAgent, LabCluster, LoopbackLab, unavailable_reason
from covey.lab.zre import PyreNode
from covey.runtime.localcluster import wait_until

#: Generous bounds for what should take about a second (two shared cores).
FIND_S = 30.0
#: pyre's peer expiry for the crash test (its default is 30 s; see test_crashes).
PYRE_EXPIRED = 3


@pytest.fixture
def site(tmp_path) -> Iterator[tuple[LoopbackLab, LabCluster, list[PyreNode]]]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    try:
        import pyre  # noqa: F401
    except ImportError:
        pytest.skip("the ZRE interop tests need zeromq-pyre (pip install -e .[dev])")
    lab = LoopbackLab()
    cluster = LabCluster(lab, workdir=tmp_path / "lab", record=True)
    nodes: list[PyreNode] = []
    try:
        yield lab, cluster, nodes
    finally:
        for node in nodes:
            node.kill()
        cluster.close()
        lab.close()


def _covey(cluster: LabCluster, lab: LoopbackLab) -> LabAgent:
    agent = cluster.add(lab.hosts[0], ["--zre", "--zre-group", "chat", "--no-election"])
    cluster.wait_ready(agent)
    return agent


def _zre_peers(agent: LabAgent) -> dict[str, dict]:
    return {m["name"]: m for m in agent.client().members() if m.get("kind") == "zre"}


def _covey_saw(
    cluster: LabCluster, kind: str, name: str, since: float = 0.0, timeout: float = FIND_S
):
    """The first ``kind`` event about ``name`` covey reported at or after ``since``."""
    assert cluster.recorder is not None
    hit = cluster.recorder.wait_for(
        lambda _o, e: e.get("event") == kind and e.get("name") == name and e["time"] >= since,
        timeout,
    )
    assert hit is not None, f"covey never reported {kind} of {name}"
    return hit[1]


def test_enter_shout_whisper_and_graceful_exits(site):
    """Both sides see each other ENTER; SHOUT and WHISPER go each way; pyre's stop shows as
    left on covey; covey's SIGTERM shows as EXIT on pyre within 1 s."""
    lab, cluster, nodes = site
    host = lab.hosts[0]
    agent = _covey(cluster, lab)
    p1 = PyreNode(host, "pyre1", ["chat"])
    nodes.append(p1)
    p2 = PyreNode(host, "pyre2", ["chat"])
    nodes.append(p2)

    for p in (p1, p2):
        entered = p.wait_for(lambda e: e["event"] == "ENTER" and e["name"] == "h1", FIND_S)
        assert entered is not None, f"{p.name} never saw covey ENTER"
        assert entered["headers"]["X-COVEY-CLUSTER"] == "lab"
        assert p.wait_for(lambda e: e["event"] == "JOIN" and e["group"] == "chat", FIND_S)
    wait_until(lambda: {"pyre1", "pyre2"} <= set(_zre_peers(agent)), FIND_S, what="pyre listed")
    listed = _zre_peers(agent)["pyre1"]
    assert listed["id"] == p1.uuid and listed["state"] == "alive"
    assert listed["tags"]["X-PYRE-TEST"] == "yes"
    assert listed["tags"]["zre.groups"] == "chat"
    # Foreign members are listed, never counted: the SWIM table has covey alone.
    assert agent.client().info()["stats"]["members"] == {"alive": 1}

    # SHOUT covey -> pyre (by the CLI), and pyre -> covey.
    shout_cli = [sys.executable, "-m", "covey", "zre", "shout", "--control", str(agent.control)]
    proc = subprocess.run(
        [*shout_cli, "chat", "hello pyre"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "shouted to 2 peer(s) in chat" in proc.stdout, proc
    got = p1.wait_for(lambda e: e["event"] == "SHOUT", FIND_S)
    assert got is not None and got["content"] == ["hello pyre"] and got["group"] == "chat"
    p1.command("shout chat hello covey")
    shout = _covey_saw(cluster, "zre-shout", "pyre1")
    assert shout["content"] == ["hello covey"] and shout["group"] == "chat"
    # WHISPER each way.
    agent.client().request("zre_whisper", peer="pyre2", content=["psst"])
    got = p2.wait_for(lambda e: e["event"] == "WHISPER", FIND_S)
    assert got is not None and got["content"] == ["psst"]
    p2.command(f"whisper {entered['peer']} back at you")
    assert _covey_saw(cluster, "zre-whisper", "pyre2")["content"] == ["back at you"]

    # pyre's own stop: its port-0 beacon, covey lists it as left at once.
    stopped_at = time.time()
    p1.stop()
    left = _covey_saw(cluster, "zre-exit", "pyre1", since=stopped_at)
    assert left["reason"] == "left"
    assert "pyre1" not in _zre_peers(agent)

    # covey's SIGTERM: the port-0 beacon, pyre2 reports EXIT within 1 s.
    sent_at = time.time()
    assert agent.pid is not None
    os.kill(agent.pid, signal.SIGTERM)
    gone = p2.wait_for(
        lambda e: e["event"] == "EXIT" and e["name"] == "h1" and e["t"] >= sent_at, FIND_S
    )
    assert gone is not None, "pyre2 never saw covey EXIT"
    took = gone["t"] - sent_at
    print(f"covey SIGTERM -> pyre EXIT: {took:.3f} s")
    assert took < 1.0


def test_crashes_are_seen(site):
    """A pyre node killed with SIGKILL is gone on covey within 2 s; a covey agent killed
    with SIGKILL is gone on pyre within pyre's own expiry.

    pyre's expiry is 30 s; this test sets it to PYRE_EXPIRED (``PyrePeer.PEER_EXPIRED``,
    the same code path) to stay quick. COVEY_ZRE_FULL_EXPIRY=1 runs it with pyre's 30 s.
    """
    lab, cluster, nodes = site
    host = lab.hosts[0]
    full = os.environ.get("COVEY_ZRE_FULL_EXPIRY") == "1"
    expired = None if full else PYRE_EXPIRED
    agent = _covey(cluster, lab)
    watcher = PyreNode(host, "watcher", ["chat"], expired=expired)
    nodes.append(watcher)
    victim = PyreNode(host, "victim", ["chat"])
    nodes.append(victim)
    wait_until(lambda: {"watcher", "victim"} <= set(_zre_peers(agent)), FIND_S, what="listed")
    assert watcher.wait_for(lambda e: e["event"] == "ENTER" and e["name"] == "h1", FIND_S)

    killed_at = time.time()
    victim.kill()
    exit_ = _covey_saw(cluster, "zre-exit", "victim", since=killed_at)
    took = exit_["time"] - killed_at
    print(f"pyre SIGKILL -> gone on covey: {took:.3f} s ({exit_['reason']})")
    assert exit_["reason"] == "expired"
    assert took < 2.0
    assert "victim" not in _zre_peers(agent)

    assert agent.pid is not None
    killed_at = time.time()
    agent.kill()
    limit = 30.0 if full else PYRE_EXPIRED
    gone = watcher.wait_for(
        lambda e: e["event"] == "EXIT" and e["name"] == "h1" and e["t"] >= killed_at, limit + 15
    )
    assert gone is not None, "pyre never expired the killed covey node"
    took = gone["t"] - killed_at
    print(f"covey SIGKILL -> pyre EXIT: {took:.3f} s (pyre expiry {limit:g} s)")
    # pyre checks its peers once a second: expiry plus at most one reap interval (and slack).
    assert took < limit + 2.0
