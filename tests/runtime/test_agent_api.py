"""The Python API in-process: ``async with covey.Agent(...)``, events, waits, HTTP, RPC."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import covey
from covey.core import MemberJoined, MemberLeft
from covey.runtime import Agent, AgentConfig, ClientError, ClockLeap, ControlClient
from covey.runtime.localcluster import free_port

TIMEOUT = 30.0


@pytest.fixture
def key() -> bytes:
    return Fernet.generate_key()


@pytest.fixture
def make_config(tmp_path: Path, key: bytes) -> Callable[..., AgentConfig]:
    group_port = free_port()

    def make(name: str, **kw: object) -> AgentConfig:
        base: dict[str, object] = {
            "name": name,
            "cluster": "api",
            "bind": ("127.0.0.1", free_port()),
            "interfaces": ("127.0.0.1",),
            "multicast": ("239.192.77.1", group_port),
            "keys": (key,),
            "control": Path(f"/tmp/covey-test-{name}-{group_port}.sock"),
        }
        base.update(kw)
        return AgentConfig(**base)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def pair(make_config: Callable[..., AgentConfig]) -> AsyncIterator[tuple[Agent, Agent]]:
    async with Agent(make_config("a")) as a, Agent(make_config("b")) as b:
        await a.wait_for_members(2, timeout=TIMEOUT)
        await b.wait_for_members(2, timeout=TIMEOUT)
        yield a, b


def test_lazy_exports(tmp_path: Path) -> None:
    assert covey.Agent is Agent
    assert covey.AgentConfig is AgentConfig
    # The README's example reads every key of a two-key file, not only the first.
    keys = [Fernet.generate_key(), Fernet.generate_key()]
    (tmp_path / "k").write_bytes(b"# rotated\n" + b"\n".join(keys) + b"\n")
    assert covey.load_keys(tmp_path / "k") == tuple(keys)


async def test_events_and_graceful_leave(make_config: Callable[..., AgentConfig]) -> None:
    async with Agent(make_config("a")) as a:
        with a.events() as events:
            b = Agent(make_config("b"))
            async with b:
                await a.wait_for_members(2, timeout=TIMEOUT)
                joined = None
                while joined is None:
                    ev = await asyncio.wait_for(events.__anext__(), TIMEOUT)
                    if isinstance(ev, MemberJoined) and ev.member.name == "b":
                        joined = ev
                assert b.local().state.label == "alive"
            # b has left (async with ended): a hears it at once through the EXIT beacon.
            left = await a.wait_for_state("b", "left", timeout=5.0)
            assert left.incarnation >= 1
            kinds = []
            while (ev := await events.get(timeout=0.5)) is not None:
                kinds.append(type(ev))
            assert MemberLeft in kinds
            assert not b.ready


async def test_tags_spread_and_bad_tags_are_refused(pair: tuple[Agent, Agent]) -> None:
    a, b = pair
    a.update_tags({"role": "db"})

    def b_sees(agent: Agent) -> bool:
        m = agent.member("a")
        return m is not None and m.tags == {"role": "db"}

    await b.wait_for(b_sees, timeout=TIMEOUT)
    with pytest.raises(covey.runtime.ConfigError, match="tags"):
        a.set_tags({"big": "x" * 10_000})
    assert a.local().tags == {"role": "db"}  # the bad request lost nothing


async def test_garbage_never_breaks_the_receive_path(pair: tuple[Agent, Agent]) -> None:
    a, b = pair
    host, port = a.address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"", b"x", b"CV\x01\x01\x01not-a-token", b"CV\x09\x01\x01", b"\xff" * 1500):
            s.sendto(junk, (host, port))
    # Garbage on the TCP stream port too: a huge length prefix, then a short frame.
    for junk in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x05CV\x01\x02\x01", b"\x00"):
        _, writer = await asyncio.open_connection(host, port)
        writer.write(junk)
        await writer.drain()
        writer.close()

    def dropped(agent: Agent) -> bool:
        return sum(agent.statistics().drops.values()) >= 4

    await a.wait_for(dropped, timeout=TIMEOUT)
    assert a.info()["runtime"].get("internal_error", 0) == 0
    # Still a healthy member of the cluster.
    await a.wait_for_members(2, timeout=TIMEOUT)
    assert b.member("a") is not None and b.member("a").state.label == "alive"  # type: ignore[union-attr]


async def test_hostile_control_requests_are_refused_and_counted(
    pair: tuple[Agent, Agent],
) -> None:
    a, _ = pair

    def ask(line: bytes) -> dict[str, object]:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(a.config.control_path))
            s.sendall(line + b"\n")
            answer: dict[str, object] = json.loads(s.makefile("rb").readline())
            return answer

    deep = b'{"op": "info", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for line in (deep, b"{not json", b"[" * 40 + b"]" * 40):
        answer = await asyncio.to_thread(ask, line)
        assert answer["ok"] is False, line[:40]
    # Brackets inside a string are text, not nesting.
    fine = await asyncio.to_thread(ask, b'{"op": "self", "note": "' + b"[" * 100 + b'"}')
    assert fine["ok"] is True
    counters = a.info()["runtime"]
    assert isinstance(counters, dict) and counters["control_refused"] == 3
    assert "rpc_refused" not in counters
    assert a.ready


async def test_clock_leap_is_reported_and_fails_nobody(pair: tuple[Agent, Agent]) -> None:
    a, b = pair
    with a.events() as events:
        # As if the wall clock had jumped 10 s ahead of the monotonic clock.
        a.node.wall_offset -= 10.0
        leap = None
        async with asyncio.timeout(TIMEOUT):
            while leap is None:
                ev = await events.get(timeout=TIMEOUT)
                if isinstance(ev, ClockLeap):
                    leap = ev
    assert leap.delta == pytest.approx(10.0, abs=1.0)
    assert a.info()["runtime"]["clock_leap"] == 1
    await asyncio.sleep(0)  # let the loop run; no verdict changes:
    assert {m.name: m.state.label for m in b.members()} == {"a": "alive", "b": "alive"}


async def test_http_status(make_config: Callable[..., AgentConfig]) -> None:
    http = ("127.0.0.1", free_port())
    async with Agent(make_config("h", http=http)) as agent:
        base = f"http://127.0.0.1:{http[1]}"

        def get(path: str) -> object:
            with urllib.request.urlopen(base + path, timeout=5) as resp:
                return json.loads(resp.read())

        members = await asyncio.to_thread(get, "/v1/members")
        assert isinstance(members, list) and members[0]["name"] == "h"
        me = await asyncio.to_thread(get, "/v1/self")
        assert isinstance(me, dict) and me["id"] == agent.node_id.hex()
        health = await asyncio.to_thread(get, "/v1/health")
        assert isinstance(health, dict) and health["status"] == "ok"
        # The registry's key is a secret: the unauthenticated HTTP API never shows it.
        agent.settings.set_registry("127.0.0.9", 5000, "s3cret-key")
        shown = await asyncio.to_thread(get, "/v1/settings")
        assert isinstance(shown, dict) and "s3cret-key" not in json.dumps(shown)
        assert json.loads(shown["registry"])["ip"] == "127.0.0.9"
        assert agent.settings.get_registry()["key"] == "s3cret-key"  # type: ignore[index]


async def test_rpc_needs_the_cluster_key(
    make_config: Callable[..., AgentConfig], key: bytes
) -> None:
    rpc = ("127.0.0.1", free_port())
    async with Agent(make_config("r", rpc=rpc)) as agent:
        good = ControlClient(rpc=rpc, keys=[key])
        result = await asyncio.to_thread(good.request, "self")
        assert result["name"] == "r"
        bad = ControlClient(rpc=rpc, keys=[Fernet.generate_key()])
        with pytest.raises(ClientError, match="unauthenticated"):
            await asyncio.to_thread(bad.request, "members")
        # A plain JSON request is refused too.
        reader, writer = await asyncio.open_connection(*rpc)
        hello = json.loads(await reader.readline())  # the connection's challenge, in plain
        assert len(hello["challenge"]) == 32 and hello["node"] == agent.node_id.hex()
        writer.write(b'{"op": "leave"}\n')
        answer = json.loads(await reader.readline())
        writer.close()
        assert answer == {"ok": False, "error": "unauthenticated"}
        assert agent.ready


async def test_data_dir_keeps_identity(
    make_config: Callable[..., AgentConfig], tmp_path: Path
) -> None:
    cfg = make_config("p", data_dir=tmp_path / "data")
    async with Agent(cfg) as first:
        node_id = first.node_id
    async with Agent(cfg) as second:
        assert second.node_id == node_id
        assert second.local().incarnation > 0


async def test_port_in_use_fails_cleanly(make_config: Callable[..., AgentConfig]) -> None:
    cfg = make_config("x")
    async with Agent(cfg):
        clash = make_config("y", bind=cfg.bind)
        with pytest.raises(OSError):
            async with Agent(clash):
                pass
        assert not clash.control_path.exists()


async def test_waits_end_when_the_agent_stops_and_on_cancel(
    make_config: Callable[..., AgentConfig],
) -> None:
    from covey.runtime import AgentStopped

    agent = Agent(make_config("w"))
    await agent.start()
    waiting = asyncio.create_task(agent.wait_for_members(5, timeout=30))
    await asyncio.sleep(0)  # subscribed
    await agent.stop()
    t0 = asyncio.get_running_loop().time()
    with pytest.raises(AgentStopped):
        await waiting
    # After the stop, a new wait ends at once with the same clear error, never spins.
    with pytest.raises(AgentStopped):
        await agent.wait_for_members(5, timeout=3)
    assert asyncio.get_running_loop().time() - t0 < 2.0

    again = Agent(make_config("w2"))
    await again.start()
    try:
        task = asyncio.create_task(again.wait_for_members(5, timeout=30))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await again.stop()
