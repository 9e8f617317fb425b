"""The election by default: no flag, the quorum's size tracked (real agents on 127.0.0.1).

Five agent processes without any election flag elect one leader, track an expected size
of five, survive a kill -9 of the leader, and take ``covey expect`` (refused below the
members alive or below 1); an in-process agent shows ``stable: false`` through its
bootstrap window; ``--no-election`` switches it all off.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from covey.runtime import Agent, AgentConfig
from covey.runtime.control.client import ClientError
from covey.runtime.control.server import ControlError
from covey.runtime.localcluster import AgentProcess, LocalCluster, wait_until

from .configs import config_factory
from .test_election import agreed_leader, leaders, names

TIMEOUT = 60.0


def covey(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    cmd = [sys.executable, "-m", "covey", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def expected(agents: list[AgentProcess]) -> set[int]:
    return {int(names(a)["expected_votes"]) for a in agents}


def test_a_plain_cluster_elects_one_leader_and_survives_kill_9(cluster: LocalCluster) -> None:
    agents = cluster.start(5)
    wait_until(cluster.converged, TIMEOUT, what="membership")
    first = wait_until(lambda: agreed_leader(agents), TIMEOUT, what="a first leader")
    assert leaders(agents) == {first}
    wait_until(lambda: expected(agents) == {5}, TIMEOUT, what="expected votes 5 everywhere")
    shown = names(agents[0])
    assert shown["expected_rule"] == "tracked" and shown["quorum"] == 3
    wait_until(lambda: all(names(a)["stable"] for a in agents), TIMEOUT, what="stable")

    victim = next(a for a in agents if a.name == first)
    t0 = time.monotonic()
    victim.signal(signal.SIGKILL)
    survivors = [a for a in agents if a is not victim]

    def new_leader() -> str | None:
        leader = agreed_leader(survivors)
        return leader if leader not in (None, first) else None

    leader = wait_until(new_leader, 30, interval=0.05, what="a new leader known to all")
    print(f"\ntracked rule: failover after kill -9: {time.monotonic() - t0:.2f} s")
    assert leaders(survivors) == {leader}
    # A crash lowers nothing: the dead one may be partitioned, not dead.
    assert expected(survivors) == {5}

    # covey expect: below 1 is a usage error; below the members alive is refused.
    control = ["--control", str(survivors[0].control)]
    bad = covey("expect", "0", *control)
    assert bad.returncode == 2 and "at least 1" in bad.stderr
    wait_until(lambda: cluster.converged([a.name for a in survivors]), TIMEOUT, what="4 alive")
    low = covey("expect", "3", *control)
    assert low.returncode == 1 and "below the 4 members alive" in low.stderr, low.stderr
    ok = covey("expect", "4", *control)
    assert ok.returncode == 0 and "5 -> 4" in ok.stdout, ok.stderr
    wait_until(lambda: expected(survivors) == {4}, 30, what="expected votes 4 everywhere")
    assert names(survivors[0])["quorum"] == 3
    assert agreed_leader(survivors) == leader and leaders(survivors) == {leader}


def test_no_election_switches_it_off(cluster: LocalCluster) -> None:
    agent = cluster.spawn("plain", extra=["--no-election"])
    with pytest.raises(ClientError, match="election is off"):
        names(agent)
    out = covey("names", "--control", str(agent.control))
    assert out.returncode == 1 and "election is off" in out.stderr


async def until(check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll ``check`` (stability comes with time passing, not with an event)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., AgentConfig]:
    return config_factory(
        "tracked",
        "239.192.77.6",
        control=lambda name, _: tmp_path / f"{name}.sock",
        data_dir=lambda name, _: tmp_path / name,
        election_heartbeat=0.05,
    )


async def test_stable_after_the_bootstrap_window_a_leave_lowers_and_a_restart_keeps_it(
    make_config: Callable[..., AgentConfig],
) -> None:
    window = 2.0
    config_a = make_config("a", election_bootstrap=window)
    async with Agent(config_a) as a:
        t0 = time.monotonic()
        # Collecting peers: it does not stand, so there is no leader and nothing stable.
        early = a.election.names()
        assert early["stable"] is False and early["leader"] is None
        async with Agent(make_config("b", election_bootstrap=window)) as b:
            await until(lambda: bool(a.election.names()["stable"]))
            assert time.monotonic() - t0 >= window
            assert a.election.names()["expected_votes"] == 2
            await until(lambda: bool(b.election.names()["stable"]))
            assert a.election.names()["leader"] == b.election.names()["leader"]
        # b left gracefully: it told a to lower the size by one, as a new generation.
        await until(lambda: a.election.names()["expected_votes"] == 1)
    # The size is durable (written with the vote): a restart keeps it and its generation.
    saved = json.loads((config_a.data_dir / "election.json").read_text())
    assert saved["size_gen"] >= 1 and saved["expected"] >= 1
    async with Agent(config_a) as again:
        shown = again.election.names()
        assert shown["expected_votes"] == saved["expected"]
        with pytest.raises(ControlError, match=r"integer in 1\.\.10000"):
            again.election.expect(0)
        gen = saved["size_gen"] + 1
        assert (
            again.election.expect(3)
            == f"expected votes {saved['expected']} -> 3 (generation {gen})"
        )
        assert again.election.names()["quorum"] == 2
