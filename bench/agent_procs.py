"""Process plumbing for ``agent_bench.py``: spawn, watch, measure and always stop agents.

Everything here is about real OS processes on loopback:

* :class:`ProcessRegistry` remembers every process the benchmark started and stops each one
  by its PID (SIGCONT first, in case it was frozen, then SIGKILL) from ``finally`` and from
  ``atexit``; children also get ``PR_SET_PDEATHSIG`` so they die with the benchmark even if it
  is killed with SIGKILL itself.
* :class:`EventHub` is a condition variable around every agent's view of the cluster, fed
  by one reader thread per agent stream, each line timestamped (``time.time()``) when read.
* :func:`cpu_rss_window` measures CPU % and RSS of a set of PIDs with psutil.
* :func:`count_datagrams` counts the UDP datagrams a set of PIDs send, per process, by
  attaching ``strace`` for a fixed window and counting ``sendto``/``sendmsg`` calls that
  carry an IPv4 destination (plain TCP writes have none), and checks every destination is
  inside 127.0.0.0/8 or a multicast group (loopback multicast).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import psutil

from covey.runtime.localcluster import free_port

_PR_SET_PDEATHSIG = 1
_libc: Any = None
with contextlib.suppress(OSError):
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ProcessRegistry:
    """Every process the benchmark started, stopped by PID no matter how the run ends."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        atexit.register(self.stop_all)

    def spawn(
        self,
        argv: Sequence[str],
        *,
        stdout: int | IO[bytes] | None = subprocess.PIPE,
        stderr: int | IO[bytes] | None = subprocess.STDOUT,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` (never through a shell) and remember it.

        Must be called from the main thread: PR_SET_PDEATHSIG fires when the *thread* that
        forked the child ends.
        """
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            env=env,
            preexec_fn=_die_with_parent,
        )
        with self._lock:
            self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], *, grace: float = 0.0) -> None:
        """Stop one process by PID: SIGCONT, then SIGTERM (if ``grace``), then SIGKILL."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
            if grace > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def stop_all(self) -> None:
        """Stop every process still running (idempotent; registered with atexit)."""
        with self._lock:
            procs, self._procs = self._procs, []
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
        for proc in procs:
            self.stop(proc)


# --------------------------------------------------------------------------- ports


def free_ports(count: int, *, avoid: Iterable[int] = ()) -> list[int]:
    """``count`` distinct ports free for both TCP and UDP on 127.0.0.1 right now (below
    the ephemeral range, see covey.runtime.localcluster.free_port)."""
    chosen: list[int] = []
    taken = set(avoid)
    for _ in range(count * 50):
        if len(chosen) == count:
            break
        port = free_port()
        if port not in taken:
            taken.add(port)
            chosen.append(port)
    if len(chosen) != count:
        raise RuntimeError("could not find free loopback ports")
    return chosen


def wait_tcp(port: int, deadline: float) -> bool:
    """Wait (bounded) until something accepts TCP connections on 127.0.0.1:port."""
    while time.time() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.01)
    return False


# --------------------------------------------------------------------------- observing


@dataclass
class AgentView:
    """One agent's view of the cluster as seen through its event stream."""

    idx: int
    name: str
    states: dict[str, str] = field(default_factory=dict)
    # (time read, kind, subject, detail)
    events: list[tuple[float, str, str, str]] = field(default_factory=list)
    full_at: float | None = None  # first time every expected member was alive


class EventHub:
    """Thread-safe store of agent views; reader threads feed it, the scenario waits on it."""

    ALIVE = "alive"

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.views = [AgentView(i, n) for i, n in enumerate(names)]
        self.cond = threading.Condition()
        self.raw_lines = 0

    def record(self, idx: int, t: float, kind: str, subject: str, detail: str = "") -> None:
        """Agent ``idx`` reported ``kind`` about ``subject`` at time ``t``."""
        with self.cond:
            view = self.views[idx]
            view.events.append((t, kind, subject, detail))
            if kind in ("alive", "suspect", "failed", "left"):
                view.states[subject] = kind
            if (
                view.full_at is None
                and kind == self.ALIVE
                and all(view.states.get(n) == self.ALIVE for n in self.names)
            ):
                view.full_at = t
            self.cond.notify_all()

    def wait(self, pred: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``pred()`` (evaluated under the lock) holds or ``deadline`` passes."""
        with self.cond:
            while not pred():
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.05))
            return True

    def first(self, idx: int, kinds: Iterable[str], subject: str, after: float) -> float | None:
        """Earliest time agent ``idx`` reported one of ``kinds`` about ``subject`` after t."""
        ks = set(kinds)
        with self.cond:
            for t, kind, subj, _ in self.views[idx].events:
                if t >= after and kind in ks and subj == subject:
                    return t
        return None


def start_reader(
    stream: IO[bytes],
    on_line: Callable[[float, str], None],
    *,
    log: IO[str] | None = None,
) -> threading.Thread:
    """Read ``stream`` line by line in a daemon thread; ``on_line(time_read, text)``."""

    def run() -> None:
        with contextlib.suppress(ValueError, OSError):
            for raw in iter(stream.readline, b""):
                t = time.time()
                text = raw.decode("utf-8", "replace").rstrip("\n")
                if log is not None:
                    with contextlib.suppress(ValueError):
                        log.write(f"{t:.6f} {text}\n")
                with contextlib.suppress(Exception):
                    on_line(t, text)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


# --------------------------------------------------------------------------- resources


def _sched_ns(pid: int) -> int | None:
    """Nanoseconds on CPU of every live thread of ``pid`` (/proc/PID/task/*/schedstat)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        with (
            contextlib.suppress(OSError, ValueError, IndexError),
            open(f"/proc/{pid}/task/{tid}/schedstat") as fh,
        ):
            total += int(fh.read().split()[0])
    return total


#: Seconds after join convergence before an idle window (CPU, datagrams) starts, for every
#: system: covey's facts exchange digests for five 2-second rounds (±25 %) after a change,
#: a join included, so a window starting at 3 s measured 7 s of that post-join work rather
#: than an idle agent. (Figures before 2026-12-04's evening were taken at 3 s.)
IDLE_SETTLE_S = 13.0


def cpu_rss_window(pids: Sequence[int], seconds: float) -> dict[int, dict[str, float]]:
    """CPU % (one core = 100) and RSS (MiB) per PID over a window of ``seconds``.

    CPU comes from the scheduler's nanosecond run-time of every thread (schedstat), since
    the clock-tick counts psutil reads have a 10 ms grain (0.1 % over 10 s) that idle agents
    are close to; psutil's user+system figure is kept beside it as ``cpu_percent_ticks``.

    RSS is sampled every 0.5 s; the maximum sample is reported. USS (memory unique to the
    process, i.e. what one more agent costs when the others share its libraries' pages) is
    read once at the end.
    """
    procs = {pid: psutil.Process(pid) for pid in pids}
    start = {pid: p.cpu_times() for pid, p in procs.items()}
    sched0 = {pid: _sched_ns(pid) for pid in pids}
    rss = {pid: 0.0 for pid in pids}
    t0 = time.time()
    end = t0 + seconds
    while True:
        for pid, p in procs.items():
            with contextlib.suppress(psutil.Error):
                rss[pid] = max(rss[pid], p.memory_info().rss / 2**20)
        now = time.time()
        if now >= end:
            break
        time.sleep(min(0.5, end - now))
    wall = time.time() - t0
    out: dict[int, dict[str, float]] = {}
    for pid, p in procs.items():
        try:
            c1 = p.cpu_times()
        except psutil.Error:
            continue
        c0 = start[pid]
        ticks = (c1.user + c1.system - c0.user - c0.system) / wall * 100.0
        s0, s1 = sched0[pid], _sched_ns(pid)
        cpu = ticks if s0 is None or s1 is None else (s1 - s0) / 1e9 / wall * 100.0
        out[pid] = {"cpu_percent": cpu, "cpu_percent_ticks": ticks, "rss_mib": rss[pid]}
        with contextlib.suppress(psutil.Error):
            out[pid]["uss_mib"] = p.memory_full_info().uss / 2**20
    return out


_DEST = re.compile(r'sin_addr=inet_addr\("([0-9.]+)"\)')
_CALL = re.compile(r"^(?:\d+\s+)?(\d+\.\d+)\s+(sendto|sendmsg|sendmmsg)\(")
_RET = re.compile(r"=\s*(-?\d+)")


def udp_out_datagrams() -> int:
    """System-wide ``Udp: OutDatagrams`` from /proc/net/snmp (all processes)."""
    with open("/proc/net/snmp") as fh:
        lines = [ln.split() for ln in fh if ln.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("OutDatagrams")])


def count_datagrams(pids: Sequence[int], seconds: float, workdir: str) -> dict[str, Any]:
    """Count UDP datagrams each PID sends during ``seconds`` using ``strace -f -p``.

    A call counts when it is stamped inside the window and is a successful ``sendto`` or
    ``sendmsg`` with an IPv4 destination (``sendmmsg`` counts its return value). Returns
    per-PID counts, the destinations seen and whether any fell outside 127.0.0.0/8 or
    224.0.0.0/4 (which would break the network rule).
    """
    tracers: list[tuple[int, subprocess.Popen[bytes], str]] = []
    for pid in pids:
        path = os.path.join(workdir, f"strace-{pid}.txt")
        tr = subprocess.Popen(
            [
                "strace",
                "-f",
                "-qq",
                "-ttt",
                "-e",
                "trace=sendto,sendmsg,sendmmsg",
                "-e",
                "signal=none",
                "-s",
                "0",
                "-o",
                path,
                "-p",
                str(pid),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        tracers.append((pid, tr, path))
    time.sleep(0.3)  # let strace attach to every thread before the window opens
    t0 = time.time()
    snmp0 = udp_out_datagrams()
    time.sleep(seconds)
    snmp1 = udp_out_datagrams()
    t1 = time.time()
    wall = t1 - t0
    for _, tr, _ in tracers:
        with contextlib.suppress(ProcessLookupError):
            tr.send_signal(signal.SIGINT)
    for _, tr, _ in tracers:
        try:
            tr.wait(timeout=5)
        except subprocess.TimeoutExpired:
            tr.kill()
            tr.wait(timeout=5)
    counts: dict[int, int] = {}
    dests: dict[str, int] = {}
    outside: list[str] = []
    for pid, _, path in tracers:
        n = 0
        with contextlib.suppress(OSError), open(path) as fh:
            for line in fh:
                m = _CALL.search(line)
                if not m or not t0 <= float(m.group(1)) <= t1:
                    continue
                d = _DEST.search(line)
                if d is None:
                    continue
                r = _RET.search(line.rsplit(")", 1)[-1])
                if r is not None and int(r.group(1)) < 0:
                    continue
                n += int(r.group(1)) if (m.group(2) == "sendmmsg" and r) else 1
                addr = d.group(1)
                dests[addr] = dests.get(addr, 0) + 1
                ip = ipaddress.ip_address(addr)
                if not (ip in ipaddress.ip_network("127.0.0.0/8") or ip.is_multicast):
                    outside.append(addr)
        counts[pid] = n
    # Only calls stamped (strace -ttt) inside [t0, t1] are counted, so attach and detach
    # do not blur the window.
    return {
        "window_s": wall,
        "per_pid": counts,
        "destinations": dests,
        "outside_loopback": sorted(set(outside)),
        "snmp_out_datagrams_delta": snmp1 - snmp0,
    }


def git_describe() -> str:
    """``git describe --always --dirty`` of the benchmarks' checkout ("unknown" if none)."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
