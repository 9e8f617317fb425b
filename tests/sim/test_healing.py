"""Every partition heals, whatever the reap time (memberlist issue 222).

Each split lasts ten times the reap time, so both sides have reaped each other (the
members sit in the bounded lost set); after the heal the cluster must be one view again
within 60 virtual seconds, with no operator action. Discovery is either static seeds only
(multicast off) or beacons only (multicast on, no seed given).
"""

from __future__ import annotations

import pytest

from covey.core.wire.messages import Alive
from covey.sim import Simulation

REAP = 30.0

# (group sizes, whether the first group holds the seed n0 alone): 1|9 with the seed
# alone and 9|1 with a non-seed alone cover both directions of the lone side.
SPLITS = {"5|5": (5, 5), "1|9 seed alone": (1, 9), "9|1 non-seed alone": (9, 1), "3|3|4": (3, 3, 4)}


#: discovery mode -> (static seeds given, multicast gets through)
MODES = {
    "seeds-no-multicast": (True, False),
    "seeds-and-multicast": (True, True),
    "beacons-only": (False, True),
}


def _build(seed: int, *, seeds: bool, multicast: bool = True) -> Simulation:
    sim = Simulation(seed, reap_failed_after=REAP)
    sim.network.multicast = multicast
    first = sim.add_node()
    for _ in range(9):
        sim.add_node(join=[first.name] if seeds else [])
    return sim


@pytest.mark.parametrize("split", list(SPLITS), ids=list(SPLITS))
@pytest.mark.parametrize("mode", list(MODES), ids=list(MODES))
def test_split_longer_than_reap_heals(split: str, mode: str) -> None:
    seeds, multicast = MODES[mode]
    sim = _build(
        10 * list(SPLITS).index(split) + list(MODES).index(mode), seeds=seeds, multicast=multicast
    )
    assert sim.run_until_true(sim.converged, timeout=60.0) is not None
    names = list(sim.hosts)
    groups, start = [], 0
    for size in SPLITS[split]:
        groups.append(names[start : start + size])
        start += size
    sim.network.partition(*groups)
    sim.run_for(10 * REAP)
    for group in groups:
        others = {n for n in names if n not in group}
        for name in group:
            table = sim.hosts[name].node.table
            # Reaped on both sides: the other side is gone from the table, kept as lost.
            assert not others & {m.name for m in table.members.values()}
            assert {m.name for m in table.lost} == others
    sim.network.heal()
    healed_at = sim.now
    t = sim.run_until_true(sim.converged, timeout=60.0, step=0.5)
    assert t is not None, f"{split} did not heal within 60 s ({mode})"
    assert all(not h.node.table.lost for h in sim.hosts.values())
    print(f"{split} {mode}: one view {t - healed_at:.1f} virtual s after the heal")


def test_reaped_member_is_not_revived_by_third_party_news() -> None:
    """A stale alive record of a dead, reaped member does not bring it back."""
    sim = _build(7, seeds=True)
    assert sim.run_until_true(sim.converged, timeout=60.0) is not None
    dead = sim.hosts["n9"]
    sim.host_down("n9")
    sim.run_for(3 * REAP)
    observer = sim.hosts["n1"].node
    assert dead.config.node_id in observer.table.lost
    lost = next(m for m in observer.table.lost if m.node_id == dead.config.node_id)
    stale = Alive(lost.incarnation, lost.node_id, lost.name, lost.address, {})
    observer.table.apply_alive(stale, sim.now)
    m = observer.table.get(dead.config.node_id)
    assert m is not None and m.state.label == "failed"
    sim.run_for(30.0)
    m = observer.table.get(dead.config.node_id)
    assert m is None or m.state.label == "failed"


def _searching_rate(n: int) -> float:
    """Datagrams sent per node and second by a cluster of ``n`` that has a dead member
    reaped into its lost set (so it beacons and retries for ever)."""
    sim = Simulation(3, record_events=False, reap_failed_after=REAP)
    hosts = sim.bootstrap(n)
    sim.run_for(5.0)
    sim.host_down(hosts[-1].name)
    sim.run_for(3 * REAP + 60.0)
    live = hosts[:-1]
    assert all(hosts[-1].config.node_id in h.node.table.lost for h in live)
    before = sum(h.node.statistics().datagrams_sent for h in live)
    sim.run_for(120.0)
    after = sum(h.node.statistics().datagrams_sent for h in live)
    return (after - before) / 120.0 / len(live)


def test_search_traffic_per_node_is_flat_in_n() -> None:
    """Beacons and retries of a cluster that misses a member stay a fixed handful for the
    whole cluster, so each node's traffic does not grow with N (tight figures: the bench)."""
    small, large = _searching_rate(10), _searching_rate(100)
    assert large < 1.5 * small, (small, large)
