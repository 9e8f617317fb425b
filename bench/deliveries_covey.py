"""covey side of ``deliveries_bench.py``: agents, a redis-server, and the delivery driver.

* :class:`RedisProcess`: one ``redis-server`` on a free 127.0.0.1 port, AOF on every write
  (``appendfsync always``, what the Redis store's docstring asks for), no RDB snapshots,
  its data in the run's temporary directory; stopped by PID.
* :class:`CoveyAgents`: N ``covey agent`` processes of this checkout (``python -m covey``
  with ``PYTHONPATH`` set to its ``src``), each on a free 127.0.0.1 port, discovery
  multicast on loopback (``--interface 127.0.0.1``, a free group port) and ``--join`` to
  the seed, Fernet on, ``--data-dir`` each (the SQLite store) or ``--scheduler`` (one
  shared Redis). No ``--delivery-handler``: receivers acknowledge with an empty result,
  so what is measured is covey's machinery, not a shell.
* :class:`OwnerLink`: the driver's two connections to one owner's control socket: one
  that pipelines ``deliver_create`` requests (answers come back in request order, so
  answer ``i`` is request ``i``'s id) and one ``{"op": "monitor"}`` stream whose
  ``delivery_complete`` / ``delivery_failed`` lines are timestamped when read.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from agent_covey import control_request
from agent_procs import ProcessRegistry, free_ports

from covey.core.crypto.fernet import generate_key

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


#: Seconds one control request may take (an owner of a saturated cluster answers late).
CONTROL_TIMEOUT = 10.0


def wait_for(check: Callable[[], bool], deadline: float, interval: float = 0.05) -> bool:
    """Call ``check`` until it holds or ``deadline`` (time.time()) passes."""
    while time.time() < deadline:
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            if check():
                return True
        time.sleep(interval)
    return False


class RedisProcess:
    """One redis-server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, reg: ProcessRegistry, workdir: str, fsync: str = "always") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.port = free_ports(1)[0]
        self.dir = workdir
        self.fsync = fsync
        argv = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", fsync,
            "--dir", workdir,
            "--protected-mode", "yes",
        ]  # fmt: skip
        self.log = open(os.path.join(workdir, "redis.log"), "wb")  # noqa: SIM115
        self.proc = reg.spawn(argv, stdout=self.log, cwd=workdir)
        self.reg = reg

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def wait_ready(self, deadline: float) -> None:
        if not wait_for(lambda: self.proc.poll() is None and self.ping(), deadline):
            raise RuntimeError(f"redis-server on port {self.port} did not answer PING")

    def close(self) -> None:
        self.reg.stop(self.proc, grace=5.0)
        self.log.close()


