"""Randomized election chaos over many seeds (the CI-sized subset of bench/election_chaos.py).

Each seed runs five nodes for half an hour of virtual time through partitions, loss,
crashes, restarts, host losses, pauses and clock jumps, with the invariants of
:mod:`covey.sim.election_chaos` checked after every simulator step.
"""

from __future__ import annotations

import os

import pytest

from covey.core.election import ElectionConfig
from covey.sim.election_chaos import ChaosRun, run_chaos

SEEDS = int(os.environ.get("COVEY_CHAOS_SEEDS", "100"))
HOURS = 0.5


#: Seeds of this subset on which a settled majority stays leaderless too long: the known,
#: open liveness defect (7 of 1,000 seeds in the full run, docs/benchmarks.md). Safety
#: holds on them; a new seed here, or any safety violation anywhere, fails the test.
KNOWN_LIVENESS_GAPS = {66}


def test_invariants_hold_over_many_seeds() -> None:
    unsafe = []
    leaderless = set()
    checks = fences = 0
    for seed in range(SEEDS):
        r = run_chaos(seed, HOURS)
        checks += r.liveness_checks
        fences += r.fences
        for v in r.violations:
            if "leaderless" in v:
                leaderless.add(seed)
            else:
                unsafe.append(v)
    # A failing seed replays exactly: run_chaos(seed, 0.5).
    assert not unsafe, "\n".join(unsafe)
    assert leaderless <= KNOWN_LIVENESS_GAPS, f"new leaderless seeds: {leaderless}"
    # The runs did exercise what they check.
    assert checks > SEEDS and fences > SEEDS


@pytest.mark.xfail(
    strict=True,
    reason="open election liveness defect: a settled 3-of-5 majority can stay leaderless (issue 4)",
)
def test_known_liveness_gap_is_closed() -> None:
    for seed in sorted(KNOWN_LIVENESS_GAPS):
        assert run_chaos(seed, HOURS).ok


def test_same_seed_replays_exactly() -> None:
    a, b = run_chaos(7, 0.2), run_chaos(7, 0.2)
    assert (a.steps, a.terms, a.fences, a.actions) == (b.steps, b.terms, b.fences, b.actions)


@pytest.mark.parametrize("seed", [0, 3])
def test_the_checker_catches_an_unsafe_lease(seed: int) -> None:
    """A lease longer than the followers' wait breaks safety; the checker must see it."""
    run = ChaosRun(seed)
    unsafe = ElectionConfig.scaled(5, 1.0)
    object.__setattr__(unsafe, "lease", 20.0)  # bypasses the config check on purpose
    for host in run.sim.hosts.values():
        object.__setattr__(run.ext(host), "cfg", unsafe)
    run.cfg = unsafe
    result = run.run(1.0)
    assert any("two leaders" in v for v in result.violations)
