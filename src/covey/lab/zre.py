"""Real pyre nodes beside covey agents, for the ZRE interop tests and benchmark.

:class:`PyreNode` runs :mod:`covey.lab.pyre_peer` (a real ``zeromq-pyre`` node) inside a
lab host's namespace, reads its events (one JSON line each, stamped with the wall time
pyre handed them over) and sends it commands. pyre picks its beacon interface itself and
cannot be confined to loopback in the caller's namespace: run it only on a
:class:`~covey.lab.netns.LoopbackLab` host (or another namespace of a lab). It is
stopped by its PID; the namespace's deletion is the backstop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from covey.lab.agents import _die_with_parent
from covey.lab.netns import Host


class PyreNode:
    """One pyre node on ``host`` (started at once; see the module docstring).

    Args:
        host: where it runs. name: its ZRE name. groups: the groups it JOINs.
        expired: pyre's peer expiry in seconds (None: pyre's own 30 s).
    """

    def __init__(
        self,
        host: Host,
        name: str,
        groups: Sequence[str] = (),
        *,
        expired: int | None = None,
    ) -> None:
        self.name = name
        argv = [sys.executable, "-m", "covey.lab.pyre_peer", name]
        for g in groups:
            argv += ["--group", g]
        if expired is not None:
            argv += ["--expired", str(expired)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
        self.started = time.time()
        self.proc = subprocess.Popen(
            host.argv(*argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,
        )
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.wait_for(lambda e: e["event"] == "READY", 30.0)
        if ready is None:
            self.kill()
            raise RuntimeError(f"pyre node {name} did not start")
        self.uuid: str = ready["uuid"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        """The first event for which ``match`` holds, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for e in self.events:
                    if match(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def command(self, line: str) -> None:
        """Send one command line (``shout GROUP TEXT``, ``whisper UUID TEXT``, ``stop``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 10.0) -> None:
        """pyre's own stop (its port-0 beacon), then wait; SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.command("stop")
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL by PID (a crash), then reap."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


__all__ = ["PyreNode"]
