"""Every listening port holds up under a flood, in a real agent process limited to 1,024
descriptors: 2,000 idle connections, 100 slow writers and 10 oversized frames against
each of the stream, rpc and HTTP ports. Throughout, the agent's RSS stays below 64 MiB,
``covey info`` answers within 1 s and its peer never suspects it; afterwards every
descriptor and connection slot is given back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from covey.runtime.control.client import ClientError, ControlClient
from covey.runtime.localcluster import AgentProcess, LocalCluster, free_port, wait_until

IDLE_TIMEOUT = 2.0
FLOOD = 2000
SLOW = 100
OVERSIZED = 10
RSS_LIMIT_KIB = 64 * 1024
TIMEOUT = 60.0


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Sampler(threading.Thread):
    """Asks the agent for ``info`` every 0.2 s; keeps the slowest answer, RSS and fds."""

    def __init__(self, agent: AgentProcess) -> None:
        super().__init__(daemon=True)
        self.agent = agent
        self.stop = threading.Event()
        self.slowest = 0.0
        self.failures: list[str] = []
        self.rss_max = 0
        self.fds_max = 0
        self.samples = 0

    def run(self) -> None:
        client = ControlClient(self.agent.control, timeout=5.0)
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                client.info()
            except ClientError as exc:
                self.failures.append(str(exc))
            self.slowest = max(self.slowest, time.monotonic() - start)
            self.rss_max = max(self.rss_max, _rss_kib(self.agent.pid))
            self.fds_max = max(self.fds_max, _fds(self.agent.pid))
            self.samples += 1
            self.stop.wait(0.2)


class Monitor(threading.Thread):
    """Every event the peer publishes (its control ``monitor`` stream)."""

    def __init__(self, control: Path) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(control))
        self.sock.sendall(b'{"op": "monitor"}\n')
        self.lines: list[str] = []

    def run(self) -> None:
        with contextlib.suppress(OSError), self.sock.makefile("rb") as fh:
            for line in fh:
                self.lines.append(line.decode(errors="replace"))


@pytest.fixture
def raised_limit() -> Iterator[None]:
    """This (attacking) process needs more than 6,000 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 8000:
        pytest.skip(f"the hard descriptor limit ({hard}) is too low for the attacker")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard > 0 else 20000, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _open(port: int, sem: asyncio.Semaphore) -> asyncio.StreamWriter | None:
    async with sem:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except (OSError, TimeoutError):
            return None
        return writer


async def _slow_writer(port: int, head: bytes, closed_after: list[float]) -> None:
    """Send ``head`` then one byte a second; note how long until the agent closed us."""
    start = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    try:
        writer.write(head)
        while time.monotonic() - start < 6 * IDLE_TIMEOUT:
            try:
                await asyncio.wait_for(reader.read(65536), 1.0)
            except TimeoutError:
                writer.write(b"x")
                continue
            if reader.at_eof():
                closed_after.append(time.monotonic() - start)
                return
    except OSError:
        closed_after.append(time.monotonic() - start)
    finally:
        writer.close()


