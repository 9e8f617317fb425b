"""Two agents started under one name, with real processes on loopback: the second is
refused (exits 2, its log names the clash) and the first one's facts stay whole, as
seen from itself and from a third agent."""

from __future__ import annotations

from typing import Any

from covey.runtime.localcluster import AgentProcess, LocalCluster, wait_until

TIMEOUT = 30.0


def _facts_of(agent: AgentProcess, name: str) -> dict[str, Any]:
    return dict(agent.client().request("facts", node=name).get(name, {}))


def _named(agent: AgentProcess, name: str) -> list[dict[str, Any]]:
    return [m for m in agent.members() if m["name"] == name]


def test_a_second_agent_under_a_live_name_is_refused_and_the_first_keeps_its_facts(
    cluster: LocalCluster,
) -> None:
    first = cluster.spawn("a")
    observer = cluster.spawn("c", extra=["--join", first.address])
    wait_until(lambda: cluster.converged(["a", "c"]), TIMEOUT, what="a and c converged")
    for key, value in (("color", "blue"), ("zone", "east"), ("role", "primary")):
        first.client().request("fact_set", key=key, value=value)
    wait_until(
        lambda: _facts_of(observer, "a").get("role") == "primary",
        TIMEOUT,
        what="c to hold a's facts",
    )
    before = _facts_of(first, "a")
    assert _facts_of(observer, "a") == before
    first_id = first.client().self_member()["id"]

    second = cluster.spawn("a", label="a-second", extra=["--join", first.address], wait=False)
    code = second.wait(TIMEOUT)
    assert code == 2, (code, second.log_tail())
    log = second.log.read_text()
    assert "name clash" in log and "'a'" in log and first_id in log, log[-2000:]

    # The clash left the first one whole: one live "a", its own, its facts unchanged.
    for agent in (first, observer):
        named = _named(agent, "a")
        assert [(m["id"], m["state"]) for m in named] == [(first_id, "alive")], named
        assert _facts_of(agent, "a") == before
    assert cluster.converged(["a", "c"])
    assert first.running() and observer.running()
    counters = first.client().info()["runtime"]
    assert counters.get("name_conflict", 0) >= 1
