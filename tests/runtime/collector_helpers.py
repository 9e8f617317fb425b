"""Synthetic trace records and a collector process (started with the CLI, stopped by PID)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from covey.core.crypto.fernet import generate_key
from covey.runtime.collector.client import CollectorClient

COVEY = [sys.executable, "-m", "covey"]
NODES = ("a", "b", "c", "d", "e")
#: Node c's clock runs this far ahead: its ``at`` and ``sent`` both say so.
SKEW = {"c": 3.0}


def node_id(name: str) -> str:
    return (name.encode().hex() * 16)[:32]


def record(
    node: str,
    seq: int,
    at: float,
    op: str,
    *,
    subject: str | None = None,
    leader: str | None = None,
    term: int | None = None,
    members: int = 1,
    n: int = 0,
    boot: float = 1000.0,
    detail: str = "",
    cause: str | None = None,
    offset: float | None = None,
) -> dict[str, Any]:
    """One record as an agent would send it (``offset`` added: as the store returns it)."""
    rec: dict[str, Any] = {
        "seq": seq,
        "boot": boot,
        "at": at,
        "op": op,
        "node": node,
        "node_id": node_id(node),
        "cluster": "test",
        "subject": subject,
        "subject_id": None if subject is None else node_id(subject),
        "leader": leader,
        "term": term,
        "members": members,
        "detail": detail,
        "n": n,
        "cause": cause,
    }
    if offset is not None:
        rec["offset"] = offset
    return rec


@dataclass
class Story:
    """Five nodes join, a is elected and beats, e fails as its four survivors report.

    ``records`` is per node, with each node's clock (c's is :data:`SKEW` ahead);
    ``truth`` is every record with the true time it happened, for checking orders.
    """

    t0: float
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    truth: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def add(self, node: str, true_at: float, op: str, **kw: Any) -> None:
        recs = self.records.setdefault(node, [])
        rec = record(node, len(recs) + 1, true_at + SKEW.get(node, 0.0), op, **kw)
        recs.append(rec)
        self.truth.append((true_at, rec))


def story(t0: float) -> Story:
    s = Story(t0)
    for i, name in enumerate(NODES):
        s.add(name, t0 + i, "join", members=i + 1)
        for j, other in enumerate(NODES[:i]):
            s.add(other, t0 + i + 0.1 + j / 10, "alive", subject=name, members=i + 1)
    for i, name in enumerate(NODES):
        s.add(name, t0 + 5 + i / 10, "election", leader="a", term=1, members=5, n=1)
    for k in range(5):
        s.add("a", t0 + 6 + k, "leader_heart", leader="a", term=1, members=5, n=k + 1)
    survivors = NODES[:4]
    cause = f"inc:{node_id('e')}:0"
    for i, name in enumerate(survivors):
        s.add(name, t0 + 11.2 + i / 10, "suspect", subject="e", leader="a", term=1, members=5)
    for i, name in enumerate(survivors):
        s.add(
            name, t0 + 13.1 + i / 10, "failed", subject="e", leader="a", term=1, members=4,
            cause=cause,
        )  # fmt: skip
    for k in range(3):
        s.add("a", t0 + 14 + k, "leader_heart", leader="a", term=1, members=4, n=k + 6)
    return s


def make_key(path: Path) -> Path:
    path.write_bytes(generate_key() + b"\n")
    path.chmod(0o600)
    return path


def covey(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    return subprocess.run([*COVEY, *args], capture_output=True, text=True, timeout=timeout, env=env)


def gone(proc: psutil.Process) -> bool:
    """True when ``proc`` has exited (a zombie nobody reaped yet counts as exited)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class CollectorProcess:
    """A collector started with ``covey collector``; :meth:`kill` stops it by PID."""

    address: str
    pid: int
    data: Path
    key_file: Path
    process: psutil.Process

    @classmethod
    def start(cls, data: Path, key_file: Path) -> CollectorProcess:
        return cls.start_at(data, key_file, None)

    @classmethod
    def start_at(cls, data: Path, key_file: Path, bind: str | None) -> CollectorProcess:
        """Start one with ``--bind bind`` (None: a port of its own choosing)."""
        where = [] if bind is None else ["--bind", bind]
        out = covey("collector", "--key-file", str(key_file), "--data", str(data), "--json", *where)
        assert out.returncode == 0, out.stderr
        started = json.loads(out.stdout)
        pid = int(started["pid"])
        return cls(started["address"], pid, data, key_file, psutil.Process(pid))

    def client(self, key_file: Path | None = None) -> CollectorClient:
        keys = [(key_file or self.key_file).read_bytes().strip()]
        return CollectorClient(self.address, keys)

    def send(self, node: str, records: list[dict[str, Any]], **kw: Any) -> dict[str, int]:
        """``node``'s records in one batch, ``sent`` by its (possibly skewed) clock."""
        with self.client().connect() as conn:
            return conn.send_traces(
                node_id=node_id(node), node=node, cluster="test", boot=1000.0, records=records,
                sent=time.time() + SKEW.get(node, 0.0), **kw,
            )  # fmt: skip

    def kill(self) -> None:
        """SIGTERM (the collector flushes and exits), SIGKILL if it does not (bounded).

        Only the process we started: psutil checks its start time, so a reused PID is
        never signalled."""
        proc = self.process
        if gone(proc):
            return
        try:
            proc.terminate()
            try:
                proc.wait(10)
            except psutil.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        except psutil.NoSuchProcess:
            return
