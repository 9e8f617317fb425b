"""The lab's recorder: every agent's event stream, stamped with the time it was read.

A :class:`Recorder` follows every agent's event stream (what ``covey monitor --json``
prints) and appends each event, stamped with the reading time, to a per-agent list (and a
JSON-lines file), so a test or the chaos run can reason about every transition any agent
saw. When an agent is restarted its stream is re-attached.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from covey.runtime.control.client import ClientError
from covey.runtime.control.server import LineCodec

if TYPE_CHECKING:
    from covey.lab.agents import LabAgent


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
