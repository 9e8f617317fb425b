"""The control endpoints bound what one client can hold: connections per endpoint and per
peer, and the time a request may take; the unix socket stays usable meanwhile; a monitor
holds its subscription only while its client is there."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from covey.runtime import Agent, AgentConfig, ControlClient
from covey.runtime.control import server
from covey.runtime.events import ClockLeap, event_to_json
from covey.runtime.localcluster import free_port

TIMEOUT = 30.0


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., AgentConfig]:
    key = Fernet.generate_key()

    def make(name: str, **kw: object) -> AgentConfig:
        base: dict[str, object] = {
            "name": name,
            "cluster": "limits",
            "bind": ("127.0.0.1", free_port()),
            "interfaces": ("127.0.0.1",),
            "multicast": ("239.192.77.5", free_port()),
            "keys": (key,),
            "control": tmp_path / f"{name}.sock",
            "rpc": ("127.0.0.1", free_port()),
        }
        base.update(kw)
        return AgentConfig(**base)  # type: ignore[arg-type]

    return make


async def test_one_peer_cannot_hold_the_endpoint_and_idle_clients_are_closed(
    make_config: Callable[..., AgentConfig],
) -> None:
    config = make_config("l", idle_timeout=1.0)
    async with Agent(config) as agent:
        assert config.rpc is not None
        held = [await asyncio.open_connection(*config.rpc) for _ in range(100)]
        first = [json.loads(await asyncio.wait_for(r.readline(), TIMEOUT)) for r, _ in held]
        greeted = [f for f in first if "challenge" in f]
        busy = [f for f in first if f.get("error") == "busy: too many connections"]
        assert len(greeted) == server.MAX_PER_PEER and len(busy) == 100 - server.MAX_PER_PEER
        # The operator's unix socket answers at once meanwhile.
        local = ControlClient(config.control_path)
        start = time.monotonic()
        assert (await asyncio.to_thread(local.info))["self"]["name"] == "l"
        assert time.monotonic() - start < 1.0
        # The greeted ones sent nothing: closed after the request timeout, and released.
        for reader, _ in held:
            assert await asyncio.wait_for(reader.read(), TIMEOUT) in (b"",)
        for _, writer in held:
            writer.close()
        counters = agent.runtime_counters()
        assert counters["control_timeout"] == server.MAX_PER_PEER
        assert counters["control_busy"] == 100 - server.MAX_PER_PEER
        deadline = time.monotonic() + TIMEOUT
        codecs_idle = False
        while time.monotonic() < deadline and not codecs_idle:
            fresh = ControlClient(rpc=config.rpc, keys=list(config.keys))
            try:
                codecs_idle = (await asyncio.to_thread(fresh.request, "self"))["name"] == "l"
            except Exception:
                await asyncio.sleep(0.05)
        assert codecs_idle  # everything was released: a new client is served


async def test_a_monitor_streams_events_and_its_subscription_ends_with_the_client(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with Agent(make_config("m")) as agent:
        before = len(agent.hub._subscribers)
        reader, writer = await asyncio.open_unix_connection(str(agent.config.control_path))
        writer.write(b'{"op": "monitor"}\n')
        assert json.loads(await asyncio.wait_for(reader.readline(), TIMEOUT))["ok"]
        agent.hub.publish(ClockLeap(0.0, 5.0))
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert json.loads(line)["event"] == event_to_json(ClockLeap(0.0, 5.0), 0.0)["event"]
        assert len(agent.hub._subscribers) == before + 1
        writer.close()  # the client leaves: the agent drops its subscription
        deadline = time.monotonic() + TIMEOUT
        while len(agent.hub._subscribers) > before and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert len(agent.hub._subscribers) == before
