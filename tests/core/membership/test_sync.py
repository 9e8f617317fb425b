"""Full-state exchange (push-pull): joins through seeds, tags too big for a datagram,
answering a push-pull, and finding the way back after a partition."""

from __future__ import annotations

import msgpack

from covey.core import MAX_DATAGRAM, MemberState, Node, StreamPurpose
from covey.core.config import TAGS_LIMIT
from covey.core.effects import StreamRequest
from covey.core.wire.frame import FrameType
from covey.core.wire.messages import Alive, MemberRecord, PushPull
from covey.sim.network import LinkModel

from .helpers import PEER, World, joined, make_node, node_id, open_frame, seal, state

BIG_TAGS = {f"key{i:03d}": "v" * 30 for i in range(110)}  # about 4 KiB encoded


def test_join_through_seed_addresses_without_beacons() -> None:
    world = World()
    world.sim.network.multicast = False  # no discovery traffic at all
    a = world.add()
    b = world.add(join=[a.name])
    # c's seeds include its own address. The simulator boots a host with its seeds when
    # it is (re)started, so c is created stopped, given them, and started by restart
    # (which builds a fresh, untapped node: this test reads no traffic).
    c = world.add(start=False)
    c.seeds = [b.address, c.address]
    world.sim.restart(c.name)
    world.run_until(15.0)
    for x in (a, b, c):
        for y in (a, b, c):
            assert state(x, y) is MemberState.ALIVE
    assert b.node.joined and c.node.joined


def test_partitioned_nodes_find_their_way_back() -> None:
    world = joined(2)
    a, b = world.hosts
    world.sim.network.multicast = False  # no beacons to help them
    world.sim.network.partition([a.name], [b.name])
    world.run_for(30.0)
    assert state(a, b) is MemberState.FAILED
    assert state(b, a) is MemberState.FAILED
    world.sim.network.heal()
    mark = len(world.traffic.streams)
    world.run_for(35.0)
    assert state(a, b) is MemberState.ALIVE
    assert state(b, a) is MemberState.ALIVE
    assert any(r.purpose is StreamPurpose.RECONNECT for _, r in world.traffic.streams[mark:])


def test_large_tags_reach_the_other_node_by_push_pull() -> None:
    world = joined(2)
    a, b = world.hosts
    assert 3800 < len(msgpack.packb(BIG_TAGS)) <= TAGS_LIMIT
    mark, smark = len(world.traffic.datagrams), len(world.traffic.streams)
    a.node.set_tags(BIG_TAGS, now=world.now)
    world.run_for(5.0)
    assert b.node.member(a.node.node_id).tags == BIG_TAGS  # type: ignore[union-attr]
    assert all(len(d.data) <= MAX_DATAGRAM for _, d in world.traffic.datagrams[mark:])
    # the alive that went by datagram said only "changed" (no tags) ...
    alives = [m for _, _, m in world.traffic.messages(mark) if isinstance(m, Alive)]
    assert alives and all(m.tags is None for m in alives if m.node_id == a.node.node_id)
    # ... and b fetched them with a push-pull
    assert any(
        s == b.address and r.purpose is StreamPurpose.PUSH_PULL
        for s, r in world.traffic.streams[smark:]
    )


def test_large_tags_cost_exactly_one_incarnation() -> None:
    world = joined(2)
    a, _b = world.hosts
    a.node.set_tags(BIG_TAGS, now=world.now)
    world.run_for(10.0)
    assert a.node.incarnation == 1


def test_stale_tags_from_a_third_node_do_not_complete_a_record() -> None:
    # No periodic anti-entropy here: only the tag-fetching mechanism is under test.
    world = World(push_pull_interval=1000.0)
    a = world.add(tags={"v": "1"})
    b = world.add()
    world.run_until(10.0)
    assert state(a, b) is state(b, a) is MemberState.ALIVE
    net = world.sim.network
    # Everything a sends b is lost (its beacons too, which only makes the case harder).
    net.set_link(a.name, b.name, LinkModel(loss=1.0), both=False)
    a.node.set_tags({"v": "2", "pad": "x" * 600}, now=world.now)  # too big for a datagram
    world.run_for(1.0)
    # b hears the tag-less alive, and the push-pull it opens to fetch the tags is lost
    inc = a.node.incarnation
    alive = Alive(inc, a.node.node_id, a.name, a.address, None)
    frame = seal([alive], sender=a.node.node_id, wall=world.now)
    b.node.receive_datagram(frame, a.address, now=world.now)
    b.node.streams_to_open(now=world.now)
    # c, which also only heard the tag-less alive, syncs with b first: its record of a
    # has the new incarnation and, correctly, no tags (it does not have them either)
    stale = MemberRecord(a.node.node_id, a.name, a.address, inc, MemberState.ALIVE, None)
    req = seal(
        [PushPull(False, False, (stale,))],
        sender=node_id(3),
        ftype=FrameType.STREAM_REQUEST,
        wall=world.now,
    )
    assert b.node.handle_stream(req, ("10.0.0.3", 40000), now=world.now) is not None
    # b's next good probe of a reminds it that it still owes itself a's tags
    net.set_link(a.name, b.name, net.default, both=False)
    world.run_for(8.0)
    want = a.node.member(a.node.node_id).tags  # type: ignore[union-attr]
    assert b.node.member(a.node.node_id).tags == want  # type: ignore[union-attr]


