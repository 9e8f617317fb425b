"""Features as objects, in-process: the facades, the flat names, per-agent features.

Real agents on 127.0.0.1 in this process (no registry is shared between them: one runs
an election, the other is started with ``election=False``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from covey.runtime import Agent, AgentConfig, ClientError, ControlClient
from covey.runtime.control.server import ControlError

from .configs import config_factory

TIMEOUT = 30.0


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., AgentConfig]:
    return config_factory(
        "features",
        control=lambda name, port: Path(f"/tmp/covey-test-feat-{name}-{port}.sock"),
    )


async def test_facades_and_their_flat_names_agree(make_config: Callable[..., AgentConfig]) -> None:
    async with Agent(make_config("a")) as a, Agent(make_config("b")) as b:
        await a.wait_for_members(2, timeout=TIMEOUT)
        assert a.facts.set("ready", "yes") is True
        assert a.set_fact("ready", "yes") is False  # the flat name: same fact, no change
        a.settings.set_registry("10.0.0.9", 5000, "k1")
        b.on_action("greet", lambda payload: f"hello {payload}")
        a.actions.on("greet", lambda payload: f"hi {payload}")

        def b_knows(agent: Agent) -> bool:
            return agent.facts("a").get("a", {}).get("ready") == "yes" and bool(
                agent.get_registry()
            )

        await b.wait_for(b_knows, timeout=TIMEOUT)
        assert b.facts() == b.facts.__call__() and b.facts()["a"] == {"ready": "yes"}
        assert b.settings.get_registry() == {"ip": "10.0.0.9", "port": 5000, "key": "k1"}
        assert b.settings() == b.settings.__call__() and "registry" in b.settings()
        outcome = await a.actions.run("greet", "you", timeout=TIMEOUT)
        assert outcome["results"] == {
            "a": {"ok": True, "result": "hi you"},
            "b": {"ok": True, "result": "hello you"},
        }
        assert outcome["missing"] == []
        a.facts.set_local_version("4.12")
        assert a.local_version == a.facts.local_version == "4.12"
        assert a.versions() == a.facts.versions()
        assert a.runtime_counters()["effect_error"] == 0


async def test_each_agent_has_its_own_features(
    make_config: Callable[..., AgentConfig], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    elected = make_config("e", expected_votes=1, data_dir=data, election_heartbeat=0.05)
    async with Agent(elected) as e, Agent(make_config("plain", election=False)) as plain:
        assert e.election.enabled and not plain.election.enabled
        await e.wait_for(lambda agent: agent.names()["leader"] == "e", timeout=TIMEOUT)
        names = e.election.names()
        assert names["role"] == "leader" and names["fences"] == [] and names["disk"] is None
        # The vote was made durable (by the writer thread) with the term it was given in.
        vote = json.loads((data / "election.json").read_text())
        assert vote["term"] >= 1 and vote["voted_for"] == e.node_id.hex()
        with pytest.raises(ControlError, match="election is off"):
            plain.election.names()
        client = ControlClient(plain.config.control_path)
        with pytest.raises(ClientError, match="election is off"):
            await asyncio.to_thread(client.request, "names")
        with pytest.raises(ClientError, match="unknown op"):
            await asyncio.to_thread(client.request, "no-such-op")
        ours = ControlClient(e.config.control_path)
        result = await asyncio.to_thread(ours.request, "names")
        assert result["leader"] == "e"


async def test_the_facades_refuse_changes_while_the_agent_is_not_running(
    make_config: Callable[..., AgentConfig],
) -> None:
    agent = Agent(make_config("idle"))
    assert agent.facts() == {"idle": {}}  # reads work before start
    with pytest.raises(RuntimeError, match="not running"):
        agent.facts.set("k", "v")
    async with agent:
        assert agent.facts.set("k", "v")
    with pytest.raises(RuntimeError, match="not running"):
        agent.set_setting("k", "v")
