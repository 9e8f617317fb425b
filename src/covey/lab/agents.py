"""``covey agent`` processes on lab hosts: start, kill, stop, pause, restart, watch.

Each agent runs inside its host's namespace (``ip netns exec NS python -m covey agent``,
which execs in place: the PID we hold is the agent's own), binds ``<host addr>:7946``, sends
beacons through ``eth0`` only, and keeps its data directory (node id across restarts), log
and control socket under the cluster's work directory. The control socket is a file, so
the test process reaches every agent from its own namespace without any network traffic.

A :class:`Recorder` follows every agent's event stream (what ``covey monitor --json``
prints) and appends each event, stamped with the reading time, to a per-agent list (and a
JSON-lines file), so a test or the chaos run can reason about every transition any agent
saw. When an agent is restarted its stream is re-attached.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from covey.core.fernet import generate_key
from covey.runtime.client import ClientError, ControlClient
from covey.runtime.control import LineCodec
from covey.runtime.localcluster import wait_until

from .netns import Host, Lab

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
        """``ADDR:PORT`` of the agent."""
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


class Recorder:
    """Every agent's event stream, kept per agent with the time each event was read.

    One thread per agent holds the control-socket ``monitor`` stream open: the very stream
    ``covey monitor --json`` prints, read in-process so that a recording never depends on
    a second interpreter starting (two cores, many agents) and can be stopped by closing
    its socket. Events also go to ``<workdir>/<agent>.events.jsonl``. A stream that ends
    while its agent still runs is counted in :attr:`gaps` (a recording with gaps cannot
    prove an absence).
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.gaps: list[tuple[str, float, str]] = []
        self._socks: dict[str, socket.socket] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def watch(self, agent: LabAgent) -> None:
        """(Re)attach to ``agent``'s event stream (call once the agent answers)."""
        self._close_sock(agent.name)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5.0)
        try:
            sock.connect(str(agent.control))
            sock.sendall(LineCodec().encode({"op": "monitor"}))
            fh = sock.makefile("rb")
            first = json.loads(fh.readline() or b"null")
            if not isinstance(first, dict) or not first.get("ok"):
                raise ClientError(f"monitor refused: {first!r}")
        except (OSError, ValueError, ClientError) as exc:
            sock.close()
            raise RuntimeError(f"cannot monitor {agent.name}: {exc}") from None
        sock.settimeout(None)
        self._socks[agent.name] = sock
        out = self.workdir / f"{agent.name}.events.jsonl"
        threading.Thread(target=self._read, args=(agent, sock, fh, out), daemon=True).start()

    def _read(self, agent: LabAgent, sock: socket.socket, fh: IO[bytes], out: Path) -> None:
        with out.open("a") as log:
            try:
                for raw in fh:
                    try:
                        event = json.loads(raw)
                    except ValueError:
                        continue
                    if not isinstance(event, dict):
                        continue
                    event["seen"] = time.time()
                    log.write(json.dumps(event, sort_keys=True) + "\n")
                    log.flush()
                    with self._changed:
                        self.events.setdefault(agent.name, []).append(event)
                        self._changed.notify_all()
            except (OSError, ValueError):
                pass
        # The stream ended: fine if the agent stopped or we closed it, a gap otherwise. A
        # killed process closes its sockets before it can be reaped: give it a moment.
        if agent.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                agent.proc.wait(5.0)
        if self._socks.get(agent.name) is sock and agent.running():
            with self._lock:
                self.gaps.append((agent.name, time.time(), "monitor stream ended"))

    def member_events(
        self, observer: str, kind: str, subject: str | None = None, since: float = 0.0
    ) -> list[dict[str, Any]]:
        """``observer``'s events of ``kind`` (``member-failed``...) about ``subject``."""
        with self._lock:
            evs = list(self.events.get(observer, ()))
        return [
            e
            for e in evs
            if e.get("event") == kind
            and e["seen"] >= since
            and (subject is None or e.get("member", {}).get("name") == subject)
        ]

    def wait_for(
        self, match: Callable[[str, dict[str, Any]], bool], timeout: float, since: float = 0.0
    ) -> tuple[str, dict[str, Any]] | None:
        """Block until some agent records an event (seen at or after ``since``) for which
        ``match(observer, event)`` holds; return it, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout

        def find() -> tuple[str, dict[str, Any]] | None:
            for name, evs in self.events.items():
                for e in evs:
                    if e["seen"] >= since and match(name, e):
                        return name, e
            return None

        with self._changed:
            while True:
                hit = find()
                left = deadline - time.monotonic()
                if hit is not None or left <= 0:
                    return hit
                self._changed.wait(left)

    def _close_sock(self, name: str) -> None:
        sock = self._socks.pop(name, None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        """Close every stream."""
        for name in list(self._socks):
            self._close_sock(name)


class LabCluster:
    """One covey agent per lab host, with a shared key, and optional event recording.

    Args:
        lab: the hosts.
        workdir: keys, data dirs, logs, sockets (default: new temp dir, removed on close).
        agent_args: extra arguments for every agent.
        record: run a :class:`Recorder` on every agent.
        name: the cluster name.
    """

    def __init__(
        self,
        lab: Lab,
        *,
        workdir: Path | None = None,
        agent_args: Sequence[str] = (),
        record: bool = False,
        name: str = "lab",
    ) -> None:
        self.lab = lab
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
