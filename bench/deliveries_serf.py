"""Serf side of ``deliveries_bench.py``: N ``serf agent`` processes answering a query.

Serf answers a query in one of two ways, and the benchmark measures both:

* **handler**: ``-event-handler query:benchsh=echo ok``. A Serf agent responds to a query
  only with the output of a handler script (no output, no response: see ``invoke.go``),
  so every answer costs a ``/bin/sh`` fork and exec.
* **rpc**: each agent has an RPC client subscribed to ``stream`` ``query:benchrpc``
  (Serf's "fast IPC" alternative to event handlers) that answers with ``respond`` at
  once. The ten responders are threads of the benchmark process.

The query itself goes through the origin agent's msgpack RPC (``query``, ``Timeout``
5 s, no acks), sent on a connection opened and handshaken beforehand, so neither CLI
start-up nor the handshake counts: the clock starts just before the request is written
and stops when the N-th ``response`` record is read.

Agents: ``-profile=lan``, one random 32-byte key (encryption on, as covey's Fernet),
no ``-discover`` (no mDNS), bound to 127.0.0.1, ``-join`` to the seed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from typing import Any

import msgpack
from agent_procs import ProcessRegistry, free_ports
from agent_serf import SerfRPC

HANDLER_QUERY = "benchsh"
RPC_QUERY = "benchrpc"


class QueryRPC(SerfRPC):
    """Serf's RPC with ``members``, ``query``, ``stream`` and ``respond``."""

    def _send(self, command: str, body: dict[str, Any] | None) -> int:
        seq = self.seq
        self.seq += 1
        msg = msgpack.packb({"Command": command, "Seq": seq})
        if body is not None:
            msg += msgpack.packb(body, use_bin_type=True)
        self.sock.sendall(msg)
        return seq

    def members(self) -> list[dict[str, Any]]:
        self._send("members", None)
        hdr = self._read_header()
        if hdr.get("Error"):
            raise RuntimeError(f"serf members: {hdr['Error']}")
        return list(self._read_header().get("Members", []))

    def query(self, name: str, want: int, timeout_s: float) -> tuple[float, list[float], int]:
        """Run query ``name``; returns (t0, time each response was read, responses)."""
        body = {
            "FilterNodes": [],
            "FilterTags": {},
            "RequestAck": False,
            "RelayFactor": 0,
            "Timeout": int(timeout_s * 1e9),
            "Name": name,
            "Payload": b"x",
        }
        self.sock.settimeout(timeout_s + 2.0)
        t0 = time.time()
        self._send("query", body)
        hdr = self._read_header()
        if hdr.get("Error"):
            raise RuntimeError(f"serf query: {hdr['Error']}")
        times: list[float] = []
        seen: set[str] = set()
        end = t0 + timeout_s + 1.0
        while len(seen) < want and time.time() < end:
            self._read_header()  # each record: header, then body
            rec = self._read_header()
            kind = rec.get("Type")
            if kind == "response" and rec.get("From") not in seen:
                seen.add(str(rec.get("From")))
                times.append(time.time())
            elif kind == "done":
                break
        return t0, times, len(seen)


class Responder:
    """One RPC client answering every ``RPC_QUERY`` its agent gets, at once."""

    def __init__(self, port: int) -> None:
        self.rpc = QueryRPC(port)
        self.rpc._send("stream", {"Type": f"query:{RPC_QUERY}"})
        hdr = self.rpc._read_header()
        if hdr.get("Error"):
            raise RuntimeError(f"serf stream: {hdr['Error']}")
        self.rpc.sock.settimeout(None)
        self.answered = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError, ValueError, ConnectionError):
            while True:
                # Headers (of stream records and of respond answers) and query records
                # arrive on one connection: answer the records, skip the rest.
                obj = self.rpc._read_header()
                if obj.get("Event") == "query":
                    self.rpc._send("respond", {"ID": obj["ID"], "Payload": b"ok"})
                    self.answered += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.rpc.sock.shutdown(socket.SHUT_RDWR)
        self.rpc.close()


class SerfAgents:
    """N Serf agents; agent 0 is the seed the others ``-join``."""

    def __init__(self, reg: ProcessRegistry, workdir: str, n: int) -> None:
        self.reg = reg
        self.n = n
        self.dir = workdir
        ports = free_ports(2 * n)
        self.ports, self.rpc_ports = ports[:n], ports[n:]
        self.names = [f"s{i}" for i in range(n)]
        key = base64.b64encode(os.urandom(32)).decode()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []
        self.responders: list[Responder] = []
        for i in range(n):
            keyring = os.path.join(workdir, f"keyring-s{i}.json")
            with open(keyring, "w") as fh:
                json.dump([key], fh)
            argv = [
                "serf", "agent",
                f"-node={self.names[i]}",
                f"-bind=127.0.0.1:{self.ports[i]}",
                f"-rpc-addr=127.0.0.1:{self.rpc_ports[i]}",
                "-profile=lan",
                f"-keyring-file={keyring}",
                f"-event-handler=query:{HANDLER_QUERY}=echo ok",
                "-log-level=warn",
            ]  # fmt: skip
            if i > 0:
                argv.append(f"-join=127.0.0.1:{self.ports[0]}")
            log = open(os.path.join(workdir, f"s{i}.log"), "wb")  # noqa: SIM115
            self.procs.append(reg.spawn(argv, stdout=log, cwd=workdir))
            self.logs.append(log)
            if i == 0:
                self._wait_rpc(0, time.time() + 20.0)

    def _wait_rpc(self, i: int, deadline: float) -> None:
        while time.time() < deadline:
            if self.procs[i].poll() is not None:
                raise RuntimeError(f"serf agent s{i} exited (see its log)")
            with contextlib.suppress(OSError, ConnectionError, RuntimeError):
                QueryRPC(self.rpc_ports[i]).close()
                return
            time.sleep(0.05)
        raise RuntimeError(f"serf agent s{i} RPC did not answer")

    def wait_converged(self, deadline: float) -> None:
        """Every agent lists all N alive; then one RPC responder per agent subscribes."""
        for i in range(self.n):
            self._wait_rpc(i, deadline)
            while True:
                rpc = QueryRPC(self.rpc_ports[i])
                try:
                    alive = [m for m in rpc.members() if m.get("Status") == "alive"]
                finally:
                    rpc.close()
                if len(alive) == self.n:
                    break
                if time.time() > deadline:
                    raise RuntimeError(f"serf agent s{i} sees {len(alive)} of {self.n} alive")
                time.sleep(0.05)
        self.responders = [Responder(p) for p in self.rpc_ports]

    def query(self, name: str, timeout_s: float = 5.0) -> dict[str, Any]:
        """One query from agent 0; time until all N responded (None if not all)."""
        rpc = QueryRPC(self.rpc_ports[0])
        try:
            t0, times, got = rpc.query(name, self.n, timeout_s)
        finally:
            rpc.close()
        return {
            "responses": got,
            "all_s": (max(times) - t0) if got == self.n else None,
            "first_s": (min(times) - t0) if times else None,
        }

    def close(self) -> None:
        for r in self.responders:
            r.close()
        for p in self.procs:
            self.reg.stop(p, grace=3.0)
        for fh in self.logs:
            fh.close()
