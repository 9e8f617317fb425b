"""``covey agent`` processes on lab hosts: start, kill, stop, pause, restart, watch.

Each agent runs inside its host's namespace (``ip netns exec NS python -m covey agent``,
which execs in place: the PID we hold is the agent's own), binds ``<host addr>:7946``, sends
beacons through ``eth0`` only, and keeps its data directory (node id across restarts), log
and control socket under the cluster's work directory. The control socket is a file, so
the test process reaches every agent from its own namespace without any network traffic.

A :class:`~covey.lab.recorder.Recorder` (its own module) follows every agent's event
stream; the cluster re-attaches it when an agent is restarted.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from covey.core.crypto.fernet import generate_key
from covey.lab.netns import Host, Lab
from covey.lab.recorder import Recorder
from covey.runtime.control.client import ClientError, ControlClient
from covey.runtime.localcluster import wait_until

#: The agents' port on every lab host (one agent per host, so one port for all).
PORT = 7946

_PR_SET_PDEATHSIG = 1
_libc: Any = None
with contextlib.suppress(OSError):
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _die_with_parent() -> None:  # between fork and exec, in the child
    # Survives the exec of `ip netns exec` and its own exec of the agent: if the test
    # process is killed outright, its agents go with it.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn_in(host: Host, argv: Sequence[str], log: IO[bytes] | int) -> subprocess.Popen[bytes]:
    """Start ``argv`` inside ``host``'s namespace, output to ``log`` (a file or PIPE)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    return subprocess.Popen(
        host.argv(*argv),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=_die_with_parent,
    )


