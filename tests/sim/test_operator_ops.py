"""Serf's operator commands on members, in the core: force-leave and round trips."""

from __future__ import annotations

import pytest

from covey.core import MemberLeft, MemberReaped, MemberState
from covey.sim import LinkModel, Simulation

from .helpers import all_see


def _cluster(n: int, seed: int, **config: object) -> Simulation:
    sim = Simulation(seed, link=LinkModel(delay=0.004, jitter=0.0))
    first = sim.add_node(**config)
    for _ in range(n - 1):
        sim.add_node(join=[first.name], **config)
    assert sim.run_until_true(sim.converged, timeout=30.0) is not None
    return sim


def test_force_leave_marks_a_failed_member_left_everywhere_and_it_goes_sooner() -> None:
    sim = _cluster(6, seed=41, reap_failed_after=600.0, reap_left_after=30.0)
    victim = sim.hosts["n4"]
    sim.crash(victim.name)
    assert sim.run_until_true(lambda: all_see(sim, victim, MemberState.FAILED), timeout=60.0)
    operator = sim.hosts["n1"]
    gone = operator.node.force_leave(victim.config.node_id, now=sim.now)
    assert gone.name == "n4"
    assert operator.node.table.get(victim.config.node_id).state is MemberState.LEFT
    # The verdict is gossiped: every survivor sees the member left, and says so once.
    assert sim.run_until_true(lambda: all_see(sim, victim, MemberState.LEFT), timeout=30.0)
    for h in sim.running():
        lefts = [e for _, e in h.events if isinstance(e, MemberLeft) and e.member.name == "n4"]
        assert len(lefts) == 1, h.name
    # Forgotten after the left retention (30 s), long before the failed one (600 s).
    forgotten = sim.run_until_true(
        lambda: all(h.node.table.get(victim.config.node_id) is None for h in sim.running()),
        timeout=120.0,
    )
    assert forgotten is not None
    assert all(any(isinstance(e, MemberReaped) for _, e in h.events) for h in sim.running())


def test_force_leave_refuses_live_unknown_and_self() -> None:
    sim = _cluster(3, seed=42)
    a, b = sim.hosts["n0"], sim.hosts["n1"]
    with pytest.raises(ValueError, match="n1 is alive; only a failed member"):
        a.node.force_leave(b.config.node_id, now=sim.now)
    with pytest.raises(ValueError, match="this node"):
        a.node.force_leave(a.config.node_id, now=sim.now)
    with pytest.raises(KeyError):
        a.node.force_leave(b"\x00" * 16, now=sim.now)
    sim.run_for(10.0)
    assert all(m.state is MemberState.ALIVE for h in sim.running() for m in h.node.members())


def test_round_trips_are_measured_by_direct_probes() -> None:
    sim = _cluster(4, seed=43)
    a = sim.hosts["n0"]
    sim.run_for(30.0)  # every member probed several times
    for name in ("n1", "n2", "n3"):
        rt = a.node.round_trip(sim.hosts[name].config.node_id)
        assert rt is not None, name
        # The link delays each datagram by 4 ms: a ping and its ack take 8 ms.
        assert rt.low == pytest.approx(0.008, abs=1e-6)
        assert rt.smoothed == pytest.approx(0.008, abs=1e-6)
        assert rt.samples >= 3
    assert a.node.round_trip(a.config.node_id) is None