class CoveyAgents:
    """N covey agents on loopback; agent 0 is the seed the others ``--join``."""

    def __init__(
        self,
        reg: ProcessRegistry,
        workdir: str,
        n: int,
        *,
        scheduler: str | None = None,
        python: str,
    ) -> None:
        self.reg = reg
        self.dir = workdir
        self.scheduler = scheduler
        self.python = python
        self.cluster = f"dbench-{os.getpid()}-{os.urandom(3).hex()}"
        self.names: list[str] = []
        self.socks: list[str] = []
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []
        self.mcast_port = free_ports(1)[0]
        self.key_file = os.path.join(workdir, "cluster.key")
        with open(self.key_file, "wb") as fh:
            fh.write(generate_key() + b"\n")
        os.chmod(self.key_file, 0o600)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
        self.env["PYTHONPATH"] = SRC + os.pathsep + self.env.get("PYTHONPATH", "")
        for _ in range(n):
            self.spawn()

    def spawn(self) -> int:
        """Start one more agent (joining the seed); returns its index."""
        i = len(self.procs)
        name = f"d{i}"
        port = free_ports(1, avoid=[*self.ports, self.mcast_port])[0]
        sock = os.path.join(self.dir, f"{name}.sock")
        argv = [
            self.python, "-m", "covey", "agent",
            "--name", name,
            "--cluster", self.cluster,
            "--bind", f"127.0.0.1:{port}",
            "--interface", "127.0.0.1",
            "--multicast", f"239.192.77.1:{self.mcast_port}",
            "--key-file", self.key_file,
            "--control", sock,
            "--data-dir", os.path.join(self.dir, f"data-{name}"),
            "--log-level", "warning",
        ]  # fmt: skip
        if self.scheduler is not None:
            argv += ["--scheduler", self.scheduler]
        if i > 0:
            argv += ["--join", f"127.0.0.1:{self.ports[0]}"]
        log = open(os.path.join(self.dir, f"{name}.log"), "wb")  # noqa: SIM115
        proc = self.reg.spawn(argv, stdout=log, cwd=self.dir, env=self.env)
        self.names.append(name)
        self.socks.append(sock)
        self.ports.append(port)
        self.procs.append(proc)
        self.logs.append(log)
        return i

    def dead(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p.poll() is not None]

    def log_tail(self, i: int, lines: int = 15) -> str:
        try:
            with open(os.path.join(self.dir, f"{self.names[i]}.log"), errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return ""

    def wait_converged(self, deadline: float) -> float:
        """Wait until every agent lists every agent alive; returns when (time.time())."""
        want = set(self.names)

        def full(i: int) -> bool:
            members = control_request(self.socks[i], {"op": "members"}, CONTROL_TIMEOUT)
            states = {m["name"]: m["state"] for m in members}
            return all(states.get(n) == "alive" for n in want)

        for i in range(len(self.procs)):
            if not wait_for(lambda i=i: full(i) or bool(self.dead()), deadline):
                raise RuntimeError(f"covey agent {self.names[i]} did not see all members alive")
            if self.dead():
                i = self.dead()[0]
                raise RuntimeError(f"covey agent {self.names[i]} exited:\n{self.log_tail(i)}")
        return time.time()

    def info(self, i: int) -> dict[str, Any]:
        return dict(control_request(self.socks[i], {"op": "info"}, CONTROL_TIMEOUT))

    def close(self) -> None:
        for p in self.procs:
            self.reg.stop(p, grace=3.0)
        for fh in self.logs:
            fh.close()


class OwnerLink:
    """Pipelined creates and a completion stream on one owner (see the module docstring).

    ``on_end(kind, id_hex, t_read)`` is called from the monitor thread for every
    ``delivery_complete`` and ``delivery_failed`` line; ``on_answer(tag, t_sent, answer,
    t_read)`` from the answer thread, in request order, with the ``tag`` given to
    :meth:`send` and the time just before that request was written.
    """

    def __init__(
        self,
        path: str,
        on_end: Callable[[str, str, float], None],
        on_answer: Callable[[Any, float, dict[str, Any], float], None],
    ) -> None:
        self.path = path
        self.on_end = on_end
        self.on_answer = on_answer
        self.mon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.mon.settimeout(10.0)
        self.mon.connect(path)
        self.mon.sendall(b'{"op":"monitor"}\n')
        self._mon_file = self.mon.makefile("rb")
        first = json.loads(self._mon_file.readline() or b"{}")
        if not first.get("ok"):
            raise RuntimeError(f"monitor refused: {first}")
        self.mon.settimeout(None)
        self.req = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.req.settimeout(10.0)
        self.req.connect(path)
        self.req.settimeout(None)
        self._req_file = self.req.makefile("rb")
        self._tags: collections.deque[tuple[Any, float]] = collections.deque()
        self._send_lock = threading.Lock()
        self.monitor_lines = 0
        self.closed = False
        self._threads = [
            threading.Thread(target=self._read_monitor, daemon=True),
            threading.Thread(target=self._read_answers, daemon=True),
        ]
        for th in self._threads:
            th.start()

    def send(self, request: bytes, tag: Any) -> float:
        """Write one request line; returns the time just before it was written."""
        with self._send_lock:
            t = time.time()
            self._tags.append((tag, t))
            self.req.sendall(request)
        return t

    def _read_monitor(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in iter(self._mon_file.readline, b""):
                t = time.time()
                self.monitor_lines += 1
                # Only the ends are parsed: receipts and stage events are most of the lines.
                if b'"delivery_complete"' in line:
                    self.on_end("complete", json.loads(line)["id"], t)
                elif b'"delivery_failed"' in line:
                    self.on_end("failed", json.loads(line)["id"], t)

    def _read_answers(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in iter(self._req_file.readline, b""):
                t = time.time()
                tag, t_sent = self._tags.popleft()
                self.on_answer(tag, t_sent, json.loads(line), t)

    def close(self) -> None:
        self.closed = True
        for s in (self.mon, self.req):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        for th in self._threads:
            th.join(timeout=2.0)
