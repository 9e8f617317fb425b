"""Dissemination: the frames a node sends, its beacons, and what gossip carries."""

from __future__ import annotations

import itertools

import msgpack
import pytest
from cryptography.fernet import Fernet

from covey.core import MAX_DATAGRAM, MemberJoined, MemberLeft, MemberState, StreamPurpose
from covey.core.config import ConfigError
from covey.core.types import BeaconState
from covey.core.wire.frame import FrameType
from covey.core.wire.messages import Beacon, MemberRecord, PushPull

from .helpers import (
    KEY,
    PEER,
    World,
    drops,
    joined,
    make_node,
    node_id,
    of_type,
    open_frame,
    seal,
    state,
    taken,
)

# --------------------------------------------------------------------- the wire


def test_captured_datagram_opens_with_plain_fernet_and_msgpack() -> None:
    node = make_node(1)
    node.handle_timer(now=0.0)  # the first beacon is due at start
    [dgram] = node.datagrams_to_send(now=0.0)
    frame = dgram.data
    assert dgram.address is None  # the discovery group
    assert frame[:5] == b"CV\x01\x01\x01"
    assert len(frame) <= MAX_DATAGRAM
    body = Fernet(KEY).decrypt(frame[5:])
    cluster, sender, messages = msgpack.unpackb(body, raw=False)
    assert (cluster, sender) == ("test", node_id(1))
    assert messages == [[9, node_id(1), "n1", "10.0.0.1", 7946, 0, 0]]


def test_plaintext_node_sends_security_zero() -> None:
    node = make_node(1, plaintext=True)
    node.handle_timer(now=0.0)
    [dgram] = node.datagrams_to_send(now=0.0)
    assert dgram.data[:5] == b"CV\x01\x01\x00"
    assert msgpack.unpackb(dgram.data[5:])[0] == "test"


def test_every_datagram_fits_and_carries_a_message() -> None:
    world = joined(3)
    world.run_until(40.0)
    assert len(world.traffic.datagrams) > 50
    for _src, d in world.traffic.datagrams:
        assert len(d.data) <= MAX_DATAGRAM
        assert open_frame(d.data)[2], "a datagram with no message in it"


def test_longest_allowed_names_still_fit_a_datagram() -> None:
    with pytest.raises(ConfigError, match="name"):
        make_node(1, name="\u20ac" * 86)  # 258 octets of UTF-8
    name = "\u20ac" * 85  # 255 octets
    # The simulator names a host's address after it: the address is as long as the name.
    world = World(cluster=name)
    _a, b = world.add(name), world.add()
    world.run_until(5.0)
    assert max(len(d.data) for _, d in world.traffic.datagrams) <= MAX_DATAGRAM
    assert "oversized" not in drops(b)


def test_longest_ascii_names_fit_a_datagram() -> None:
    # Host name, cluster and address host of 255 octets each (the port takes 3 octets
    # whether it is the simulator's 7946 or 65535).
    world = World(cluster="c" * 255)
    a, b = world.add("n" * 255), world.add()
    world.run_until(5.0)
    assert state(b, a) is MemberState.ALIVE
    assert max(len(d.data) for _, d in world.traffic.datagrams) <= MAX_DATAGRAM


def test_large_tags_learned_by_push_pull_do_not_clog_gossip() -> None:
    world = joined(2)
    b, _c = world.hosts
    big = {f"key{i:03d}": "v" * 30 for i in range(110)}
    a_id = node_id(1)
    # (a name of its own: "n1" is held by the world's first host, and would be refused)
    rec = MemberRecord(a_id, "n9", ("10.0.0.1", 7946), 5, MemberState.ALIVE, big)
    req = seal(
        [PushPull(False, False, (rec,))],
        sender=a_id,
        ftype=FrameType.STREAM_REQUEST,
        wall=world.now,
    )
    assert b.node.handle_stream(req, ("10.0.0.1", 40000), now=world.now) is not None
    assert b.node.member(a_id).tags == big  # type: ignore[union-attr]
    mark = len(world.traffic.datagrams)
    world.run_for(20.0)
    empty = [
        d for s, d in world.traffic.datagrams[mark:] if s == b.address and not open_frame(d.data)[2]
    ]
    assert empty == []


