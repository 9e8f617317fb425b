"""Partitions: each side gives up on the other, and after healing all converge unaided."""

from __future__ import annotations

import pytest

from covey.core import MemberState
from covey.sim import LinkModel

from .helpers import all_see, build


@pytest.mark.parametrize("multicast", [True, False])
def test_half_and_half_partition_then_heal(multicast: bool) -> None:
    sim = build(20, seed=20 + multicast, link=LinkModel(loss=0.02))
    sim.network.multicast = multicast
    assert sim.run_until_true(sim.converged, timeout=60.0) is not None
    hosts = list(sim.hosts.values())
    left, right = hosts[:10], hosts[10:]
    sim.network.partition([h.name for h in left], [h.name for h in right])

    def split() -> bool:
        return all(all_see(sim, h, MemberState.FAILED, left) for h in right) and all(
            all_see(sim, h, MemberState.FAILED, right) for h in left
        )

    assert sim.run_until_true(split, timeout=180.0, step=0.5) is not None
    # Each side is whole within itself, and the cluster as a whole is not.
    assert sim.converged(left) and sim.converged(right) and not sim.converged()
    sim.network.heal()
    start = sim.now
    t = sim.run_until_true(sim.converged, timeout=300.0, step=0.5)
    assert t is not None, "the two halves did not find each other again"
    print(f"healed partition converged after {t - start:.1f} virtual s (multicast={multicast})")


def test_isolated_single_node_rejoins_after_long_partition() -> None:
    """memberlist issue 222: a node cut off alone must find its way back by itself."""
    sim = build(10, seed=22)
    sim.network.multicast = False
    assert sim.run_until_true(sim.converged, timeout=60.0) is not None
    loner = sim.hosts["n0"]  # the seed itself, to make it hard
    others = [h.name for h in sim.hosts.values() if h is not loner]
    sim.network.partition([loner.name], others)
    sim.run_for(600.0)
    assert all_see(sim, loner, MemberState.FAILED)
    sim.network.heal()
    assert sim.run_until_true(sim.converged, timeout=300.0, step=0.5) is not None
