"""Sealed remote-control lines cannot be replayed: to another agent, to the same agent
later, or after it restarted; each refusal is counted and logged once."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from covey.runtime import Agent, AgentConfig, ControlClient
from covey.runtime.control.server import SealedCodec
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
            "cluster": "replay",
            "bind": ("127.0.0.1", free_port()),
            "interfaces": ("127.0.0.1",),
            "multicast": ("239.192.77.4", group_port),
            "keys": (key,),
            "control": tmp_path / f"{name}.sock",
            "rpc": ("127.0.0.1", free_port()),
            "data_dir": tmp_path / name,
        }
        base.update(kw)
        return AgentConfig(**base)  # type: ignore[arg-type]

    return make


async def send_sealed(
    rpc: tuple[str, int],
    line: bytes | None,
    codec: SealedCodec,
    request: dict[str, object] | None = None,
) -> tuple[bytes, dict[str, object]]:
    """One connection: read the challenge, send ``line`` (or ``request`` sealed with this
    connection's challenge); (the line sent, the answer opened or plain)."""
    reader, writer = await asyncio.open_connection(*rpc)
    try:
        hello = json.loads(await asyncio.wait_for(reader.readline(), TIMEOUT))
        if line is None:
            assert request is not None
            line = codec.encode({**request, "challenge": hello["challenge"]})
        writer.write(line)
        raw = await asyncio.wait_for(reader.readline(), TIMEOUT)
    finally:
        writer.close()
    try:
        answer = codec.decode(raw)
    except Exception:
        answer = json.loads(raw)
    return line, answer


async def test_captured_sealed_lines_change_nothing_anywhere_anytime(
    make_config: Callable[..., AgentConfig], key: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    codec = SealedCodec([key])
    a_config, b_config = make_config("a"), make_config("b")
    async with Agent(a_config) as a, Agent(b_config) as b:
        await a.wait_for_members(2, timeout=TIMEOUT)
        # A genuine request, captured on the wire.
        captured, answer = await send_sealed(
            a_config.rpc, None, codec, {"op": "fact_set", "key": "colour", "value": "blue"}
        )
        assert answer["ok"] is True and a.facts()["a"]["colour"] == "blue"
        a.facts.set("colour", "green")  # a newer value the replay must not undo
        before_a = a.runtime_counters().get("rpc_refused", 0)
        before_b = b.runtime_counters().get("rpc_refused", 0)
        with caplog.at_level(logging.WARNING, logger="covey.control"):
            # 1. to the same agent later (a new connection), twice
            for _ in range(2):
                _, refused = await send_sealed(a_config.rpc, captured, codec)
                assert refused["ok"] is False  # a seen token, or not this connection's
            # 2. to another agent
            _, refused = await send_sealed(b_config.rpc, captured, codec)
            assert refused["ok"] is False and "challenge" in str(refused["error"])
        assert a.runtime_counters()["rpc_refused"] == before_a + 2
        assert b.runtime_counters()["rpc_refused"] == before_b + 1
        assert a.facts()["a"]["colour"] == "green" and "colour" not in b.facts().get("b", {})
        lines = [r for r in caplog.records if "control request refused" in r.getMessage()]
        assert len(lines) == 2  # once per agent, not once per attempt
    # 3. to the same agent after a restart (same identity, same keys).
    async with Agent(a_config) as a:
        _, refused = await send_sealed(a_config.rpc, captured, codec)
        assert refused["ok"] is False and "challenge" in str(refused["error"])
        assert a.runtime_counters()["rpc_refused"] == 1
        assert a.facts()["a"]["colour"] == "green"
        # The real client still works: it seals each request with its connection's challenge.
        client = ControlClient(rpc=a_config.rpc, keys=[key])
        assert (await asyncio.to_thread(client.request, "self"))["name"] == "a"
