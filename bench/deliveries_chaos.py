"""Deliveries chaos at full size: issue 11's 1,000 seeds, invariants checked per seed.

Usage::

    .venv/bin/python bench/deliveries_chaos.py --seeds 1000 --workers 2

Each seed creates deliveries on two owners through loss, pauses, receiver crashes and
owner restarts, heals, and waits for every delivery to end; see covey.sim.deliveries_chaos
for the invariants (nothing lost, nothing completed twice, never beyond K, handlers at
most once). Prints one line per failing seed (it replays exactly with ``--first SEED
--seeds 1``), a progress line every 100 seeds and a summary; exits 1 if any broke.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time

from covey.sim.deliveries_chaos import ChaosResult, run_chaos


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--first", type=int, default=0, help="first seed")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    start = time.monotonic()
    seeds = range(a.first, a.first + a.seeds)
    totals = {"created": 0, "complete": 0, "failed": 0, "restarts": 0, "steps": 0}
    broken: list[ChaosResult] = []
    with multiprocessing.Pool(a.workers) as pool:
        for i, r in enumerate(pool.imap_unordered(run_chaos, seeds, chunksize=8), 1):
            totals["created"] += r.created
            totals["complete"] += r.complete
            totals["failed"] += r.failed
            totals["restarts"] += r.owner_restarts
            totals["steps"] += r.steps
            if not r.ok:
                broken.append(r)
                print(f"FAILED seed {r.seed}: {r.violations[0]}", flush=True)
            if i % 100 == 0:
                print(f"{i}/{len(seeds)} seeds, {time.monotonic() - start:.0f} s", flush=True)
    took = time.monotonic() - start
    print(
        f"{len(seeds)} seeds in {took:.0f} s: {totals['created']} deliveries created, "
        f"{totals['complete']} complete, {totals['failed']} failed (ended with a reason), "
        f"{totals['restarts']} owner restarts, {totals['steps']} steps; "
        f"{len(broken)} seeds broke an invariant"
    )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
