"""covey side of ``agent_bench.py``: N ``covey agent`` processes on loopback.

Each agent runs as ``covey agent --name cI --cluster bench-XXXX --bind 127.0.0.1:PORT
--interface 127.0.0.1 --multicast 239.192.77.1:MPORT --key-file KEY --control SOCK``
(agents other than the seed add ``--join 127.0.0.1:SEEDPORT``). The discovery group port is
picked free per cluster, so concurrent covey runs on the machine do not hear each other's
beacons; ``--interface 127.0.0.1`` keeps every beacon on loopback.

Observation speaks the agent's control protocol directly (newline-delimited JSON on the unix
socket, exactly what ``covey monitor --json`` prints): one ``{"op": "monitor"}`` connection
per agent, read in a thread that timestamps each event line when read, plus one ``members``
snapshot right after subscribing so members learnt before the subscription are not missed.
An agent counts as serving when its "serving on" log line is read (sockets bound). The
fan-out sends ``{"op": "tags", "set": {...}}`` on the origin's socket; its start time is
taken just before the request is written, so CLI start-up does not count. The action
fan-out sends ``{"op": "action", "name": "bench", ...}`` the same way (what ``covey action``
sends) and times, per agent, the ``action`` event (``ActionDelivered``: its record is
written and its handler starts) on that agent's monitor stream; the request itself
answers once every member has answered (the action round trip).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from typing import Any

from agent_procs import EventHub, ProcessRegistry, free_ports, start_reader

_STATE_OF_EVENT = {
    "member-joined": None,  # use the member's state
    "member-recovered": None,
    "member-updated": None,
    "member-suspect": "suspect",
    "member-failed": "failed",
    "member-left": "left",
    "member-reaped": "reap",
}


def covey_version(covey: str) -> str:
    """The installed covey distribution's version and where its CLI is."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"covey {version('covey')} ({covey})"
    except PackageNotFoundError:
        return f"covey (not installed as a distribution; {covey})"