async def _oversized(port: int, data: bytes) -> bytes:
    """Send one oversized frame; returns what the agent answered before closing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(OSError):
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            return await asyncio.wait_for(reader.read(), TIMEOUT)
        return b""
    finally:
        writer.close()


async def test_ports_hold_under_a_flood_within_1024_descriptors(raised_limit: None) -> None:
    with LocalCluster(cluster="flood") as cluster:
        peer = cluster.spawn("peer")
        rpc, http = free_port(), free_port()
        port = free_port()
        log = cluster.workdir / "target.log"
        command = cluster.command(
            "target",
            port,
            extra=[
                *("--rpc", f"127.0.0.1:{rpc}", "--http", f"127.0.0.1:{http}"),
                *("--join", peer.address),
            ],
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
        env["COVEY_IDLE_TIMEOUT"] = str(IDLE_TIMEOUT)
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_limit_descriptors,
            )
        target = AgentProcess("target", port, proc, cluster.workdir / "target.sock", log)
        cluster.agents["target"] = target
        cluster.wait_ready(target)
        wait_until(lambda: cluster.converged(["peer", "target"]), TIMEOUT, what="converged")
        info = target.client().info()
        caps = {label: p["cap"] for label, p in info["ports"].items()}
        assert sum(caps.values()) <= 1024 - 128, caps
        baseline = _fds(target.pid)
        monitor = Monitor(peer.control)
        monitor.start()
        sampler = Sampler(target)
        sampler.start()
        ports = {"stream": port, "rpc": rpc, "http": http}
        try:
            # 1. The idle flood: 2,000 connections on each port, all held at once.
            sem = asyncio.Semaphore(256)
            held = await asyncio.gather(
                *(_open(p, sem) for p in ports.values() for _ in range(FLOOD))
            )
            opened = [w for w in held if w is not None]
            assert len(opened) > 0.9 * 3 * FLOOD, len(opened)

            # The idle ones are closed after the idle timeout, the others at once.
            def released() -> bool:
                shown = target.client().info()["ports"]
                return all(shown[label]["open"] == 0 for label in ports)

            wait_until(released, TIMEOUT, interval=0.5, what="idle connections closed")
            for w in opened:
                w.close()
            # 2. Slow writers: a byte a second, closed by the read deadline.
            heads = {
                "stream": b"\x00",
                "rpc": b"{",
                "http": b"GET /v1/self HTTP/1.1\r\nHost: x\r\nX-Slow: ",
            }
            closed: dict[str, list[float]] = {label: [] for label in ports}
            await asyncio.gather(
                *(
                    _slow_writer(p, heads[label], closed[label])
                    for label, p in ports.items()
                    for _ in range(SLOW)
                )
            )
            for label in ports:
                # rpc serves 32 per peer host (the rest are busy at once): all closed.
                assert len(closed[label]) == SLOW, (label, len(closed[label]))
                assert max(closed[label]) < 3 * IDLE_TIMEOUT + 2, (label, max(closed[label]))
            # 3. Oversized frames: refused without reading them whole.
            frames = {
                "stream": struct.pack(">I", 0xFFFFFFF0) + b"x" * 1024,
                "rpc": b"a" * (300 * 1024),
                "http": b"POST /v1/facts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b"\r\nContent-Length: 1048576\r\n\r\n" + b" " * (300 * 1024),
            }
            answers = {
                label: await asyncio.gather(
                    *(_oversized(p, frames[label]) for _ in range(OVERSIZED))
                )
                for label, p in ports.items()
            }
            assert all(b"413" in a for a in answers["http"]), answers["http"][:1]
            assert all(b"too long" in a for a in answers["rpc"]), answers["rpc"][:1]
            runtime = target.client().info()["runtime"]
            assert runtime["stream_oversized"] == OVERSIZED
            assert runtime["control_oversized"] == OVERSIZED
            assert runtime["http_oversized"] == OVERSIZED
            assert runtime["stream_busy"] > 0 and runtime["http_busy"] > 0
            assert runtime["control_busy"] > 0
            assert runtime["stream_timeout"] > 0 and runtime["http_timeout"] > 0
        finally:
            sampler.stop.set()
            sampler.join(10)
        # 4. Everything given back.
        wait_until(released, TIMEOUT, interval=0.5, what="slots released")
        wait_until(
            lambda: _fds(target.pid) <= baseline + 4, TIMEOUT, what=f"fds back to {baseline}"
        )
        assert target.running(), target.log_tail()
        assert not sampler.failures, sampler.failures[:3]
        assert sampler.samples > 10
        assert sampler.slowest < 1.0, sampler.slowest
        assert sampler.rss_max < RSS_LIMIT_KIB, sampler.rss_max
        assert sampler.fds_max < 1024
        assert "too many open files" not in target.log.read_text().lower()
        print(
            f"\nflood figures: RSS max {sampler.rss_max / 1024:.1f} MiB, fds baseline "
            f"{baseline} max {sampler.fds_max} after {_fds(target.pid)}, info slowest "
            f"{sampler.slowest * 1000:.0f} ms over {sampler.samples} samples, caps {caps}"
        )
        # The peer never doubted the target.
        states = {m["name"]: m["state"] for m in peer.members()}
        assert states["target"] == "alive"
        doubts = [
            line
            for line in monitor.lines
            if '"target"' in line and ("suspect" in line or "failed" in line)
        ]
        assert not doubts, doubts[:3]
        assert json.loads(monitor.lines[0])  # the monitor did run
