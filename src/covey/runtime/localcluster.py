"""A cluster of real ``covey agent`` processes on loopback, for the demo, tests and benchmarks.

Every agent binds a free 127.0.0.1 port, sends beacons only through the loopback interface
(``--interface 127.0.0.1``) to a shared multicast group port, and keeps its control socket
and log in one temporary directory. Processes are always stopped by their PID.

With ``host="::1"`` the agents bind IPv6 loopback instead; loopback carries no IPv6
multicast, so they start with ``--no-multicast`` and find each other through the
``--join`` the caller passes.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from covey.core import format_address
from covey.core.crypto.fernet import generate_key
from covey.runtime.config.model import DEFAULT_GROUP
from covey.runtime.control.client import ClientError, ControlClient

T = TypeVar("T")


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on ``host`` right now.

    Chosen below the kernel's ephemeral range: a port that bind(0) hands out can be taken
    by any outgoing connection (the agents' own push-pulls) before the agent binds it,
    and the agent then fails with "Address already in use".
    """
    low = _ephemeral_low()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if low > 11000:
        for _ in range(200):
            port = random.randrange(10000, low)
            try:
                with socket.socket(family, socket.SOCK_STREAM) as tcp:
                    tcp.bind((host, port))
                    with socket.socket(family, socket.SOCK_DGRAM) as udp:
                        udp.bind((host, port))
            except OSError:
                continue
            return port
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise OSError("no free port found")