# -------------------------------------------------------------------- beacons


def test_beacons_fast_start_then_interval_with_jitter() -> None:
    node = make_node(1, beacon_interval=5.0, beacon_jitter=0.25)
    beacons: list[tuple[float, Beacon]] = []
    now = 0.0
    while now < 80.0:
        node.handle_timer(now=now)
        for d in node.datagrams_to_send(now=now):
            if d.address is None:
                [msg] = open_frame(d.data)[2]
                assert isinstance(msg, Beacon)
                beacons.append((now, msg))
        nxt = node.get_timer()
        assert nxt is not None and nxt > now
        now = nxt
    stamps = [t for t, _ in beacons]
    # fast start: 0, then +0.25, +0.5, +1, +2 ...
    assert stamps[:5] == pytest.approx([0.0, 0.25, 0.75, 1.75, 3.75])
    assert [b.state for _, b in beacons[:5]] == [BeaconState.INIT] * 5
    # ... then READY every interval * (1 +- jitter)
    assert all(b.state is BeaconState.READY for _, b in beacons[5:])
    gaps = [b - a for a, b in itertools.pairwise(stamps[4:])]
    assert len(gaps) >= 10
    assert all(3.75 - 1e-9 <= g <= 6.25 + 1e-9 for g in gaps)
    assert len({round(g, 6) for g in gaps}) > 1  # jittered, not fixed
    assert all(b.node_id == node.node_id and b.address == node.config.address for _, b in beacons)


def test_two_nodes_find_each_other_by_beacon() -> None:
    world = World()
    a, b = world.add(), world.add()
    world.run_until(1.0)
    assert state(a, b) is state(b, a) is MemberState.ALIVE
    assert of_type(taken(a), MemberJoined, b)
    assert any(r.purpose is StreamPurpose.JOIN for _, r in world.traffic.streams)


def test_joining_through_a_beacon_does_not_bump_the_incarnation() -> None:
    world = World()
    a = world.add(tags={"role": "db"})
    b = world.add()
    world.run_until(10.0)
    assert a.node.member(a.node.node_id).tags == {"role": "db"}  # type: ignore[union-attr]
    assert b.node.member(a.node.node_id).tags == {"role": "db"}  # type: ignore[union-attr]
    assert a.node.incarnation == 0


def test_exit_beacon_marks_the_sender_left() -> None:
    world = joined(2)
    a, b = world.hosts
    # Lose the direct leave messages: only the EXIT beacon reaches a. The simulator
    # cannot lose unicast but not multicast, so b's output is handed over here.
    b.node.leave(now=world.now)
    for d in b.node.datagrams_to_send(now=world.now):
        if d.address is None:
            a.node.receive_datagram(d.data, b.address, now=world.now)
    assert state(a, b) is MemberState.LEFT
    [left] = of_type(a.node.pop_events(), MemberLeft, b)
    assert left.member.incarnation == b.node.incarnation == 1


def test_exit_beacon_with_an_old_incarnation_is_ignored() -> None:
    world = joined(2)
    a, b = world.hosts
    b.node.set_tags({"v": "2"}, now=world.now)
    world.run_for(2.0)
    assert a.node.member(b.node.node_id).incarnation == 1  # type: ignore[union-attr]
    stale_exit = Beacon(b.node.node_id, b.name, b.address, BeaconState.EXIT, 0)
    frame = seal([stale_exit], sender=b.node.node_id, wall=world.now)
    a.node.receive_datagram(frame, ("x", 1), now=world.now)
    assert state(a, b) is MemberState.ALIVE


def test_a_beacon_naming_us_does_not_change_our_beacon_state() -> None:
    world = World()
    host = world.add()
    node = host.node
    world.run_until(10.0)  # past the fast start: READY
    impostor = Beacon(node.node_id, host.name, host.address, BeaconState.LEAVING, 0)
    node.receive_datagram(seal([impostor], sender=PEER, wall=10.0), ("10.0.0.2", 7946), now=10.0)
    mark = len(world.traffic.datagrams)
    world.run_until(20.0)
    msgs = world.traffic.messages(mark)
    states = [m.state for _, _dst, m in msgs if isinstance(m, Beacon)]
    assert states and all(s is BeaconState.READY for s in states)
