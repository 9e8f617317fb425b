"""Leader election with real agent processes on loopback (kill -9, 2/3 split, heartbeat disk).

The split uses the agents' ``drop`` control operation (a documented testing aid that makes
an agent's driver discard unicast traffic to and from given addresses), so everything
stays on 127.0.0.1. Deadlines are generous (CI machines are small); the measured times
are printed (``pytest -s``).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from covey.runtime.control.client import ClientError
from covey.runtime.features.hbdisk import format_disk, read_disk
from covey.runtime.localcluster import AgentProcess, LocalCluster, wait_until


def names(a: AgentProcess) -> dict[str, Any]:
    result: dict[str, Any] = a.client(timeout=3.0).request("names")
    return result


def agreed_leader(agents: Sequence[AgentProcess]) -> str | None:
    """The one leader every agent in ``agents`` names, or None."""
    try:
        seen = {names(a)["leader"] for a in agents}
    except ClientError:
        return None
    if len(seen) == 1:
        (leader,) = seen
        return leader  # type: ignore[no-any-return]
    return None


def leaders(agents: Sequence[AgentProcess]) -> set[str]:
    """Agents that say they are leader (with a valid lease)."""
    return {a.name for a in agents if names(a)["role"] == "leader"}


def start(cluster: LocalCluster, n: int, *extra: str) -> list[AgentProcess]:
    cluster.agent_args = ["--expected-votes", str(n), *extra]
    agents = cluster.start(n)
    wait_until(cluster.converged, 60, what="membership")
    wait_until(lambda: agreed_leader(agents), 60, what="a first leader")
    return agents


def cut(side_a: Sequence[AgentProcess], side_b: Sequence[AgentProcess]) -> None:
    for a in side_a:
        a.client().request("drop", add=[b.address for b in side_b])
    for b in side_b:
        b.client().request("drop", add=[a.address for a in side_a])


def test_kill_9_of_the_leader_elects_one_new_leader_for_all(cluster: LocalCluster) -> None:
    agents = start(cluster, 5)
    old = agreed_leader(agents)
    victim = next(a for a in agents if a.name == old)
    term = names(victim)["term"]
    t0 = time.monotonic()
    victim.signal(signal.SIGKILL)
    survivors = [a for a in agents if a is not victim]

    def new_leader() -> str | None:
        leader = agreed_leader(survivors)
        return leader if leader not in (None, old) else None

    leader = wait_until(new_leader, 30, interval=0.05, what="a new leader known to all")
    took = time.monotonic() - t0
    print(f"\nfailover after kill -9 of the leader: {took:.2f} s ({old} -> {leader})")
    assert leaders(survivors) == {leader}
    assert all(names(a)["term"] > term for a in survivors)
    # Each survivor's log says so, one grep-able line per change.
    for a in survivors:
        wait_until(
            lambda a=a: f"election: leader {leader} (term" in a.log_tail(200),
            10,
            what=f"{a.name}'s log line",
        )


def test_split_two_three_only_the_majority_leads_and_heal_reunites(
    cluster: LocalCluster,
) -> None:
    agents = start(cluster, 5)
    # Put the current leader on the minority side: it must step down.
    old = agreed_leader(agents)
    minority = [a for a in agents if a.name == old] + [a for a in agents if a.name != old][:1]
    majority = [a for a in agents if a not in minority]
    cut(minority, majority)
    ours = {a.name for a in majority}

    def majority_leader() -> str | None:
        leader = agreed_leader(majority)
        return leader if leader in ours else None

    leader = wait_until(majority_leader, 30, what="a leader on the majority side")

    # The minority has no leader, and stays so for a good while (several election times).
    wait_until(lambda: not any(names(a)["leader"] for a in minority), 15, what="minority")
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        assert not any(names(a)["leader"] for a in minority)
        assert leaders(minority) == set()
        time.sleep(0.2)
    assert leaders(majority) == {leader}

    for a in agents:
        a.client().request("drop", clear=True)
    final = wait_until(lambda: agreed_leader(agents), 60, what="one leader after healing")
    assert leaders(agents) == {final}


def test_cut_node_writing_its_disk_slot_is_partitioned_not_fenced(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    disk = tmp_path / "hb.disk"
    format_disk(disk, 8)
    fenced = tmp_path / "fenced.log"
    fence = f'echo "$COVEY_FENCE_NODE $COVEY_TERM $COVEY_FENCE_ADDRESS" >> {fenced}'
    agents = start(cluster, 3, "--heartbeat-disk", str(disk), "--fence-command", fence)
    wait_until(lambda: len(read_disk(disk)[1]) == 3, 30, what="three disk slots written")
    leader = next(a for a in agents if a.name == agreed_leader(agents))
    victim = next(a for a in agents if a is not leader)
    others = [a for a in agents if a is not victim]
    cut([victim], others)

    def partitioned() -> bool:
        return victim.name in names(leader)["partitioned"]

    wait_until(partitioned, 60, what=f"{victim.name} reported partitioned")
    assert not fenced.exists() or victim.name not in fenced.read_text()

    # Once it stops writing its slot too, it is dead: the leader fences it, with its term.
    victim.signal(signal.SIGKILL)
    wait_until(lambda: fenced.exists() and victim.name in fenced.read_text(), 60, what="fencing")
    node, term, address = fenced.read_text().split()
    assert (node, address) == (victim.name, victim.address)
    assert int(term) == names(leader)["term"]
