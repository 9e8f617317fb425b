"""kill -9 of a peer on the same host: seen failed over the local channel vs over UDP.

Two real agents on 127.0.0.1, with ``--local-channel`` (their datagrams and streams go
over unix sockets) or without (UDP and TCP on loopback); one is killed with SIGKILL and
the other's member list is polled every 10 ms until it shows the peer failed. Runs
alternate between the two modes, so a change in the machine's load falls on both.

    .venv/bin/python bench/local_kill_bench.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time

from covey.runtime.localcluster import LocalCluster, wait_until


def one_kill(local: bool) -> float:
    """Seconds from SIGKILL of ``b`` until ``a`` lists it failed."""
    extra = ["--local-channel"] if local else []
    cluster = LocalCluster(cluster="bench")
    try:
        a = cluster.spawn("a", extra=extra)
        b = cluster.spawn("b", extra=[*extra, "--join", a.address])
        wait_until(lambda: cluster.converged(["a", "b"]), 60.0, what="a and b")
        if local:
            wait_until(lambda: a.client().info()["local_channel"]["datagrams_out"] > 5, 30.0)
        time.sleep(2.0)  # settle: a quiet cluster, as a crash usually finds it
        start = time.monotonic()
        b.signal(signal.SIGKILL)
        wait_until(lambda: a.states().get("b") == "failed", 30.0, interval=0.01, what="failed")
        took = time.monotonic() - start
        b.wait(10)
        return took
    finally:
        cluster.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="kills per mode (1..50)")
    a = ap.parse_args()
    if not 1 <= a.runs <= 50:
        ap.error("--runs: 1..50")
    times: dict[str, list[float]] = {"local channel": [], "UDP": []}
    for i in range(a.runs):
        for mode, local in (("local channel", True), ("UDP", False)):
            t = one_kill(local)
            times[mode].append(t)
            print(f"run {i + 1}/{a.runs} {mode}: {t * 1000:.1f} ms", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print("| mode | runs | median (ms) | min | max |")
    print("| --- | --- | --- | --- | --- |")
    for mode, ts in times.items():
        ms = [t * 1000 for t in ts]
        print(
            f"| {mode} | {len(ms)} | {statistics.median(ms):.1f} | {min(ms):.1f} | {max(ms):.1f} |"
        )
    ratio = statistics.median(times["local channel"]) / statistics.median(times["UDP"])
    print(f"ratio local / UDP (medians): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