def wait_until(
    check: Callable[[], T], timeout: float, *, interval: float = 0.1, what: str = "condition"
) -> T:
    """Call ``check`` until it returns something truthy, or raise TimeoutError at ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except ClientError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"timed out after {timeout:.1f} s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)


class AgentProcess:
    """One ``covey agent`` child process."""

    def __init__(
        self,
        name: str,
        port: int,
        proc: subprocess.Popen[bytes],
        control: Path,
        log: Path,
        host: str = "127.0.0.1",
    ):
        self.name = name
        self.host = host
        self.port = port
        self.proc = proc
        self.control = control
        self.log = log

    @property
    def pid(self) -> int:
        """Process id."""
        return self.proc.pid

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` (``[::1]:PORT`` on IPv6)."""
        return format_address((self.host, self.port))

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc.poll() is None

    def client(self, timeout: float = 5.0) -> ControlClient:
        """A control client for this agent."""
        return ControlClient(self.control, timeout=timeout)

    def members(self) -> list[dict[str, Any]]:
        """The members this agent knows (raises ClientError when unreachable)."""
        return self.client().members()

    def states(self) -> dict[str, str]:
        """name → state of every member this agent knows."""
        return {m["name"]: m["state"] for m in self.members()}

    def signal(self, signum: int) -> None:
        """Send a signal to this process by PID (if it still runs)."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int | None:
        """Wait for the exit; returns the status or None on timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not exit in time. Returns the exit status."""
        self.signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.signal(signal.SIGKILL)
            code = self.proc.wait()
        return code

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the agent's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class LocalCluster:
    """Starts and stops ``covey agent`` processes that discover each other on loopback.

    Args:
        workdir: where keys, logs and control sockets go (default: a new temp directory,
            removed by :meth:`close`). Keep it short: unix socket paths are limited.
        cluster: the cluster name.
        group_port: the shared multicast port (default: a free one).
        agent_args: extra arguments for every agent (timings...).
        host: the loopback address every agent binds: ``127.0.0.1``, or ``::1`` (then
            without multicast: pass ``--join``).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        cluster: str = "demo",
        group_port: int | None = None,
        agent_args: Sequence[str] = (),
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="covey-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster = cluster
        self.group_port = group_port or free_port(host)
        self.agent_args = list(agent_args)
        self.key_file = self.new_key_file("cluster.key")
        self.agents: dict[str, AgentProcess] = {}

    def new_key_file(self, name: str) -> Path:
        """Write a file holding one fresh Fernet key."""
        path = self.workdir / name
        path.write_bytes(generate_key() + b"\n")
        path.chmod(0o600)
        return path

    def command(
        self,
        name: str,
        port: int,
        *,
        key_file: Path | None = None,
        cluster: str | None = None,
        extra: Sequence[str] = (),
        label: str | None = None,
    ) -> list[str]:
        """The argv that starts agent ``name`` on ``port`` (its control socket named
        after ``label``, default ``name``)."""
        return [
            sys.executable,
            "-m",
            "covey",
            "agent",
            "--name",
            name,
            "--cluster",
            cluster or self.cluster,
            "--bind",
            format_address((self.host, port)),
            *self._discovery_args(extra),
            "--key-file",
            str(key_file or self.key_file),
            "--control",
            str(self.workdir / f"{label or name}.sock"),
            *self.agent_args,
            *extra,
        ]

    def _discovery_args(self, extra: Sequence[str]) -> tuple[str, ...]:
        if "--no-multicast" in extra or "--multicast" in extra:
            return ("--interface", self.host)
        if ":" in self.host:
            return ("--no-multicast",)
        return ("--interface", self.host, "--multicast", f"{DEFAULT_GROUP}:{self.group_port}")

    def spawn(
        self,
        name: str,
        *,
        key_file: Path | None = None,
        cluster: str | None = None,
        extra: Sequence[str] = (),
        wait: bool = True,
        timeout: float = 30.0,
        label: str | None = None,
        port: int | None = None,
    ) -> AgentProcess:
        """Start one agent (on ``port``, default a free one); by default wait until its
        control socket answers.

        ``label`` (default ``name``) names its log, its control socket and its entry in
        :attr:`agents`: two agents may then be started under one ``--name``.
        """
        label = label or name
        port = port or free_port(self.host)
        log = self.workdir / f"{label}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                self.command(
                    name, port, key_file=key_file, cluster=cluster, extra=extra, label=label
                ),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
            )
        agent = AgentProcess(name, port, proc, self.workdir / f"{label}.sock", log, self.host)
        self.agents[label] = agent
        if wait:
            self.wait_ready(agent, timeout)
        return agent

    def wait_ready(self, agent: AgentProcess, timeout: float = 30.0) -> None:
        """Wait until ``agent`` answers on its control socket; raise if it exited."""

        def ready() -> bool:
            if not agent.running():
                raise RuntimeError(f"agent {agent.name} exited:\n{agent.log_tail()}")
            try:
                agent.client(timeout=1.0).self_member()
            except ClientError:
                return False
            return True

        wait_until(ready, timeout, what=f"agent {agent.name} to answer")

    def start(
        self, count: int, *, prefix: str = "node", timeout: float = 30.0
    ) -> list[AgentProcess]:
        """Start ``count`` agents (all spawned first, then awaited)."""
        started = [self.spawn(f"{prefix}{i + 1}", wait=False) for i in range(count)]
        for agent in started:
            self.wait_ready(agent, timeout)
        return started

    def running(self) -> list[AgentProcess]:
        """Agents whose process still runs."""
        return [a for a in self.agents.values() if a.running()]

    def converged(self, names: Sequence[str] | None = None) -> bool:
        """True when every running agent in ``names`` (default: all) sees exactly those alive."""
        want = set(names) if names is not None else {a.name for a in self.running()}
        for agent in self.running():
            if agent.name not in want:
                continue
            try:
                states = agent.states()
            except ClientError:
                return False
            alive = {n for n, s in states.items() if s == "alive"}
            if alive != want:
                return False
        return True

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every agent by PID: SIGTERM all, then SIGKILL any that lingers."""
        for agent in self.agents.values():
            agent.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for agent in self.agents.values():
            if agent.wait(max(0.1, deadline - time.monotonic())) is None:
                agent.signal(signal.SIGKILL)
                agent.proc.wait()

    def close(self) -> None:
        """Stop everything and remove the work directory if we made it."""
        self.stop_all()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
