"""Beacon silence when settled, and one-hop pushes of a node's own news."""

from __future__ import annotations

from covey.core import MemberState
from covey.sim import LinkModel, Simulation

from .helpers import build


def beacons_sent(sim: Simulation, start: float, end: float) -> int:
    """Datagrams to the discovery group sent between ``start`` and ``end``."""
    count = 0
    for h in sim.hosts.values():
        count += sum(1 for t, addr in h_log(h) if addr is None and start <= t < end)
    return count


def h_log(h: object) -> list[tuple[float, object]]:
    return getattr(h, "_log", [])


def record_sends(sim: Simulation) -> None:
    """Log every datagram's (time, destination) per host."""
    for h in sim.hosts.values():
        node = h.node
        orig = node.datagrams_to_send
        log: list[tuple[float, object]] = []
        h._log = log  # type: ignore[attr-defined]

        def wrapped(*, now: float, _orig=orig, _log=log):  # type: ignore[no-untyped-def]
            out = _orig(now=now)
            _log.extend((now, d.address) for d in out)
            return out

        node.datagrams_to_send = wrapped  # type: ignore[method-assign]


def test_a_settled_cluster_sends_no_periodic_beacons() -> None:
    sim = build(10, seed=30, join=False)
    record_sends(sim)
    assert sim.run_until_true(sim.converged, timeout=10.0) is not None
    sim.run_for(10.0)  # past the fast-start beacons
    t0 = sim.now
    sim.run_for(60.0)
    assert beacons_sent(sim, t0, sim.now) == 0
    # Idle traffic is then exactly the probes: one ping and one ack per node per second.
    sent = sum(1 for h in sim.hosts.values() for t, _ in h_log(h) if t >= t0)
    assert abs(sent / 10 / 60.0 - 2.0) < 0.1


def test_a_node_missing_a_member_keeps_beaconing() -> None:
    sim = build(5, seed=31, join=False)
    assert sim.run_until_true(sim.converged, timeout=10.0) is not None
    record_sends(sim)
    sim.crash("n4")
    sim.run_for(10.0)
    t0 = sim.now
    sim.run_for(30.0)
    # Every survivor searches for the failed member: about one beacon per 5 s each.
    assert beacons_sent(sim, t0, sim.now) >= 4 * 4


def test_own_tag_change_reaches_a_small_cluster_in_one_hop() -> None:
    delay = 0.005
    sim = build(12, seed=32, link=LinkModel(delay=delay, jitter=0.0))
    assert sim.run_until_true(sim.converged, timeout=10.0) is not None
    origin = sim.hosts["n7"]
    origin.node.set_tags({"release": "2"}, now=sim.now)
    sim._flush(origin)
    sim.run_for(delay * 1.001)
    for h in sim.hosts.values():
        m = h.node.table.get(origin.config.node_id)
        assert m is not None and m.state is MemberState.ALIVE
        assert m.tags == {"release": "2"}, h.name


def test_large_clusters_do_not_push_directly() -> None:
    sim = build(30, seed=33, direct_push_limit=16)
    assert sim.run_until_true(sim.converged, timeout=30.0) is not None
    origin = sim.hosts["n3"]
    record_sends(sim)
    origin.node.set_tags({"x": "1"}, now=sim.now)
    sim._flush(origin)
    # Only the eager push (gossip_nodes = 3 datagrams) goes out at once, not 29.
    now_sends = [a for t, a in h_log(origin) if t == sim.now and a is not None]
    assert len(now_sends) <= 3
    sim.run_for(5.0)
    assert all(
        h.node.table.get(origin.config.node_id).tags == {"x": "1"}  # type: ignore[union-attr]
        for h in sim.hosts.values()
    )


def test_anti_entropy_of_a_large_cluster_is_spread_out() -> None:
    """The first push-pull honours the interval scaled for the cluster's size.

    200 members scale memberlist's 30 s interval to 120 s; scheduled as if alone, every
    node used to sync within 45 s of start, a burst of N exchanges of N records each.
    """
    sim = Simulation(34, record_events=False)
    sim.network.multicast = False
    hosts = sim.bootstrap(200)
    start = sum(h.node.counters.streams_opened for h in hosts)
    sim.run_for(60.0)
    opened = sum(h.node.counters.streams_opened for h in hosts) - start
    assert opened < 20, f"{opened} exchanges in the first minute"
    sim.run_for(240.0)
    total = sum(h.node.counters.streams_opened for h in hosts) - start
    # Over 300 s each node syncs about every 120 s (±25 %): roughly 2 each.
    assert 200 <= total <= 3 * 200


def test_a_restarted_member_rejoins_a_settled_cluster_by_beacons_alone() -> None:
    """Settled members send no beacons; they must still answer a known member's restart."""
    sim = build(10, seed=35, join=False)
    assert sim.run_until_true(sim.converged, timeout=10.0) is not None
    sim.run_for(30.0)  # settled: nobody beacons any more
    host = sim.hosts["n4"]
    sim.crash(host.name)
    # Same node id, another port (an agent restarted without a fixed port), an empty
    # table and no seeds: its beacons are all it has, and peers probe its old address.
    sim.restart(host.name, port=7999)
    start = sim.now
    t = sim.run_until_true(
        lambda: host.node.table.live_count == 10 and sim.converged(), timeout=30.0, step=0.01
    )
    assert t is not None, "the restarted member never rejoined"
    # Its first INIT beacon is answered at once; nobody waits to find its old port dead.
    assert t - start < 1.0, f"rejoined after {t - start:.2f} s"


def test_two_nodes_starting_together_do_not_answer_each_other_for_ever() -> None:
    """An INIT answer says READY, so it is never answered in turn."""
    sim = Simulation(36, link=LinkModel(delay=0.001, jitter=0.0))
    sim.add_node()
    sim.add_node()
    record_sends(sim)
    sim.run_until_true(lambda: sim.steps > 20_000 or sim.now >= 10.0, timeout=10.0)
    beacons = beacons_sent(sim, 0.0, sim.now + 1) + sum(
        1 for h in sim.hosts.values() for t, a in h_log(h) if a is not None and t < 1.0
    )
    assert sim.now >= 10.0, "the simulation stalled in an endless exchange"
    assert beacons < 60
