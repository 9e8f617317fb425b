"""Election chaos at full size: many seeds x hours of virtual time, invariants after every step.

Usage::

    .venv/bin/python bench/election_chaos.py --seeds 1000 --hours 2 --workers 2
    .venv/bin/python bench/election_chaos.py --rule default --seeds 1000 --hours 2

``--rule expected`` (the default here) configures ``expected_votes`` on every node and
starts the chaos at once, during the bootstrap; ``--rule default`` tracks the size (no
flag on the nodes), forms the cluster by real joins, then starts the chaos.

Prints one line per failing seed (it replays exactly with ``--first SEED --seeds 1``) and a
summary; exits 1 if any invariant broke. See covey.sim.election_chaos for what is checked.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time

from covey.sim.election_chaos import RULES, ChaosResult, run_chaos


def _one(args: tuple[int, float, str, float]) -> ChaosResult:
    seed, hours, rule, warmup = args
    return run_chaos(seed, hours, rule=rule, warmup=warmup)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--first", type=int, default=0, help="first seed")
    ap.add_argument("--hours", type=float, default=2.0, help="virtual hours per seed")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rule", choices=RULES, default="expected", help="election rule")
    ap.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="rule expected: seconds before the chaos starts (0: during the bootstrap)",
    )
    a = ap.parse_args()
    start = time.monotonic()
    jobs = [(s, a.hours, a.rule, a.warmup) for s in range(a.first, a.first + a.seeds)]
    totals = {"steps": 0, "actions": 0, "fences": 0, "panics": 0, "liveness": 0, "terms": 0}
    failed: list[ChaosResult] = []
    with multiprocessing.Pool(a.workers) as pool:
        for i, r in enumerate(pool.imap_unordered(_one, jobs, chunksize=4), 1):
            totals["steps"] += r.steps
            totals["actions"] += r.actions
            totals["fences"] += r.fences
            totals["panics"] += r.panics
            totals["liveness"] += r.liveness_checks
            totals["terms"] += r.terms
            if not r.ok:
                failed.append(r)
                print("FAILED", r.violations[0], flush=True)
            if i % 50 == 0:
                print(f"{i}/{len(jobs)} seeds, {time.monotonic() - start:.0f} s", flush=True)
    took = time.monotonic() - start
    print(
        f"rule {a.rule}: seeds {a.seeds} (first {a.first}) x {a.hours} h virtual = "
        f"{a.seeds * a.hours:.0f} h; "
        f"wall {took:.0f} s with {a.workers} workers"
    )
    print(
        f"steps {totals['steps']}, chaos actions {totals['actions']}, terms {totals['terms']}, "
        f"fencings {totals['fences']}, panics {totals['panics']}, "
        f"liveness checks {totals['liveness']}"
    )
    print("all invariants held" if not failed else f"{len(failed)} seeds FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
