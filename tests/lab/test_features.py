"""Election and shared state across a real partition: the minority has no leader; facts
and cluster settings written on both sides during the split converge after the heal.

Agents run with ``--expected-votes 5`` (election on, quorum 3). The current leader is put
on the two-host side, so the test also sees it step down when its lease cannot be renewed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from covey.lab import LabCluster, partition
from covey.runtime.control.client import ClientError
from covey.runtime.localcluster import wait_until

from .helpers import converge

ELECTION_S = 60.0


def _names(cluster: LabCluster, name: str) -> dict[str, Any] | None:
    try:
        return dict(cluster.agents[name].client().request("names"))
    except ClientError:
        return None


def _agreed_leader(cluster: LabCluster, names: list[str]) -> str | None:
    """The leader every agent of ``names`` names (exactly one of them in role leader)."""
    seen = [_names(cluster, n) for n in names]
    if any(s is None for s in seen):
        return None
    leaders = {s["leader"] for s in seen if s is not None}
    roles = [n for n, s in zip(names, seen, strict=True) if s and s["role"] == "leader"]
    if len(leaders) == 1 and None not in leaders and len(roles) == 1:
        return roles[0]
    return None


def test_minority_has_no_leader_and_state_converges_after_heal(make_lab):
    lab, cluster, faults = make_lab(5, agent_args=("--expected-votes", "5"))
    cluster.start_all()
    names = [h.name for h in lab.hosts]
    converge(cluster, names)
    leader = wait_until(lambda: _agreed_leader(cluster, names), ELECTION_S, what="a leader")
    term0 = int(_names(cluster, leader)["term"])  # type: ignore[index]
    others = [n for n in names if n != leader]
    minority, majority = [leader, others[0]], others[1:]
    faults.set("split", partition(map(lab.host, minority), map(lab.host, majority)))

    # The majority elects a new leader; the old one steps down; nobody in the minority leads.
    new = wait_until(lambda: _agreed_leader(cluster, majority), ELECTION_S, what="new leader")
    assert new in majority
    assert int(_names(cluster, new)["term"]) > term0  # type: ignore[index]
    wait_until(
        lambda: all(
            (s := _names(cluster, n)) is not None and s["role"] != "leader" and s["leader"] is None
            for n in minority
        ),
        ELECTION_S,
        what=f"minority {minority} to have no leader",
    )

    # Both sides write while split: a fact in the minority, a setting in the majority.
    # (the minority's through the `covey set` command, as an operator would)
    control = str(cluster.agents[minority[1]].control)
    subprocess.run(
        [sys.executable, "-m", "covey", "set", "side", "minority", "--control", control],
        check=True,
        capture_output=True,
        timeout=30,
    )
    cluster.agents[majority[0]].client().request("fact_set", key="side", value="majority")
    cluster.agents[majority[1]].client().request("setting_set", name="mode", value="blue")

    faults.heal()
    converge(cluster, names, timeout=90)
    final = wait_until(lambda: _agreed_leader(cluster, names), ELECTION_S, what="one leader")
    print(f"leader {leader} (term {term0}); majority elected {new}; after heal: {final}")

    def state_converged() -> bool:
        for n in names:
            client = cluster.agents[n].client()
            facts = client.request("facts")
            if facts.get(minority[1], {}).get("side") != "minority":
                return False
            if facts.get(majority[0], {}).get("side") != "majority":
                return False
            if client.request("settings").get("mode") != "blue":
                return False
        return True

    wait_until(state_converged, 60, what="facts and settings to reach every node")
    print(json.dumps(cluster.agents[minority[0]].client().request("facts"), sort_keys=True))
