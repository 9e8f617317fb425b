"""The HTTP port's own bounds, in process: a body that trickles in is cut at the idle
timeout (counted), an oversized head field is refused (400, counted)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cryptography.fernet import Fernet

from covey.runtime import Agent, AgentConfig
from covey.runtime.localcluster import free_port

TIMEOUT = 30.0


def _config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(
        name="h",
        cluster="http-limits",
        bind=("127.0.0.1", free_port()),
        interfaces=("127.0.0.1",),
        multicast=("239.192.77.5", free_port()),
        keys=(Fernet.generate_key(),),
        control=tmp_path / "h.sock",
        http=("127.0.0.1", free_port()),
        idle_timeout=1.0,
    )


async def test_a_trickling_body_is_cut_and_an_oversized_head_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config.http is not None
    async with Agent(config) as agent:
        reader, writer = await asyncio.open_connection(*config.http)
        writer.write(
            b"POST /v1/facts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        start = time.monotonic()
        answer = b""
        while time.monotonic() - start < TIMEOUT:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), 0.3)
            except TimeoutError:
                writer.write(b" ")  # a byte every 0.3 s: never idle, never done
                continue
            answer += chunk
            if not chunk:
                break
        elapsed = time.monotonic() - start
        writer.close()
        # Cut: answered 408 by the body deadline, or closed by aiohttp's keep-alive timer
        # first (both run on the idle timeout); either way counted once, within bounds.
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert elapsed < 5.0, elapsed
        assert agent.runtime_counters()["http_timeout"] == 1

        reader, writer = await asyncio.open_connection(*config.http)
        writer.write(b"GET /v1/self HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), answer[:200]
        assert agent.runtime_counters()["http_oversized"] == 1
        stats = agent.info()["ports"]["http"]  # type: ignore[index]
        assert stats["oversized"] == 1 and stats["timeout"] == 1 and stats["open"] <= 1
