"""The node's public face: start, leave, set_tags, config checks and determinism."""

from __future__ import annotations

import random

import pytest

from covey.core import CoreConfig, Keyring, MemberState, MemberUpdated, Node, StreamPurpose
from covey.core.config import TAGS_LIMIT, ConfigError
from covey.core.wire.messages import Ack, Dead

from .helpers import KEY, World, drops, joined, make_node, node_id, of_type, seal, state, taken


def test_node_starts_only_once_and_needs_start() -> None:
    node = make_node(1, start=False)
    with pytest.raises(RuntimeError):
        node.set_tags({}, now=0.0)
    with pytest.raises(RuntimeError):
        node.leave(now=0.0)
    assert node.get_timer() is None
    node.start(now=0.0)
    with pytest.raises(RuntimeError):
        node.start(now=0.0)


def test_leave_tells_members_directly() -> None:
    world = joined(3)
    a, b, c = world.hosts
    world.sim.network.multicast = False  # lose the EXIT beacon
    mark = len(world.traffic.datagrams)
    world.sim.leave(c.name)  # the leave's output is handed over at once
    leaves = [(dst, m) for s, dst, m in world.traffic.messages(mark) if isinstance(m, Dead)]
    assert sorted(dst for dst, _ in leaves) == [a.address, b.address]
    assert all(m.left and m.node_id == m.sender == c.node.node_id for _, m in leaves)
    world.run_for(0.01)  # the links' delay
    assert state(a, c) is state(b, c) is MemberState.LEFT
    assert c.node.get_timer() is None
    # A node that left hears nothing any more.
    frame = seal([Ack(1)], sender=a.node.node_id, wall=world.now)
    c.node.receive_datagram(frame, a.address, now=1)
    assert drops(c) == {"after_leave": 1}


def test_set_tags_bumps_incarnation_and_emits_member_updated() -> None:
    world = joined(2)
    a, b = world.hosts
    a.node.set_tags({"version": "9000000"}, now=world.now)
    assert a.node.incarnation == 1
    [ev] = of_type(a.node.pop_events(), MemberUpdated, a)
    assert ev.member.tags == {"version": "9000000"} and ev.member.incarnation == 1
    world.run_for(1.0)
    assert b.node.member(a.node.node_id).tags == {"version": "9000000"}  # type: ignore[union-attr]
    assert of_type(taken(b), MemberUpdated, a)


def test_set_tags_refuses_oversized_tags() -> None:
    a = make_node(1)
    with pytest.raises(ConfigError):
        a.set_tags({"k": "v" * TAGS_LIMIT}, now=0.0)
    with pytest.raises(ConfigError):
        a.set_tags({"": "v"}, now=0.0)
    assert a.incarnation == 0


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError):
        CoreConfig(node_id=b"x", name="n", cluster="c", address=("h", 1))
    with pytest.raises(ConfigError):
        CoreConfig(node_id=node_id(1), name="n", cluster="c", address=("h", 1), probe_timeout=2)
    with pytest.raises(ConfigError):
        CoreConfig(node_id=node_id(1), name="n", cluster="c", address=("h", 1), max_datagram=100)
    for retry in (0.0, -0.1, 31.0):  # positive, and within reconnect_max (30 s)
        with pytest.raises(ConfigError, match="join_retry_interval"):
            CoreConfig(
                node_id=node_id(1),
                name="n",
                cluster="c",
                address=("h", 1),
                join_retry_interval=retry,
            )


def test_same_seed_replays_exactly() -> None:
    def run() -> list[bytes]:
        world = World()
        for _ in range(3):
            world.add()
        world.run_until(20.0)
        return [d.data[:5] + bytes(str(d.address), "ascii") for _, d in world.traffic.datagrams]

    first, second = run(), run()
    assert first == second and len(first) > 20


def test_rng_is_the_only_randomness() -> None:
    cfg = CoreConfig(node_id=node_id(1), name="n1", cluster="test", address=("10.0.0.1", 1))
    a = Node(cfg, Keyring([KEY]), rng=random.Random(7), now=0.0)
    b = Node(cfg, Keyring([KEY]), rng=random.Random(7), now=0.0)
    c = Node(cfg, Keyring([KEY]), rng=random.Random(8), now=0.0)
    assert a.get_timer() is None
    for n in (a, b, c):
        n.start(now=0.0)
        n.handle_timer(now=0.0)
    assert a.get_timer() == b.get_timer()
    timers_a, timers_c = [], []
    for n, acc in ((a, timers_a), (c, timers_c)):
        for _ in range(8):
            t = n.get_timer()
            assert t is not None
            n.handle_timer(now=t)
            acc.append(t)
    assert timers_a != timers_c


def test_an_idle_node_wakes_once_per_probe_and_still_reconnects() -> None:
    # The soft duties (reap, reconnect tick, push-pull, periodic beacon, facts sweep) ride
    # on the probe's wake-up: a settled node's timer fires once per probe interval.
    world = joined(4, until=30.0)
    a = world.hosts[0]
    fired: list[float] = []
    handle = a.node.handle_timer

    def counting(*, now: float) -> None:
        fired.append(now)
        handle(now=now)

    a.node.handle_timer = counting  # type: ignore[method-assign]
    world.run_until(90.0)
    # 60 s at one probe a second (each with its probe step or two at most): before the
    # soft deadlines, the reconnect tick (~2 s), reap, beacons (5 s) each woke it too.
    assert 55 <= len(fired) <= 66, len(fired)
    # The soft duties still run, at most a probe interval late: a killed member is
    # found failed and then re-contacted by the reconnect tick.
    d = world.hosts[3]
    world.sim.crash(d.name)
    world.run_until(140.0)
    assert state(a, d) is MemberState.FAILED
    reconnects = [r for _, r in world.traffic.streams if r.purpose is StreamPurpose.RECONNECT]
    assert any(r.address == d.address for r in reconnects), "no reconnect to the failed member"
