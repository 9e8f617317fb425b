"""HashiCorp Serf side of ``agent_bench.py``: N ``serf agent`` processes on loopback.

How Serf is observed (and why not only through its event handler):

* Every agent's stdout is read line by line and each line timestamped when read. Serf logs
  ``serf: EventMemberJoin|Failed|Leave: NAME ADDR`` at the moment its member table changes
  (before any coalescing) and ``agent: Received event: user-event: NAME`` when a user event
  reaches the agent. These are the *state-change* times used for the covey/Serf ratios.
* The ``-event-handler`` script also writes ``$SERF_EVENT <date +%s.%N>`` to a per-agent
  file. The Serf agent coalesces member events for handlers (CoalescePeriod 3 s,
  QuiescentPeriod 1 s, hard-coded in ``serf agent``), so handler times for member-failed /
  member-leave lag the state change by 1-3 s; they are recorded as a secondary figure. User
  events are sent with ``Coalesce: false`` so their handler runs at once: the fan-out figure
  is "until every agent's handler ran", as a user of Serf would see it.

Settings: ``-profile=lan`` (memberlist DefaultLANConfig: probe 1 s, timeout 0.5 s, suspicion
multiplier 4), encryption on (keyring file of one random 32-byte key), no ``-discover`` (no
mDNS), ``leave_on_terminate: true`` so that SIGTERM is a graceful leave as for covey,
``-retry-join`` to the seed with ``-retry-interval=1s`` (Serf's minimum).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
from typing import Any

import msgpack
from agent_procs import EventHub, ProcessRegistry, free_ports, start_reader

_MEMBER = re.compile(r"serf: EventMember(Join|Leave|Failed|Update|Reap): (\S+)")
_USER = re.compile(r"agent: Received event: user-event: (\S+)")
_KINDS = {"Join": "alive", "Leave": "left", "Failed": "failed", "Update": "update", "Reap": "reap"}

HANDLER = """#!/bin/sh
# covey agent_bench: timestamp every Serf event inside the handler, then copy its stdin.
echo "@@ $SERF_EVENT ${SERF_USER_EVENT:--} $(date +%s.%N)" >> "$1"
cat >> "$1"
"""


def serf_version() -> str:
    try:
        out = subprocess.run(
            ["serf", "version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return out.splitlines()[0].strip() if out else "unknown"


class SerfRPC:
    """Minimal client of Serf's msgpack RPC (handshake + event)."""

    def __init__(self, port: int, timeout: float = 3.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.unpacker = msgpack.Unpacker(raw=False)
        self.seq = 0
        self._call("handshake", {"Version": 1})

    def _read_header(self) -> dict[str, Any]:
        while True:
            for obj in self.unpacker:
                return dict(obj)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("serf rpc closed")
            self.unpacker.feed(data)

    def _call(self, command: str, body: dict[str, Any] | None) -> float:
        seq = self.seq
        self.seq += 1
        msg = msgpack.packb({"Command": command, "Seq": seq})
        if body is not None:
            msg += msgpack.packb(body, use_bin_type=True)
        t = time.time()
        self.sock.sendall(msg)
        hdr = self._read_header()
        if hdr.get("Error"):
            raise RuntimeError(f"serf rpc {command}: {hdr['Error']}")
        return t

    def event(self, name: str, payload: bytes) -> float:
        """Send a non-coalescing user event; returns the time just before it was sent."""
        return self._call("event", {"Name": name, "Payload": payload, "Coalesce": False})

    def close(self) -> None:
        self.sock.close()


class SerfCluster:
    """N Serf agents; agent 0 is the seed every other agent retry-joins."""

    system = "serf"

    def __init__(self, reg: ProcessRegistry, n: int, workdir: str, *, deadline_s: float) -> None:
        self.reg = reg
        self.n = n
        self.dir = workdir
        self.deadline_s = deadline_s
        self.names = [f"s{i}" for i in range(n)]
        self.hub = EventHub(self.names)
        ports = free_ports(2 * n)
        self.ports = ports[:n]
        self.rpc_ports = ports[n:]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ready_at: list[float | None] = [None] * n
        self.t_start = 0.0
        self.handler = os.path.join(workdir, "serf-handler.sh")
        with open(self.handler, "w") as fh:
            fh.write(HANDLER)
        os.chmod(self.handler, os.stat(self.handler).st_mode | stat.S_IXUSR)
        self.config = os.path.join(workdir, "serf-config.json")
        with open(self.config, "w") as fh:
            json.dump({"leave_on_terminate": True}, fh)
        key = base64.b64encode(os.urandom(32)).decode()
        self.keyrings = []
        for i in range(n):
            path = os.path.join(workdir, f"keyring-s{i}.json")
            with open(path, "w") as fh:
                json.dump([key], fh)
            self.keyrings.append(path)
        self.event_files = [os.path.join(workdir, f"events-s{i}.txt") for i in range(n)]
        self.logs = [open(os.path.join(workdir, f"s{i}.log"), "w") for i in range(n)]  # noqa: SIM115

    # ----------------------------------------------------------------- lifecycle

    def _argv(self, i: int) -> list[str]:
        argv = [
            "serf",
            "agent",
            f"-node={self.names[i]}",
            f"-bind=127.0.0.1:{self.ports[i]}",
            f"-rpc-addr=127.0.0.1:{self.rpc_ports[i]}",
            "-profile=lan",
            f"-keyring-file={self.keyrings[i]}",
            f"-config-file={self.config}",
            f"-event-handler={self.handler} {self.event_files[i]}",
            "-log-level=info",
        ]
        if i > 0:
            argv += [f"-retry-join=127.0.0.1:{self.ports[0]}", "-retry-interval=1s"]
        return argv

    def _on_line(self, i: int, t: float, line: str) -> None:
        if "Serf agent running!" in line:
            self.ready_at[i] = t
            self.hub.record(i, t, "ready", self.names[i])
            return
        m = _MEMBER.search(line)
        if m:
            self.hub.record(i, t, _KINDS[m.group(1)], m.group(2))
            return
        m = _USER.search(line)
        if m:
            self.hub.record(i, t, "user", m.group(1))

    def _spawn(self, i: int) -> None:
        proc = self.reg.spawn(self._argv(i), cwd=self.dir)
        self.procs.append(proc)
        assert proc.stdout is not None
        start_reader(proc.stdout, lambda t, ln, i=i: self._on_line(i, t, ln), log=self.logs[i])

    def start(self, *, at_once: bool = False) -> None:
        """Start the seed, wait until it serves, then start the others at once
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
            lambda: self.ready_at[0] is not None or self.procs[0].poll() is not None,
            time.time() + self.deadline_s,
        )
        for i in range(1, self.n):
            self._spawn(i)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def close(self) -> None:
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

    def counters(self) -> dict[int, int] | None:
        """Serf exposes no per-agent datagram counter; strace counts are used instead."""
        return None

    def read_handler_events(self, i: int) -> list[tuple[float, str, str, list[str]]]:
        """Parse agent ``i``'s handler file: (time, event, user-event name, stdin lines)."""
        out: list[tuple[float, str, str, list[str]]] = []
        try:
            with open(self.event_files[i]) as fh:
                text = fh.read()
        except OSError:
            return out
        for line in text.splitlines():
            if line.startswith("@@ "):
                parts = line.split()
                if len(parts) >= 4:
                    try:
                        out.append((float(parts[3]), parts[1], parts[2], []))
                    except ValueError:
                        continue
            elif out and line.strip():
                out[-1][3].append(line.split("\t")[0].strip())
        return out

    def handler_member_times(self, kind: str, subject: str, after: float) -> list[float]:
        """Per agent, when its handler first ran for ``kind`` about ``subject`` (coalesced)."""
        times = []
        for i in range(self.n):
            for t, ev, _, members in self.read_handler_events(i):
                if t >= after and ev == kind and subject in members:
                    times.append(t)
                    break
        return times

    def fanout(self, origin: int, k: int) -> dict[str, Any]:
        """Send user event ``bench-k`` through agent ``origin``; time until every handler ran."""
        name = f"bench{k}"
        rpc = SerfRPC(self.rpc_ports[origin])
        try:
            t0 = rpc.event(name, b"x")
        finally:
            rpc.close()
        deadline = time.time() + 5.0
        handler: dict[int, float] = {}
        while time.time() < deadline and len(handler) < self.n:
            for i in range(self.n):
                if i in handler:
                    continue
                for t, ev, uname, _ in self.read_handler_events(i):
                    if ev == "user" and uname == name:
                        handler[i] = t
                        break
            time.sleep(0.005)
        seen = {i: self.hub.first(i, ["user"], name, t0 - 1.0) for i in range(self.n)}
        return {
            "t0": t0,
            "handler_delays": [handler[i] - t0 if i in handler else None for i in range(self.n)],
            "seen_delays": [None if s is None else s - t0 for s in seen.values()],
        }

    def action_fanout(self, origin: int, k: int) -> dict[str, Any]:
        """Serf has no acknowledged cluster-wide action: its peer is the user event, sent
        and timed as :meth:`fanout` does (until every agent's event handler ran)."""
        out = self.fanout(origin, 1000 + k)
        out["delivered_delays"] = out["handler_delays"]
        return out
