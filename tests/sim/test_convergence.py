"""Simulated clusters converge to full, identical membership."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from covey.core import MemberState
from covey.sim import LinkModel, Simulation

from .helpers import build, views


@pytest.mark.parametrize("n", [5, 50, 500])
def test_static_join_converges_to_identical_views(n: int) -> None:
    sim = build(n, seed=n, record_events=False)
    sim.network.multicast = False  # the harder path: seeds and gossip only
    t = sim.run_until_true(sim.converged, timeout=60.0, step=0.25)
    assert t is not None, f"{n} nodes did not converge in 60 virtual seconds"
    vs = views(sim, sim.running())
    assert all(len(v) == n for v in vs)
    assert all(v == vs[0] for v in vs), "views differ between nodes"
    assert all(s is MemberState.ALIVE for s, _ in vs[0].values())


def test_multicast_beacons_alone_form_the_cluster() -> None:
    sim = build(50, seed=3, join=False, record_events=False)
    t = sim.run_until_true(sim.converged, timeout=30.0, step=0.1)
    assert t is not None
    # Beacons go out at start: one network delay plus a join exchange is enough.
    assert t < 2.0


def test_encrypted_cluster_converges_and_drops_nothing() -> None:
    sim = build(10, seed=4, keys=[Fernet.generate_key()])
    assert sim.run_until_true(sim.converged, timeout=30.0) is not None
    sim.run_for(20.0)
    for h in sim.running():
        drops = h.node.statistics().drops
        assert set(drops) <= {"duplicate"}, drops  # only the network's own duplicates


def test_nodes_with_another_key_or_cluster_stay_out() -> None:
    key = Fernet.generate_key()
    sim = build(5, seed=5, keys=[key])
    sim.keys = [Fernet.generate_key()]
    stranger = sim.add_node("stranger")
    sim.keys = [key]
    sim.cluster = "other"
    foreigner = sim.add_node("foreigner")
    sim.run_for(30.0)
    members = [h for h in sim.hosts.values() if h not in (stranger, foreigner)]
    assert sim.converged(members)
    for h in members:
        names = {m.name for m in h.node.members()}
        assert "stranger" not in names and "foreigner" not in names
        drops = h.node.statistics().drops
        assert drops.get("bad_key", 0) > 0 and drops.get("foreign_cluster", 0) > 0


def test_join_through_a_lossy_network_still_converges() -> None:
    sim = build(30, seed=6, link=LinkModel(loss=0.2), record_events=False)
    assert sim.run_until_true(sim.converged, timeout=120.0, step=0.5) is not None


def test_a_seed_replays_exactly() -> None:
    def run() -> list[tuple[float, str, str, str]]:
        sim = build(20, seed=99, link=LinkModel(loss=0.1, duplicate=0.05))
        sim.run_for(10.0)
        sim.crash("n4")
        sim.pause("n7", 3.0)
        sim.run_for(30.0)
        return [
            (t, h.name, type(e).__name__, getattr(getattr(e, "member", None), "name", ""))
            for h in sim.hosts.values()
            for t, e in h.events
        ]

    first, second = run(), run()
    assert first == second
    assert len(first) > 100


def test_different_seeds_differ() -> None:
    a = Simulation(1)
    b = Simulation(2)
    assert a.add_node().config.node_id != b.add_node().config.node_id