def test_push_pull_request_gets_the_whole_table() -> None:
    node = make_node(1, tags={"role": "db"})
    rec_peer = Alive(3, PEER, "n2", ("10.0.0.2", 7946), {"a": "b"})
    node.receive_datagram(seal([rec_peer], sender=PEER), ("h", 1), now=1.0)
    theirs = MemberRecord(node_id(3), "n3", ("10.0.0.3", 7946), 2, MemberState.ALIVE, {})
    req = seal(
        [PushPull(False, False, (theirs,))], sender=node_id(3), ftype=FrameType.STREAM_REQUEST
    )
    reply = node.handle_stream(req, ("h", 1), now=1.0)
    assert reply is not None
    [pp] = open_frame(reply)[2]
    assert isinstance(pp, PushPull) and pp.reply and not pp.join
    by_id = {r.node_id: r for r in pp.members}
    assert set(by_id) == {node.node_id, PEER, node_id(3)}
    assert by_id[node.node_id].tags == {"role": "db"}
    assert by_id[PEER].incarnation == 3
    assert state(node, make_node(3, start=False)) is MemberState.ALIVE


def _run_until_stream(node: Node, now: float, limit: float) -> tuple[float, StreamRequest]:
    """Run the node's timers from ``now`` until it opens a stream (at most ``limit`` s)."""
    end = now + limit
    while now <= end:
        if streams := node.streams_to_open(now=now):
            assert len(streams) == 1, streams
            return now, streams[0]
        deadline = node.get_timer()
        assert deadline is not None
        now = max(now, deadline)
        node.handle_timer(now=now)
        node.datagrams_to_send(now=now)  # beacons: not looked at here
    raise AssertionError(f"no stream opened within {limit} s")


def test_a_refused_start_up_join_is_retried_soon_then_with_back_off() -> None:
    node = make_node(1, reconnect_interval=10.0)  # the reconnect loop stays out of the way
    seed = ("10.0.0.2", 7946)
    node.join([seed], now=0.0)
    (first,) = node.streams_to_open(now=0.0)
    assert (first.address, first.purpose) == (seed, StreamPurpose.JOIN)
    now, req, gaps = 0.0, first, []
    for _ in range(4):  # the seed is not up yet: nothing listens on its port
        node.stream_failed(req.request_id, refused=True, now=now)
        at, req = _run_until_stream(node, now, 5.0)
        assert (req.address, req.purpose) == (seed, StreamPurpose.JOIN)
        gaps.append(at - now)
        now = at
    # 0.1-0.2 s at first (jitter), then each delay doubles.
    for k, gap in enumerate(gaps):
        assert 0.1 * 2**k <= gap <= 0.2 * 2**k + 1e-9, gaps
    # The seed answers: joined, and no more join retries (only the reconnect loop, 2 s).
    member = MemberRecord(PEER, "n2", seed, 1, MemberState.ALIVE, {})
    reply = PushPull(join=False, reply=True, members=(member,), ext=None)
    node.stream_reply(
        req.request_id, seal([reply], sender=PEER, ftype=FrameType.STREAM_REPLY), now=now
    )
    assert node.joined and state(node, node) is MemberState.ALIVE
    purposes, end = [], now + 20.0
    while now < end:
        now = max(now, node.get_timer() or end)
        node.handle_timer(now=now)
        node.datagrams_to_send(now=now)
        purposes += [s.purpose for s in node.streams_to_open(now=now)]
    assert StreamPurpose.JOIN not in purposes, purposes


def test_failed_joins_do_not_stretch_the_reconnect_delay() -> None:
    node = make_node(1)
    seed = ("10.0.0.2", 7946)
    node.join([seed], now=0.0)
    (req,) = node.streams_to_open(now=0.0)
    now = 0.0
    reconnects = []
    while now < 6.5:  # every attempt refused: joins every 0.1-1.6 s, reconnects at ~2 s
        node.stream_failed(req.request_id, refused=True, now=now)
        now, req = _run_until_stream(node, now, 5.0)
        if req.purpose is StreamPurpose.RECONNECT:
            reconnects.append(now)
    # Before, every failed join doubled the reconnect delay (4, 8, 16 s...): one at most.
    assert reconnects and reconnects[0] <= 2.5
    assert len(reconnects) >= 2, reconnects