class LabAgent:
    """One covey agent on one lab host (may be restarted; same name, id and address)."""

    def __init__(self, cluster: LabCluster, host: Host, extra: Sequence[str]) -> None:
        self.cluster = cluster
        self.host = host
        self.name = host.name
        self.extra = list(extra)
        self.dir = cluster.workdir / host.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.control = self.dir / "covey.sock"
        self.log = self.dir / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.starts = 0

    @property
    def address(self) -> str:
        """``ADDR:PORT`` of the agent (``[ADDR6]:PORT`` in an IPv6 cluster)."""
        if self.cluster.ipv6 and self.host.addr6 is not None:
            return f"[{self.host.addr6}]:{PORT}"
        return f"{self.host.addr}:{PORT}"

    @property
    def pid(self) -> int | None:
        """PID of the running process, if any."""
        return self.proc.pid if self.proc is not None else None

    def argv(self) -> list[str]:
        """The agent command line (without the namespace wrapper)."""
        return [
            sys.executable,
            "-m",
            "covey",
            "agent",
            "--name",
            self.name,
            "--cluster",
            self.cluster.name,
            "--bind",
            self.address,
            "--interface",
            self.host.dev,
            "--key-file",
            str(self.cluster.key_file),
            "--data-dir",
            str(self.dir),
            "--control",
            str(self.control),
            *self.cluster.agent_args,
            *self.extra,
        ]

    def start(self) -> None:
        """Start the process (it must not be running)."""
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        with contextlib.suppress(FileNotFoundError):
            self.control.unlink()
        with self.log.open("ab") as fh:
            fh.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            fh.flush()
            self.proc = spawn_in(self.host, self.argv(), fh)
        self.paused = False
        self.starts += 1
        self.cluster.on_start(self)

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout: float = 3.0) -> ControlClient:
        """A control-socket client."""
        return ControlClient(self.control, timeout=timeout)

    def ready(self) -> bool:
        """True once the control socket answers; raises if the process died."""
        if not self.running():
            raise RuntimeError(f"agent {self.name} exited:\n{self.log_tail()}")
        try:
            self.client(timeout=1.0).self_member()
        except ClientError:
            return False
        return True

    def states(self) -> dict[str, str]:
        """name → state of every member this agent knows (raises ClientError)."""
        return {m["name"]: m["state"] for m in self.client().members()}

    def _signal(self, signum: int) -> None:
        if self.proc is not None and self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        """kill -9 (crash), then reap."""
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
        self.paused = False

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful leave); SIGKILL after ``timeout``. Returns the exit status."""
        if self.proc is None:
            return None
        if self.paused:
            self.resume()
        self._signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def pause(self) -> None:
        """SIGSTOP: the process stays but does nothing (a long GC pause, a frozen VM)."""
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT."""
        self._signal(signal.SIGCONT)
        self.paused = False

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the agent's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class LabCluster:
    """One covey agent per lab host, with a shared key, and optional event recording.

    Args:
        lab: the hosts.
        workdir: keys, data dirs, logs, sockets (default: new temp dir, removed on close).
        agent_args: extra arguments for every agent.
        record: run a :class:`Recorder` on every agent.
        name: the cluster name.
        ipv6: agents bind their host's IPv6 address (the lab must have been made with
            ``ipv6=True``).
    """

    def __init__(
        self,
        lab: Lab,
        *,
        workdir: Path | None = None,
        agent_args: Sequence[str] = (),
        record: bool = False,
        name: str = "lab",
        ipv6: bool = False,
    ) -> None:
        self.lab = lab
        self.ipv6 = ipv6
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="cvylab-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.agent_args = list(agent_args)
        self.key_file = self.workdir / "cluster.key"
        self.key_file.write_bytes(generate_key() + b"\n")
        self.key_file.chmod(0o600)
        self.agents: dict[str, LabAgent] = {}
        self.recorder = Recorder(self.workdir) if record else None
        self._await_watch: set[str] = set()

    def add(self, host: Host, extra: Sequence[str] = (), *, start: bool = True) -> LabAgent:
        """An agent on ``host`` (started unless ``start`` is False; not awaited)."""
        agent = LabAgent(self, host, extra)
        self.agents[agent.name] = agent
        if start:
            agent.start()
        return agent

    def start_all(
        self, extra: Sequence[str] = (), *, hosts: Sequence[Host] | None = None, timeout: float = 60
    ) -> list[LabAgent]:
        """One agent on every host (or ``hosts``), all started, then all awaited."""
        started = [self.add(h, extra) for h in (hosts if hosts is not None else self.lab.hosts)]
        for a in started:
            self.wait_ready(a, timeout)
        return started

    def on_start(self, agent: LabAgent) -> None:
        """Called by an agent that (re)started: its monitor is (re)attached once ready."""
        self._await_watch.add(agent.name)

    def wait_ready(self, agent: LabAgent, timeout: float = 60) -> None:
        """Wait until ``agent`` answers (and attach its monitor)."""
        wait_until(agent.ready, timeout, what=f"agent {agent.name} to answer")
        if self.recorder is not None and agent.name in self._await_watch:
            self.recorder.watch(agent)
        self._await_watch.discard(agent.name)

    def restart(self, agent: LabAgent, timeout: float = 60) -> None:
        """Start a stopped or killed agent again and wait until it answers."""
        agent.start()
        self.wait_ready(agent, timeout)

    def views(self, names: Sequence[str] | None = None) -> dict[str, dict[str, str] | None]:
        """Each agent's (name → state) view, None where it does not answer."""
        out: dict[str, dict[str, str] | None] = {}
        for a in self.agents.values():
            if names is not None and a.name not in names:
                continue
            if not a.running() or a.paused:
                out[a.name] = None
                continue
            try:
                out[a.name] = a.states()
            except ClientError:
                out[a.name] = None
        return out

    def converged(self, names: Sequence[str]) -> bool:
        """True when every agent of ``names`` answers and sees exactly ``names`` alive."""
        want = set(names)
        for view in self.views(names).values():
            if view is None or {n for n, s in view.items() if s == "alive"} != want:
                return False
        return True

    def sees(self, observer: str, subject: str, state: str) -> bool:
        """True when ``observer`` sees ``subject`` in ``state``."""
        view = self.views([observer]).get(observer)
        return view is not None and view.get(subject) == state

    def close(self) -> None:
        """Stop every agent (SIGTERM, then SIGKILL) and every monitor, by PID."""
        if self.recorder is not None:
            self.recorder.close()
        for a in self.agents.values():
            if a.running():
                a.resume()
                a._signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for a in self.agents.values():
            if a.proc is None:
                continue
            try:
                a.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                a.kill()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LabCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
