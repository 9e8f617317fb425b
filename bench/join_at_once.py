"""Start-up join when the seed is not up yet: N covey agents spawned at once, seed included.

Every agent but the seed has ``--join <seed>`` and ``--no-multicast`` (no beacons to find
each other by), so a join sent before the seed listens is refused and must be retried.
Prints, per run, join convergence from spawn and how long after the last agent served
the cluster converged. Whether a join is refused at all depends on which agent serves
first; ``--seed-last`` makes it certain: the N-1 others are spawned first, and the seed
only once they all serve (their joins refused). Reproduce::

    PYTHONPATH=$PWD/src .venv/bin/python bench/join_at_once.py --nodes 10 --runs 3 --seed-last

Every agent binds 127.0.0.1; every process started is stopped by its PID.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Any

from agent_covey import CoveyCluster
from agent_procs import ProcessRegistry


class _NoBeacons(CoveyCluster):
    """The benchmark's covey cluster with ``--no-multicast`` instead of a beacon group."""

    def _argv(self, i: int) -> list[str]:
        argv = super()._argv(i)
        j = argv.index("--multicast")
        argv[j : j + 2] = ["--no-multicast"]
        return argv


def _start_seed_last(c: CoveyCluster) -> None:
    """Spawn agents 1..N-1, wait until they serve, then the seed (agent 0)."""
    c.t_start = time.time()
    for i in range(c.n):
        c.hub.record(i, c.t_start, "alive", c.names[i])  # an agent knows itself
    for i in range(1, c.n):
        c._spawn(i)
    c.hub.wait(lambda: all(t is not None for t in c.ready_at[1:]), time.time() + 30.0)
    c._spawn(0)  # c.procs is then in spawn order (only close() uses it here)


def run(reg: ProcessRegistry, n: int, covey: str, *, seed_last: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="covey-join-at-once-") as d:
        c = _NoBeacons(reg, n, d, covey=covey, deadline_s=30.0)
        try:
            if seed_last:
                _start_seed_last(c)
            else:
                c.start(at_once=True)
            ok = c.hub.wait(lambda: all(v.full_at for v in c.hub.views), time.time() + 40.0)
            ready = [t for t in c.ready_at if t is not None]
            if not ok or len(ready) < n:
                return {"converged": False}
            full = max(v.full_at for v in c.hub.views if v.full_at is not None)
            return {
                "converged": True,
                "join_s": full - c.t_start,
                "last_served_s": max(ready) - c.t_start,
                "after_last_served_s": full - max(ready),
                "seed_served_s": c.ready_at[0] - c.t_start if c.ready_at[0] else None,
            }
        finally:
            c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--covey", default="covey", help="covey CLI")
    ap.add_argument("--seed-last", action="store_true", help="spawn the seed once the others serve")
    args = ap.parse_args()
    reg = ProcessRegistry()
    try:
        for r in range(args.runs):
            out = run(reg, args.nodes, args.covey, seed_last=args.seed_last)
            if not out["converged"]:
                print(f"run {r}: not converged within 40 s")
                continue
            print(
                f"run {r}: join {out['join_s']:.2f} s from spawn, seed served at "
                f"{out['seed_served_s']:.2f} s, last agent at {out['last_served_s']:.2f} s, "
                f"converged {out['after_last_served_s']:.3f} s after the last served"
            )
    finally:
        reg.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
