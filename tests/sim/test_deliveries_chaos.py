"""Deliveries under seeded chaos (the CI-sized subset of the 1,000 seeds of issue 11).

Each seed creates about a dozen deliveries of one or two stages on two owners through
loss, pauses, receiver crashes and owner restarts, then heals and waits for every
delivery to end; :mod:`covey.sim.deliveries_chaos` lists the invariants.
"""

from __future__ import annotations

import os

from covey.sim.deliveries_chaos import run_chaos

SEEDS = int(os.environ.get("COVEY_DELIVERY_SEEDS", "100"))


def test_nothing_lost_nothing_twice_never_beyond_k_over_many_seeds() -> None:
    violations: list[str] = []
    created = complete = restarts = 0
    for seed in range(SEEDS):
        r = run_chaos(seed)
        violations += r.violations
        created += r.created
        complete += r.complete
        restarts += r.owner_restarts
    # A failing seed replays exactly: run_chaos(seed).
    assert not violations, "\n".join(violations)
    # The runs did exercise something: deliveries ended, owners restarted.
    assert created >= 8 * SEEDS and complete >= 0.9 * created
    assert restarts >= SEEDS


def test_a_seed_replays_exactly() -> None:
    a, b = run_chaos(3), run_chaos(3)
    assert (a.created, a.complete, a.failed, a.steps) == (b.created, b.complete, b.failed, b.steps)
