"""Failover time of the leader election with real agents on loopback, and idle stability.

Usage::

    .venv/bin/python bench/failover_bench.py --sizes 5 10 --runs 5 --idle 600

For each cluster size N: start N ``covey agent`` processes (``--expected-votes N``,
default timings: heartbeat 0.2 s, lease 0.9 s, follower wait 1.2 s), wait for one leader,
then ``--runs`` times: kill -9 the leader, measure until every survivor names the same
new leader (polled every 20 ms over the control sockets), restart the killed agent and
wait for the cluster to settle. Then, with the first size, stay idle ``--idle`` seconds
and count false failovers (any term change or leader change). Published defaults of the
peers are printed beside: cxm (master timeout 6 s + 1 s vote tally) and Kubernetes
leases (15 s lease duration). Everything runs on 127.0.0.1; agents are stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from covey.runtime.control.client import ClientError
from covey.runtime.localcluster import AgentProcess, LocalCluster, wait_until

PEERS = {"cxm (6 s master timeout + 1 s vote)": 7.0, "Kubernetes Lease (15 s)": 15.0}


def names(a: AgentProcess) -> dict[str, Any]:
    result: dict[str, Any] = a.client(timeout=3.0).request("names")
    return result


def agreed(agents: list[AgentProcess]) -> str | None:
    try:
        seen = {names(a)["leader"] for a in agents}
    except ClientError:
        return None
    return seen.pop() if len(seen) == 1 else None


def failovers(n: int, runs: int) -> list[float]:
    out = []
    with LocalCluster(cluster=f"fo{n}", agent_args=["--expected-votes", str(n)]) as c:
        c.start(n)
        wait_until(c.converged, 120, what="membership")
        for r in range(runs):
            agents = c.running()
            old = wait_until(lambda: agreed(c.running()), 60, what="a leader")
            victim = next(a for a in agents if a.name == old)
            survivors = [a for a in agents if a is not victim]
            t0 = time.monotonic()
            victim.signal(signal.SIGKILL)

            def new(s: list[AgentProcess] = survivors, o: str = old) -> str | None:
                leader = agreed(s)
                return leader if leader not in (None, o) else None

            leader = wait_until(new, 60, interval=0.02, what="new leader")
            took = time.monotonic() - t0
            out.append(took)
            print(f"N={n} run {r + 1}: {old} killed, {leader} known to all after {took:.2f} s")
            victim.wait(10)
            c.spawn(victim.name)  # a fresh process takes the place (new id, new port)
            wait_until(lambda: agreed(c.running()), 60, what="settled")
    return out


def idle(n: int, seconds: float) -> dict[str, Any]:
    with LocalCluster(cluster=f"idle{n}", agent_args=["--expected-votes", str(n)]) as c:
        agents = c.start(n)
        wait_until(c.converged, 120, what="membership")
        leader = wait_until(lambda: agreed(agents), 60, what="a leader")
        terms = {names(a)["term"] for a in agents}
        changes = 0
        samples = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(1.0)
            now = agreed(agents)
            now_terms = {names(a)["term"] for a in agents}
            samples += 1
            if now != leader or now_terms != terms:
                changes += 1
                leader, terms = now, now_terms
        return {"nodes": n, "seconds": seconds, "samples": samples, "false_failovers": changes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--idle", type=float, default=60.0, help="idle seconds (0: skip)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/failover.json"))
    a = ap.parse_args()
    results: dict[str, Any] = {"failover": {}, "peers": PEERS}
    for n in a.sizes:
        times = failovers(n, a.runs)
        results["failover"][n] = {
            "runs": times,
            "median": statistics.median(times),
            "max": max(times),
        }
    if a.idle > 0:
        results["idle"] = idle(a.sizes[0], a.idle)
    print("\nfailover (leader kill -9 -> new leader known to all), seconds:")
    for n, r in results["failover"].items():
        print(
            f"  covey N={n}: median {r['median']:.2f}, max {r['max']:.2f} ({len(r['runs'])} runs)"
        )
    for peer, t in PEERS.items():
        print(f"  {peer}: {t:.1f} (published default, not measured)")
    if "idle" in results:
        i = results["idle"]
        print(
            f"idle {i['seconds']:.0f} s with {i['nodes']} agents: "
            f"{i['false_failovers']} false failovers"
        )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
