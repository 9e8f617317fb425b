"""Shared-state benchmark: fact propagation latency and sustained updates across real agents.

Everything runs on loopback (LocalCluster: 127.0.0.1, multicast on the loopback interface
only); every agent is stopped by its PID at the end.

Phase 1 — latency: one fact change at a time (spaced, from rotating origins). Every agent
streams its events (the ``monitor`` control operation); the latency of one change on one
receiver is the receiver's event time minus the origin's own event time (both are wall
times taken by agents on this host, at the moment the core applied the change).

Phase 2 — throughput: one writer per agent, each on one persistent control connection,
sets its own facts (``--keys`` keys in rotation, values numbered) as fast as the agent
answers, for ``--duration`` seconds. Then it waits until every agent holds every writer's
final value of every key: "nothing lost" means the final state is exact everywhere
(intermediate values of one key are superseded by design: gossip keeps the newest).

    .venv/bin/python bench/facts_bench.py --agents 10 --samples 60 --duration 10
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from covey.runtime.control.client import ControlClient
from covey.runtime.localcluster import AgentProcess, LocalCluster, wait_until


class Line:
    """A persistent control connection: one JSON request line, one answer line."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10.0)
        self.sock.connect(str(path))
        self.rfile = self.sock.makefile("rb")

    def request(self, op: str, **args: object) -> Any:
        self.sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        answer = json.loads(self.rfile.readline())
        if not answer.get("ok"):
            raise RuntimeError(answer.get("error"))
        return answer.get("result")

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def latency_phase(agents: list[AgentProcess], samples: int) -> dict[str, Any]:
    seen: dict[tuple[str, str], dict[str, float]] = {}  # (origin, value) -> receiver -> time
    lock = threading.Lock()
    stop = threading.Event()

    def follow(a: AgentProcess) -> None:
        for ev in ControlClient(a.control, timeout=5.0).monitor():
            if stop.is_set():
                return
            if ev.get("event") == "fact" and ev.get("key") == "probe":
                with lock:
                    seen.setdefault((ev["node"], ev["value"]), {})[a.name] = float(ev["time"])

    threads = [threading.Thread(target=follow, args=(a,), daemon=True) for a in agents]
    for t in threads:
        t.start()
    time.sleep(1.0)  # let every monitor subscribe
    lines = {a.name: Line(a.control) for a in agents}
    delays: list[float] = []
    incomplete = 0
    try:
        for i in range(samples):
            origin = agents[i % len(agents)]
            value = f"v{i}"
            lines[origin.name].request("fact_set", key="probe", value=value)
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                with lock:
                    got = dict(seen.get((origin.name, value), {}))
                if len(got) == len(agents):
                    break
                time.sleep(0.005)
            if len(got) < len(agents) or origin.name not in got:
                incomplete += 1
                continue
            t0 = got.pop(origin.name)
            delays.extend(t - t0 for t in got.values())
            time.sleep(0.05)
    finally:
        stop.set()
        for line in lines.values():
            line.close()
    return {
        "samples": samples,
        "incomplete": incomplete,
        "deliveries": len(delays),
        "p50_ms": statistics.median(delays) * 1000,
        "p90_ms": pct(delays, 0.9) * 1000,
        "p99_ms": pct(delays, 0.99) * 1000,
        "max_ms": max(delays) * 1000,
    }


def throughput_phase(agents: list[AgentProcess], duration: float, keys: int) -> dict[str, Any]:
    counts: dict[str, int] = {}
    finals: dict[str, dict[str, str]] = {}
    errors: list[str] = []
    start_gate = threading.Barrier(len(agents) + 1)

    def write(a: AgentProcess) -> None:
        line = Line(a.control)
        n = 0
        last: dict[str, str] = {}
        try:
            start_gate.wait()
            end = time.monotonic() + duration
            while time.monotonic() < end:
                key, value = f"k{n % keys}", f"{a.name}-{n}"
                line.request("fact_set", key=key, value=value)
                last[key] = value
                n += 1
        except Exception as exc:  # reported, not hidden
            errors.append(f"{a.name}: {exc!r}")
        finally:
            line.close()
        counts[a.name] = n
        finals[a.name] = last

    threads = [threading.Thread(target=write, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    start_gate.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    total = sum(counts.values())

    def exact() -> bool:
        for a in agents:
            held = a.client(timeout=30.0).request("facts")
            for writer, want in finals.items():
                mine = held.get(writer, {})
                if any(mine.get(k) != v for k, v in want.items()):
                    return False
        return True

    t1 = time.monotonic()
    wait_until(exact, 120.0, interval=0.2, what="every final value on every agent")
    settle = time.monotonic() - t1
    return {
        "duration_s": elapsed,
        "updates": total,
        "updates_per_s": total / elapsed,
        "per_agent": dict(sorted(counts.items())),
        "settle_after_stop_s": settle,
        "final_state_exact_on_all": True,
        "errors": errors,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--agents", type=int, default=10)
    ap.add_argument("--samples", type=int, default=60, help="latency samples (phase 1)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of writing (phase 2)")
    ap.add_argument("--keys", type=int, default=200, help="keys per writer (<= 256)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if not (2 <= args.agents <= 30 and 1 <= args.keys <= 256 and 0 < args.duration <= 600):
        ap.error("agents 2..30, keys 1..256, duration (0, 600]")
    with LocalCluster(cluster="factbench") as cluster:
        agents = cluster.start(args.agents, prefix="b", timeout=90.0)
        wait_until(cluster.converged, 90.0, what="convergence")
        lat = latency_phase(agents, args.samples)
        print(
            f"latency over {lat['deliveries']} deliveries ({lat['samples']} changes, "
            f"{lat['incomplete']} incomplete): p50 {lat['p50_ms']:.1f} ms, "
            f"p90 {lat['p90_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms"
        )
        thr = throughput_phase(agents, args.duration, args.keys)
        print(
            f"throughput: {thr['updates']} updates in {thr['duration_s']:.1f} s = "
            f"{thr['updates_per_s']:.0f} updates/s cluster-wide; final state exact on all "
            f"{args.agents} agents {thr['settle_after_stop_s']:.2f} s after the writers stopped; "
            f"errors: {len(thr['errors'])}"
        )
        result = {"agents": args.agents, "latency": lat, "throughput": thr}
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2))
    return 0 if not thr["errors"] and lat["incomplete"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
