"""Action fan-out on a settled cluster: N covey agents, many samples, and their CPU.

Reproduce (from the repository root)::

    .venv/bin/python bench/action_fanout.py --nodes 10 --samples 20
    .venv/bin/python bench/action_fanout.py --nodes 10 --samples 20 --tags  # a tag change

The agents are ``agent_bench.py``'s (``agent_covey.CoveyCluster``: ``--data-dir``, the
monitor streams, ``--action-handler true`` unless ``--handler`` says otherwise). After the
join and 3 s of settling, an idle window as long as the samples measures the agents' CPU
at rest; then one action (or tag change) every 0.3 s, the origin rotating. Printed: the
median over samples of the slowest agent's delay (its monitor stream shows the action),
of the median agent's, of the slowest by the agents' own clocks (the ``time`` of the
``action`` event: when its core delivered it, before the record is written and the
event reaches the stream and this harness), of the answered-by-all round trip, and the
cluster's CPU per sample (every agent and its children, psutil) above the idle window's.

Network rule: every agent binds 127.0.0.1 (see agent_covey.py). Every process started is
stopped by its PID.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import psutil
from agent_bench import measure_join
from agent_covey import CoveyCluster
from agent_procs import ProcessRegistry

GAP_S = 0.3


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when every sample reached every agent."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--tags", action="store_true", help="a tag change instead of an action")
    ap.add_argument("--handler", default="true", help="--action-handler ('': none)")
    ap.add_argument("--no-data-dir", action="store_true", help="agents without --data-dir")
    ap.add_argument(
        "--covey", default=os.path.join(os.path.dirname(sys.executable), "covey"), help="CLI"
    )
    args = ap.parse_args(argv)
    reg = ProcessRegistry()
    extra = ("--action-handler", args.handler) if args.handler else ()
    with tempfile.TemporaryDirectory(prefix="covey-action-fanout-") as tmp:
        c = CoveyCluster(reg, args.nodes, tmp, covey=args.covey, deadline_s=30.0, extra=extra)
        if args.no_data_dir:
            base = c._argv

            def argv_without_data(i: int) -> list[str]:
                a = base(i)
                j = a.index("--data-dir")
                return a[:j] + a[j + 2 :]

            c._argv = argv_without_data  # type: ignore[method-assign]
        try:
            join = measure_join(c)
            if not join["converged"]:
                print("the cluster did not converge", file=sys.stderr)
                return 1
            time.sleep(3.0)
            procs = [psutil.Process(p.pid) for p in c.procs]

            def cpu() -> float:
                return sum(sum(p.cpu_times()[:4]) for p in procs)

            c0 = cpu()
            time.sleep(GAP_S * args.samples)
            idle = cpu() - c0
            slowest, middle, answered, missed = [], [], [], 0
            stamped: list[float] = []
            c1 = cpu()
            for k in range(args.samples):
                if args.tags:
                    delays = c.fanout(k % c.n, k)["seen_delays"]
                else:
                    got = c.action_fanout(k % c.n, k)
                    delays = got["delivered_delays"]
                    answered.append(got["answered_s"])
                    at = [d for d in got["stamped_delays"] if d is not None]
                    if len(at) == len(delays):
                        stamped.append(max(at))
                seen = [d for d in delays if d is not None]
                missed += len(delays) - len(seen)
                slowest.append(max(seen))
                middle.append(statistics.median(seen))
                time.sleep(GAP_S)
            busy = cpu() - c1
        finally:
            c.close()
    what = "tag change" if args.tags else "action"
    ms = [round(1000 * s, 1) for s in slowest]
    print(f"{what} to all {args.nodes} agents, slowest, ms: median {statistics.median(ms)}")
    print(f"  per sample: {ms}")
    print(f"  median agent: {1000 * statistics.median(middle):.1f} ms")
    if stamped:
        print(
            f"  slowest by the agents' own clocks (core delivered): "
            f"{1000 * statistics.median(stamped):.1f} ms"
        )
    if answered:
        print(f"  answered by all: {1000 * statistics.median(answered):.1f} ms")
    per = 1000 * (busy - idle) / args.samples
    print(f"  cluster CPU per {what}: {per:.1f} ms (idle window {1000 * idle / args.samples:.1f})")
    if missed:
        print(f"  {missed} deliveries not seen within 5 s", file=sys.stderr)
    return 0 if missed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