def control_request(path: str, request: dict[str, Any], timeout: float = 5.0) -> Any:
    """One request/answer on an agent's unix control socket; returns ``result``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps(request).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("control socket closed")
            buf += chunk
    answer = json.loads(buf.split(b"\n", 1)[0])
    if not answer.get("ok"):
        raise RuntimeError(f"covey control {request.get('op')}: {answer.get('error')}")
    return answer.get("result")


class CoveyCluster:
    """N covey agents; agent 0 is the seed every other agent is told to join."""

    system = "covey"

    def __init__(
        self,
        reg: ProcessRegistry,
        n: int,
        workdir: str,
        *,
        covey: str | list[str],
        deadline_s: float,
        env: dict[str, str] | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        from cryptography.fernet import Fernet

        self.reg = reg
        self.n = n
        self.dir = workdir
        self.covey = covey
        self.env = env
        self.extra = extra
        self.deadline_s = deadline_s
        self.cluster = f"bench-{os.getpid()}-{os.urandom(3).hex()}"
        self.names = [f"c{i}" for i in range(n)]
        self.hub = EventHub(self.names)
        ports = free_ports(n + 1)
        self.ports, self.mcast_port = ports[:n], ports[n]
        self.key_file = os.path.join(workdir, "covey.key")
        with open(self.key_file, "wb") as fh:
            fh.write(Fernet.generate_key() + b"\n")
        os.chmod(self.key_file, 0o600)
        self.socks = [os.path.join(workdir, f"c{i}.sock") for i in range(n)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ready_at: list[float | None] = [None] * n
        self.monitor_at: list[float | None] = [None] * n
        self.t_start = 0.0
        self.logs = [open(os.path.join(workdir, f"c{i}.log"), "w") for i in range(n)]  # noqa: SIM115
        self._monitors: list[socket.socket] = []
        self._closing = False

    # ----------------------------------------------------------------- lifecycle

    def _argv(self, i: int) -> list[str]:
        argv = [
            *([self.covey] if isinstance(self.covey, str) else self.covey),
            "agent",
            "--name",
            self.names[i],
            "--cluster",
            self.cluster,
            "--bind",
            f"127.0.0.1:{self.ports[i]}",
            "--interface",
            "127.0.0.1",
            "--multicast",
            f"239.192.77.1:{self.mcast_port}",
            "--key-file",
            self.key_file,
            "--control",
            self.socks[i],
            "--data-dir",
            os.path.join(self.dir, f"data-c{i}"),
        ]
        if i > 0:
            argv += ["--join", f"127.0.0.1:{self.ports[0]}"]
        return [*argv, *self.extra]

    def _spawn(self, i: int) -> None:
        proc = self.reg.spawn(self._argv(i), cwd=self.dir, env=self.env)
        self.procs.append(proc)
        assert proc.stdout is not None
        start_reader(proc.stdout, lambda t, ln, i=i: self._on_line(i, t, ln), log=self.logs[i])
        threading.Thread(target=self._monitor, args=(i,), daemon=True).start()

    def _on_line(self, i: int, t: float, line: str) -> None:
        # "... INFO agent cI (<id>) serving on 127.0.0.1:PORT, cluster ..." once sockets are up
        if " serving on " in line and self.ready_at[i] is None:
            self.ready_at[i] = t
            self.hub.record(i, t, "ready", self.names[i])

    def _record_member(self, i: int, t: float, kind: str | None, member: dict[str, Any]) -> None:
        name = str(member.get("name", ""))
        state = kind or str(member.get("state", ""))
        tags = member.get("tags") or {}
        self.hub.record(i, t, state, name, json.dumps(tags, sort_keys=True))
        if tags:
            self.hub.record(i, t, "tags", name, json.dumps(tags, sort_keys=True))

    def _monitor(self, i: int) -> None:
        """Subscribe to agent ``i``'s events; bounded retries until its socket serves."""
        deadline = time.time() + self.deadline_s
        s: socket.socket | None = None
        while time.time() < deadline and not self._closing:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(2.0)
                s.connect(self.socks[i])
                s.sendall(b'{"op": "monitor"}\n')
                f = s.makefile("rb")
                first = json.loads(f.readline() or b"{}")
                if not first.get("ok"):
                    raise ConnectionError(str(first))
                break
            except (OSError, ValueError):
                s.close()
                s = None
                time.sleep(0.01)
        if s is None:
            return
        s.settimeout(None)
        self._monitors.append(s)
        t_ready = time.time()
        self.monitor_at[i] = t_ready
        if self.ready_at[i] is None:  # no "serving on" log line seen: use this instead
            self.ready_at[i] = t_ready
            self.hub.record(i, t_ready, "ready", self.names[i])
        with contextlib.suppress(Exception):
            for m in control_request(self.socks[i], {"op": "members"}):
                t = time.time()
                name = m.get("name")
                with self.hub.cond:
                    known = name in self.hub.views[i].states
                if not known:
                    self._record_member(i, t, None, m)
        with contextlib.suppress(OSError, ValueError):
            for raw in iter(f.readline, b""):
                t = time.time()
                try:
                    ev = json.loads(raw)
                except ValueError:
                    continue
                kind = str(ev.get("event", ""))
                if kind == "action":  # ActionDelivered: subject = the action's id
                    self.hub.record(i, t, "action", str(ev.get("id")), str(ev.get("name")))
                    # And when the agent's core delivered it (its step's clock, before
                    # the record and the stream): the stream's delay without this
                    # harness's own wake-up on a busy machine.
                    at = ev.get("time")
                    if isinstance(at, float):
                        self.hub.record(i, at, "action_at", str(ev.get("id")), "")
                    continue
                member = ev.get("member")
                if isinstance(member, dict) and kind in _STATE_OF_EVENT:
                    self._record_member(i, t, _STATE_OF_EVENT[kind], member)

    def start(self, *, at_once: bool = False) -> None:
        """Start the seed, wait until its control socket serves, then the others at once
        (``at_once``: every agent at once, the seed too)."""
        self.t_start = time.time()
        for i in range(self.n):
            self.hub.record(i, self.t_start, "alive", self.names[i])  # an agent knows itself
        if at_once:
            for i in range(self.n):
                self._spawn(i)
            return
        self._spawn(0)
        self.hub.wait(
            lambda: self.monitor_at[0] is not None or self.procs[0].poll() is not None,
            time.time() + self.deadline_s,
        )
        for i in range(1, self.n):
            self._spawn(i)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def close(self) -> None:
        self._closing = True
        for s in self._monitors:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        for p in self.procs:
            self.reg.stop(p)
        for fh in self.logs:
            fh.close()

    # ----------------------------------------------------------------- actions

    def crash(self, i: int) -> None:
        os.kill(self.procs[i].pid, signal.SIGKILL)

    def freeze(self, i: int) -> None:
        os.kill(self.procs[i].pid, signal.SIGSTOP)

    def leave(self, i: int) -> None:
        os.kill(self.procs[i].pid, signal.SIGTERM)

    def info(self, i: int) -> dict[str, Any]:
        return dict(control_request(self.socks[i], {"op": "info"}))

    def counters(self) -> dict[int, int] | None:
        """Datagrams sent per agent, from ``info`` (protocol and runtime counters)."""
        out: dict[int, int] = {}
        for i in range(self.n):
            if self.procs[i].poll() is not None:
                continue
            try:
                info = self.info(i)
            except (OSError, RuntimeError, ValueError):
                continue
            sent = int(info.get("stats", {}).get("datagrams_sent", 0))
            runtime = info.get("runtime", {})
            sent += int(runtime.get("beacons_sent", 0))
            out[i] = sent
        return out

    def fanout(self, origin: int, k: int) -> dict[str, Any]:
        """Set tag ``bench=k`` on ``origin``; delay until every agent shows the new tags."""
        subject = self.names[origin]
        want = f'"bench": "{k}"'
        t0 = time.time()
        control_request(self.socks[origin], {"op": "tags", "set": {"bench": str(k)}})
        t_reply = time.time()

        def seen(i: int) -> float | None:
            for t, kind, subj, detail in self.hub.views[i].events:
                if t >= t0 and kind == "tags" and subj == subject and want in detail:
                    return t
            return None

        def all_seen() -> bool:
            return all(seen(i) is not None or i == origin for i in range(self.n))

        self.hub.wait(all_seen, t0 + 5.0)
        with self.hub.cond:
            times = [seen(i) for i in range(self.n)]
        if times[origin] is None:  # the origin may not report its own change as an event
            times[origin] = t_reply
        return {
            "t0": t0,
            "request_s": t_reply - t0,
            "seen_delays": [None if t is None else t - t0 for t in times],
        }

    def action_fanout(self, origin: int, k: int) -> dict[str, Any]:
        """Start cluster-wide action ``bench`` on ``origin``; per agent, the delay until its
        monitor stream shows the action delivered, and the request's round trip (every
        member answered)."""
        t0 = time.time()
        request = {"op": "action", "name": "bench", "payload": f"k{k}", "timeout": 5.0}
        result = control_request(self.socks[origin], request, timeout=10.0)
        t_reply = time.time()
        action_id = str(result["id"])

        def delivered(i: int, what: str = "action") -> float | None:
            for t, kind, subj, _ in self.hub.views[i].events:
                if kind == what and subj == action_id:
                    return t
            return None

        self.hub.wait(lambda: all(delivered(i) is not None for i in range(self.n)), t0 + 5.0)
        with self.hub.cond:
            times = [delivered(i) for i in range(self.n)]
            stamped = [delivered(i, "action_at") for i in range(self.n)]
        return {
            "t0": t0,
            "id": action_id,
            "answered_s": t_reply - t0,
            "answered": len(result.get("results", {})),
            "missing": result.get("missing", []),
            "delivered_delays": [None if t is None else t - t0 for t in times],
            "stamped_delays": [None if t is None else t - t0 for t in stamped],
        }
