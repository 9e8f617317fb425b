"""A real ``redis-server`` for tests: loopback only, AOF on every write, stopped by PID."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

#: Why tests that need Redis skip when it is missing.
MISSING = "redis-server not installed (.ci/sysdeps.sh installs it)"
#: How long a start may take (it replays the AOF first) before the test fails.
START_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One ``redis-server`` on 127.0.0.1 with its data (AOF, ``appendfsync always``) in
    ``directory``; :meth:`restart` keeps the port and the data."""

    def __init__(self, directory: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError(MISSING)
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A plain client on the server, to look at keys directly (timeouts of 2 s)."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=2.0, socket_connect_timeout=2.0
        )

    def start(self) -> None:
        """Start the server and wait (bounded) until it answers PING."""
        assert self.proc is None, "already running"
        argv = [
            str(self.binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--dir", str(self.directory),
            "--protected-mode", "yes",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        try:
            end = time.monotonic() + START_TIMEOUT
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    break
                try:
                    if client.ping():
                        return
                except redis.RedisError:  # refused, or still loading the AOF
                    pass
                time.sleep(0.02)  # a poll interval, not a wait for an outcome
        finally:
            client.close()
        tail = self.log.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING:\n{tail}")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 10 s); idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def kill9(self) -> None:
        """Kill it with SIGKILL (no shutdown, no final AOF rewrite) and reap it."""
        proc, self.proc = self.proc, None
        assert proc is not None, "not running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def restart(self) -> None:
        """Start it again on the same port with the same directory (AOF replayed)."""
        self.stop()
        self.start()
