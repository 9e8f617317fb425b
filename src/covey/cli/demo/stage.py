"""The demo's stage: a collector and a cluster of agent processes on loopback.

:class:`Stage` owns everything the demo starts — the work directory (key, data
directories, version files, logs, sockets), the collector process and the agents — and
:meth:`Stage.close` stops all of it by PID and removes the directory, whatever step
failed. Every wait is bounded (:data:`STEP_TIMEOUT`).

The agents run with faster timings than the defaults (probe every 0.5 s) so that the
demo takes seconds, with the election on (``--expected-votes``), a fence command that
appends to one shared file (so the demo can say who fenced whom), a version file each
(so it can upgrade a node by rewriting it) and a delivery handler that answers
``ok-NAME``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from covey.runtime.control.client import ClientError
from covey.runtime.localcluster import AgentProcess, LocalCluster

#: Longest wait of any one condition in the demo.
STEP_TIMEOUT = 30.0
#: Faster-than-default timings so the whole demo takes seconds.
DEMO_TIMINGS = ("--probe-interval", "0.5", "--probe-timeout", "0.2", "--gossip-interval", "0.1")
#: The version every node starts with, and the one it is upgraded to.
OLD_VERSION, NEW_VERSION = "1.0", "2.0"

T = TypeVar("T")


class StepFailed(Exception):
    """A condition of the demo did not hold in time (the message says which)."""


def wait_for(check: Callable[[], T | None], what: str, timeout: float = STEP_TIMEOUT) -> T:
    """Poll ``check`` every 50 ms until it returns something truthy; raise
    :class:`StepFailed` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = check()
        except (ClientError, OSError, ValueError, KeyError):
            got = None  # an agent restarting or not answering yet: ask again
        if got:
            return got
        if time.monotonic() >= deadline:
            raise StepFailed(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


class Stage:
    """The collector and agents of one demo run (see the module docstring)."""

    def __init__(self, nodes: int) -> None:
        self.count = nodes
        self.cluster = LocalCluster(cluster="demo", agent_args=DEMO_TIMINGS)
        self.workdir = self.cluster.workdir
        self.fence_log = self.workdir / "fenced.log"
        self.collector: str | None = None
        self.collector_pid: int | None = None
        self.agents: list[AgentProcess] = []
        self._started: list[AgentProcess] = []
        self._collector_pid0: int | None = None

    # ------------------------------------------------------------------ collector

    def covey(self, *args: str, timeout: float = STEP_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run the ``covey`` command as a user would (one line of stderr on failure)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
        cmd = [sys.executable, "-m", "covey", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)

    def start_collector(self) -> str:
        """``addr=$(covey collector ...)``: start it in the background; its address."""
        data = self.workdir / "collector"
        out = self.covey(
            "collector", "--key-file", str(self.cluster.key_file), "--data", str(data), "--json"
        )
        if out.returncode != 0:
            raise StepFailed(f"covey collector: {out.stderr.strip()}")
        started = json.loads(out.stdout)
        self.collector, self.collector_pid = started["address"], started["pid"]
        self._collector_pid0 = self.collector_pid
        return str(started["address"])

    def ask_collector(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``covey collector COMMAND ADDR ...`` sealed with the cluster key."""
        assert self.collector is not None
        key = ("--key-file", str(self.cluster.key_file))
        return self.covey("collector", *key, command, self.collector, *args)

    def stop_collector(self) -> None:
        """``covey collector stop ADDR``; SIGKILL by PID if it is still there after."""
        if self.collector is None:
            return
        self.ask_collector("stop")
        self.collector = None
        pid, self.collector_pid = self.collector_pid, None
        if pid is not None and _wait_gone(pid, 5.0) is False:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # --------------------------------------------------------------------- agents

    def agent_args(self, name: str) -> list[str]:
        """The flags of agent ``name``: election, fencing, version, deliveries, traces."""
        version = self.workdir / f"{name}.version"
        if not version.exists():
            version.write_text(OLD_VERSION + "\n")
        fence = (
            f'echo "$COVEY_LEADER fenced $COVEY_FENCE_NODE (term $COVEY_TERM)" '
            f">> {shlex.quote(str(self.fence_log))}"
        )
        args = ["--expected-votes", str(self.count), "--fence-command", fence]
        args += ["--version-file", str(version), "--data-dir", str(self.workdir / name)]
        args += ["--delivery-handler", f"cat >/dev/null; echo ok-{name}"]
        if self.collector is not None:
            args += ["--collector", self.collector]
        return args

    def start_agents(self) -> list[AgentProcess]:
        """Launch every agent at once, then wait until each answers."""
        names = [f"n{i + 1}" for i in range(self.count)]
        started = [self.cluster.spawn(n, extra=self.agent_args(n), wait=False) for n in names]
        self._started += started
        for agent in started:
            self.cluster.wait_ready(agent, STEP_TIMEOUT)
        self.agents = started
        return started

    def restart(self, agent: AgentProcess) -> AgentProcess:
        """Start ``agent`` again under its name (same data directory: same node id)."""
        again = self.cluster.spawn(agent.name, extra=self.agent_args(agent.name), wait=False)
        self._started.append(again)
        self.agents = [again if a.name == agent.name else a for a in self.agents]
        return again

    def restart_new(self) -> AgentProcess:
        """Start one more agent, named after the last (``n6`` after ``n5``)."""
        name = f"n{len(self.agents) + 1}"
        agent = self.cluster.spawn(name, extra=self.agent_args(name), wait=False)
        self._started.append(agent)
        self.agents.append(agent)
        return agent

    def live(self) -> list[AgentProcess]:
        """Agents whose process runs and is not paused by the demo."""
        return [a for a in self.agents if a.running()]

    def by_name(self, name: str) -> AgentProcess:
        """The agent called ``name``."""
        return next(a for a in self.agents if a.name == name)

    def all_see(self, observers: list[AgentProcess], states: dict[str, str]) -> bool:
        """True when every observer sees each named member in its state."""
        for o in observers:
            seen = o.states()
            if any(seen.get(n) != s for n, s in states.items()):
                return False
        return True

    def request(self, agent: AgentProcess, op: str, **args: Any) -> Any:
        """One control request to ``agent``."""
        return agent.client(timeout=STEP_TIMEOUT).request(op, **args)

    def set_version(self, agent: AgentProcess, version: str) -> None:
        """Upgrade a node: rewrite its version file (the agent re-reads it)."""
        (self.workdir / f"{agent.name}.version").write_text(version + "\n")

    def fences(self) -> list[str]:
        """The lines the fence commands wrote, oldest first."""
        if not self.fence_log.exists():
            return []
        return self.fence_log.read_text().splitlines()

    def pids(self) -> list[int]:
        """Every process the demo started: the agents (restarts too) and the collector."""
        agents = sorted({a.pid for a in self._started})
        return agents + ([self._collector_pid0] if self._collector_pid0 else [])

    # -------------------------------------------------------------------- cleanup

    def close(self) -> list[int]:
        """Stop every agent and the collector by PID, remove the work directory; the
        PIDs of anything still running after that (should be none)."""
        for a in self.cluster.agents.values():
            a.signal(signal.SIGCONT)  # a paused agent must be able to exit
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self.stop_collector()
        self.cluster.stop_all()
        leftover = [a.pid for a in self.cluster.agents.values() if a.running()]
        self.cluster.close()
        return leftover


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` is gone (reaped by whoever its parent is)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie waiting for its reaper has exited: the
    collector is a daemon, reparented, and where no init reaps it, it stays one)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


__all__ = ["DEMO_TIMINGS", "STEP_TIMEOUT", "Stage", "StepFailed", "pid_alive", "wait_for"]
