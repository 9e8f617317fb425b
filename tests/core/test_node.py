"""Node behaviour, driven through real cores wired by the in-test loop (no sockets)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import msgpack
import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from covey.core import (
    MAX_DATAGRAM,
    CoreConfig,
    Keyring,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MemberState,
    MemberSuspect,
    MemberUpdated,
    Node,
    StreamPurpose,
)
from covey.core.config import TAGS_LIMIT, ConfigError
from covey.core.types import BeaconState
from covey.core.wire.frame import FrameType, Security
from covey.core.wire.messages import (
    Ack,
    Alive,
    Beacon,
    Dead,
    Message,
    Ping,
    PingReq,
    PushPull,
    Suspect,
)

from .netsim import KEY, Net, make_node, node_id, open_frame, seal
from .strategies import DATAGRAM_MESSAGES, MESSAGES

OTHER_KEY = Fernet.generate_key()


def state(viewer: Node, subject: Node) -> MemberState | None:
    m = viewer.member(subject.node_id)
    return None if m is None else m.state


def of_type(events: list[Any], kind: type, about: Node | None = None) -> list[Any]:
    return [
        e
        for e in events
        if isinstance(e, kind) and (about is None or e.member.node_id == about.node_id)
    ]


def joined(*nodes: Node, until: float = 10.0, latency: float = 0.0) -> Net:
    """Start a net of already-started nodes and let beacons bring them together."""
    net = Net(*nodes, latency=latency)
    net.run_until(until)
    for a in nodes:
        for b in nodes:
            assert state(a, b) is MemberState.ALIVE, (a.config.name, b.config.name)
    for n in nodes:
        n.pop_events()
    return net


def drops(node: Node) -> dict[str, int]:
    return node.statistics().drops


def sent_messages(net: Net, since: int = 0) -> list[tuple[Any, Any, Message]]:
    out = []
    for src, d in net.sent[since:]:
        for m in open_frame(d.data)[2]:
            out.append((src, d.address, m))
    return out


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
    nodes = [make_node(i) for i in (1, 2, 3)]
    net = joined(*nodes)
    net.run_until(40.0)
    assert len(net.sent) > 50
    for _src, d in net.sent:
        assert len(d.data) <= MAX_DATAGRAM
        assert open_frame(d.data)[2], "a datagram with no message in it"


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
    a, b = make_node(1), make_node(2)
    net = Net(a, b)
    net.run_until(1.0)
    assert state(a, b) is state(b, a) is MemberState.ALIVE
    assert of_type(a.pop_events(), MemberJoined, b)
    assert any(r.purpose is StreamPurpose.JOIN for _, r in net.streams)


def test_join_through_seed_addresses_without_beacons() -> None:
    a, b, c = make_node(1), make_node(2), make_node(3)
    net = Net(a, b, c)
    net.drop = lambda src, dst, d: dst is None  # no discovery traffic at all
    b.join([a.config.address], now=0.0)
    c.join([b.config.address, c.config.address], now=0.0)
    net.run_until(15.0)
    for x in (a, b, c):
        for y in (a, b, c):
            assert state(x, y) is MemberState.ALIVE
    assert b.joined and c.joined


def test_exit_beacon_marks_the_sender_left() -> None:
    a, b = make_node(1), make_node(2)
    net = joined(a, b)
    # Lose the direct leave messages: only the EXIT beacon reaches a.
    net.drop = lambda src, dst, d: dst is not None
    b.leave(now=net.now)
    net.settle(net.now)
    assert state(a, b) is MemberState.LEFT
    [left] = of_type(a.pop_events(), MemberLeft, b)
    assert left.member.incarnation == b.incarnation == 1


def test_leave_tells_members_directly() -> None:
    a, b, c = make_node(1), make_node(2), make_node(3)
    net = joined(a, b, c)
    net.drop = lambda src, dst, d: dst is None  # lose the EXIT beacon
    mark = len(net.sent)
    c.leave(now=net.now)
    net.settle(net.now)
    leaves = [(dst, m) for s, dst, m in sent_messages(net, mark) if isinstance(m, Dead)]
    assert sorted(dst for dst, _ in leaves) == [a.config.address, b.config.address]
    assert all(m.left and m.node_id == m.sender == c.node_id for _, m in leaves)
    assert state(a, c) is state(b, c) is MemberState.LEFT
    assert c.get_timer() is None
    # A node that left hears nothing any more.
    c.receive_datagram(seal([Ack(1)], sender=a.node_id, wall=net.now), a.config.address, now=1)
    assert drops(c) == {"after_leave": 1}


def test_exit_beacon_with_an_old_incarnation_is_ignored() -> None:
    a, b = make_node(1), make_node(2)
    net = joined(a, b)
    b.set_tags({"v": "2"}, now=net.now)
    net.run_until(net.now + 2)
    assert a.member(b.node_id).incarnation == 1  # type: ignore[union-attr]
    stale_exit = Beacon(b.node_id, "n2", b.config.address, BeaconState.EXIT, 0)
    a.receive_datagram(seal([stale_exit], sender=b.node_id, wall=net.now), ("x", 1), now=net.now)
    assert state(a, b) is MemberState.ALIVE


# -------------------------------------------------------------- failure detection


def test_refused_tcp_ping_marks_the_target_failed_at_once() -> None:
    a, b = make_node(1), make_node(2)
    net = joined(a, b)
    net.down.add(b.config.address)
    net.refuse = True
    start = net.now
    net.run_until(start + 2.0)
    events = a.pop_events()
    assert state(a, b) is MemberState.FAILED
    assert not of_type(events, MemberSuspect, b)  # no suspicion period was needed
    [failed] = of_type(events, MemberFailed, b)
    # at the probe timeout (0.5 s after a ping), well before any suspicion could expire
    assert failed.at - start < 1.6
    pings = [r for s, r in net.streams if s == a.config.address and r.purpose is StreamPurpose.PING]
    assert pings and pings[-1].node_id == b.node_id


def test_timed_out_tcp_ping_only_leads_to_suspicion() -> None:
    a, b = make_node(1), make_node(2)
    net = joined(a, b)
    net.down.add(b.config.address)
    net.refuse = False
    start = net.now
    net.run_until(start + 2.5)
    events = a.pop_events()
    assert state(a, b) is MemberState.SUSPECT
    assert not of_type(events, MemberFailed, b)
    [suspect] = of_type(events, MemberSuspect, b)
    # Two live members: no confirmations to wait for, so the minimum timeout (4 s).
    net.run_until(suspect.at + 3.9)
    assert state(a, b) is MemberState.SUSPECT
    net.run_until(suspect.at + 4.01)
    assert state(a, b) is MemberState.FAILED


def test_indirect_probe_keeps_a_member_alive_across_a_broken_path() -> None:
    a, b, c = make_node(1), make_node(2), make_node(3)
    net = joined(a, b, c)
    net.partition(a, c)  # a and c cannot talk, b reaches both
    mark = len(net.sent)
    net.run_until(net.now + 10.0)
    for x in (a, b, c):
        for y in (a, b, c):
            assert state(x, y) is MemberState.ALIVE
    msgs = [m for _, _, m in sent_messages(net, mark)]
    assert any(isinstance(m, PingReq) for m in msgs)
    assert not of_type(a.pop_events(), MemberSuspect)


def test_suspicion_about_self_is_refuted_with_a_higher_incarnation() -> None:
    a, b = make_node(1), make_node(2)
    net = joined(a, b)
    assert b.incarnation == 0
    a_view_before = a.member(b.node_id)
    assert a_view_before is not None and a_view_before.incarnation == 0
    rumour = seal([Suspect(0, b.node_id, a.node_id)], sender=a.node_id, wall=net.now)
    b.receive_datagram(rumour, a.config.address, now=net.now)
    assert b.incarnation == 1
    assert b.statistics().health == 1  # Lifeguard: having to refute is a bad sign
    mark = len(net.sent)
    net.run_until(net.now + 1.0)
    alive = [m for s, _, m in sent_messages(net, mark) if isinstance(m, Alive)]
    assert any(m.node_id == b.node_id and m.incarnation == 1 for m in alive)
    assert a.member(b.node_id).incarnation == 1  # type: ignore[union-attr]
    assert state(a, b) is MemberState.ALIVE


def test_suspicion_is_refuted_end_to_end() -> None:
    a, b = make_node(1), make_node(2)
    net = joined(a, b)
    net.partition(a, b)
    start = net.now
    while state(a, b) is not MemberState.SUSPECT:
        net.run_until(net.now + 0.05)
        assert net.now < start + 5
    net.heal()
    net.run_until(net.now + 3.0)
    assert state(a, b) is MemberState.ALIVE
    assert b.incarnation >= 1
    assert of_type(a.pop_events(), MemberRecovered, b)


def test_old_suspicion_about_self_is_not_refuted() -> None:
    a, b = make_node(1), make_node(2)
    net = joined(a, b)
    b.set_tags({"x": "1"}, now=net.now)
    assert b.incarnation == 1
    b.receive_datagram(
        seal([Suspect(0, b.node_id, a.node_id)], sender=a.node_id, wall=net.now),
        a.config.address,
        now=net.now,
    )
    assert b.incarnation == 1


def test_partitioned_nodes_find_their_way_back() -> None:
    a, b = make_node(1), make_node(2)
    net = joined(a, b)
    net.drop = lambda src, dst, d: dst is None  # no beacons to help them
    net.partition(a, b)
    net.run_until(net.now + 30.0)
    assert state(a, b) is MemberState.FAILED
    assert state(b, a) is MemberState.FAILED
    net.heal()
    mark = len(net.streams)
    net.run_until(net.now + 35.0)
    assert state(a, b) is MemberState.ALIVE
    assert state(b, a) is MemberState.ALIVE
    assert any(r.purpose is StreamPurpose.RECONNECT for _, r in net.streams[mark:])


def test_three_nodes_agree_that_a_crashed_node_failed() -> None:
    nodes = [make_node(i) for i in (1, 2, 3, 4)]
    net = joined(*nodes)
    dead = nodes[3]
    net.down.add(dead.config.address)
    net.refuse = False  # a silent crash: no refused connections
    net.run_until(net.now + 40.0)
    for n in nodes[:3]:
        assert state(n, dead) is MemberState.FAILED
        for m in nodes[:3]:
            assert state(n, m) is MemberState.ALIVE


# ------------------------------------------------------------------------ tags


def test_set_tags_bumps_incarnation_and_emits_member_updated() -> None:
    a, b = make_node(1), make_node(2)
    net = joined(a, b)
    a.set_tags({"version": "9000000"}, now=net.now)
    assert a.incarnation == 1
    [ev] = of_type(a.pop_events(), MemberUpdated, a)
    assert ev.member.tags == {"version": "9000000"} and ev.member.incarnation == 1
    net.run_until(net.now + 1.0)
    assert b.member(a.node_id).tags == {"version": "9000000"}  # type: ignore[union-attr]
    assert of_type(b.pop_events(), MemberUpdated, a)


def test_set_tags_refuses_oversized_tags() -> None:
    a = make_node(1)
    with pytest.raises(ConfigError):
        a.set_tags({"k": "v" * TAGS_LIMIT}, now=0.0)
    with pytest.raises(ConfigError):
        a.set_tags({"": "v"}, now=0.0)
    assert a.incarnation == 0


def test_large_tags_reach_the_other_node_by_push_pull() -> None:
    a, b = make_node(1), make_node(2)
    net = joined(a, b)
    big = {f"key{i:03d}": "v" * 30 for i in range(110)}  # about 4 KiB encoded
    assert 3800 < len(msgpack.packb(big)) <= TAGS_LIMIT
    mark, smark = len(net.sent), len(net.streams)
    a.set_tags(big, now=net.now)
    net.run_until(net.now + 5.0)
    assert b.member(a.node_id).tags == big  # type: ignore[union-attr]
    assert all(len(d.data) <= MAX_DATAGRAM for _, d in net.sent[mark:])
    # the alive that went by datagram said only "changed" (no tags) ...
    alives = [m for _, _, m in sent_messages(net, mark) if isinstance(m, Alive)]
    assert alives and all(m.tags is None for m in alives if m.node_id == a.node_id)
    # ... and b fetched them with a push-pull
    assert any(
        s == b.config.address and r.purpose is StreamPurpose.PUSH_PULL
        for s, r in net.streams[smark:]
    )


# ------------------------------------------------------------- drops by reason


def inject(node: Node, frame: bytes, now: float = 1.0) -> dict[str, int]:
    before = dict(drops(node))
    node.receive_datagram(frame, ("10.0.0.200", 7946), now=now)
    after = drops(node)
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


PEER = node_id(2)


@pytest.mark.parametrize(
    ("frame", "reason", "now"),
    [
        (b"CV\x01", "truncated", 1.0),
        (b"CV\x01\x01\x01" + b"A" * MAX_DATAGRAM, "oversized", 1.0),
        (b"ZRE\x01" + b"\x00" * 18, "bad_magic", 1.0),
        (b"CV\x07\x01\x01", "unknown_version", 1.0),
        (seal([Ack(1)], sender=PEER, ftype=FrameType.STREAM_REQUEST), "bad_frame_type", 1.0),
        (
            seal([Ack(1)], sender=PEER, keyring=Keyring([], plaintext=True)),
            "plaintext_refused",
            1.0,
        ),
        (seal([Ack(1)], sender=PEER, keyring=Keyring([OTHER_KEY])), "bad_key", 1.0),
        (seal([Ack(1)], sender=PEER, wall=0.0), "stale", 61.5),
        (seal([Ack(1)], sender=PEER, cluster="other"), "foreign_cluster", 1.0),
        (seal([Ack(1)], sender=node_id(1)), "from_self", 1.0),
        (seal([Ping(1, node_id(7))], sender=PEER), "misdirected", 1.0),
        (seal([PushPull(False, False, ())], sender=PEER), "malformed", 1.0),
    ],
)
def test_drop_reasons_on_an_encrypted_node(frame: bytes, reason: str, now: float) -> None:
    node = make_node(1)
    node.pop_events()
    before = node.members()
    assert inject(node, frame, now=now) == {reason: 1}
    assert node.members() == before
    assert node.incarnation == 0
    assert node.pop_events() == []


def test_encrypted_frame_to_a_plaintext_node() -> None:
    node = make_node(1, plaintext=True)
    assert inject(node, seal([Ack(1)], sender=PEER)) == {"encrypted_unexpected": 1}


def test_duplicate_datagram_is_dropped() -> None:
    node = make_node(1)
    frame = seal([Alive(0, PEER, "n2", ("10.0.0.2", 7946), {})], sender=PEER)
    assert inject(node, frame) == {}
    assert node.member(PEER) is not None
    assert inject(node, frame) == {"duplicate": 1}


def test_unknown_message_is_skipped_but_the_rest_is_read() -> None:
    from covey.core.wire.frame import body_prefix, build_frame

    alive = Alive(0, PEER, "n2", ("10.0.0.2", 7946), {})
    from covey.core.wire.messages import encode_message

    future = 42  # the election's Heartbeat on a node that runs an election; not on this one
    node = make_node(1)
    assert future not in node.message_types
    body = body_prefix("test", PEER) + msgpack.packb([[future, "future"], encode_message(alive)])
    frame = build_frame(FrameType.DATAGRAM, Security.FERNET, Keyring([KEY]).seal(body, 0.0))
    assert inject(node, frame) == {"unknown_message": 1}
    assert node.member(PEER) is not None


def test_one_malformed_message_drops_the_whole_frame() -> None:
    from covey.core.wire.frame import body_prefix, build_frame

    body = body_prefix("test", PEER) + msgpack.packb(
        [[5, 0, PEER, "n2", "10.0.0.2", 7946, {}], [1, "not a seq", PEER]]
    )
    frame = build_frame(FrameType.DATAGRAM, Security.FERNET, Keyring([KEY]).seal(body, 0.0))
    node = make_node(1)
    assert inject(node, frame) == {"malformed": 1}
    assert node.member(PEER) is None


def test_frames_before_start_are_dropped() -> None:
    node = make_node(1, start=False)
    assert inject(node, seal([Ack(1)], sender=PEER)) == {"after_leave": 1}


def test_foreign_cluster_is_isolated_end_to_end() -> None:
    a = make_node(1, cluster="blue")
    b = make_node(2, cluster="green")
    net = Net(a, b)
    net.run_until(10.0)
    assert state(a, b) is None and state(b, a) is None
    assert drops(a).get("foreign_cluster", 0) > 0
    assert drops(b).get("foreign_cluster", 0) > 0


def test_stream_ping_is_answered_and_misdirected_one_is_not() -> None:
    node = make_node(1)
    reply = node.handle_stream(seal([Ping(5, node.node_id)], sender=PEER), ("h", 1), now=1.0)
    assert reply is None  # datagram frame type on a stream is refused
    req = seal([Ping(5, node.node_id)], sender=PEER, ftype=FrameType.STREAM_REQUEST)
    reply = node.handle_stream(req, ("h", 1), now=1.0)
    assert reply is not None and reply[:5] == b"CV\x01\x03\x01"
    assert open_frame(reply)[2] == [Ack(5)]
    req = seal([Ping(6, node_id(9))], sender=PEER, ftype=FrameType.STREAM_REQUEST)
    assert node.handle_stream(req, ("h", 1), now=1.0) is None
    assert drops(node) == {"bad_frame_type": 1, "misdirected": 1}


def test_push_pull_request_gets_the_whole_table() -> None:
    node = make_node(1, tags={"role": "db"})
    rec_peer = Alive(3, PEER, "n2", ("10.0.0.2", 7946), {"a": "b"})
    node.receive_datagram(seal([rec_peer], sender=PEER), ("h", 1), now=1.0)
    from covey.core.wire.messages import MemberRecord

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


# ------------------------------------------------------------------- fuzzing

RECEIVER_ADDR = ("10.0.0.9", 7946)


def _corpus() -> tuple[list[bytes], list[bytes]]:
    """Real datagrams and stream requests of a small cluster at work."""
    nodes = [make_node(i) for i in (1, 2, 3)]
    net = Net(*nodes)
    nodes[0].set_tags({"k": "v"}, now=0.0)
    net.run_until(12.0)
    nodes[1].leave(now=net.now)
    net.settle(net.now)
    dgrams = [d.data for _, d in net.sent]
    streams = [r.data for _, r in net.streams]
    assert len(dgrams) > 20 and len(streams) >= 2
    return dgrams, streams


DGRAMS, STREAMS = _corpus()


def observable(node: Node) -> tuple[Any, ...]:
    s = node.statistics()
    return (node.members(), node.incarnation, s.health, s.members, node.get_timer())


def _fresh() -> Node:
    # The corpus was sealed at walls 0..12; a receiver at the same time accepts it.
    return make_node(9, seed=1, now=0.0)


def _mutate(frame: bytes, data: st.DataObject) -> bytes:
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "insert", "overwrite"]))
    buf = bytearray(frame)
    if kind == "flip":
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        del buf[data.draw(st.integers(0, len(buf) - 1)) :]
    elif kind == "extend":
        buf += data.draw(st.binary(min_size=1, max_size=40))
    elif kind == "insert":
        i = data.draw(st.integers(0, len(buf)))
        buf[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    else:
        i = data.draw(st.integers(0, len(buf) - 1))
        chunk = data.draw(st.binary(min_size=1, max_size=8))
        buf[i : i + len(chunk)] = chunk
    return bytes(buf)


def _equivalent(a: bytes, b: bytes) -> bool:
    """Same header and a payload that base64-decodes to the very same token."""
    import base64

    if a[:5] != b[:5]:
        return False
    try:
        return base64.urlsafe_b64decode(a[5:]) == base64.urlsafe_b64decode(b[5:])
    except ValueError:
        return False


def _assert_untouched(node: Node, before: tuple[Any, ...], drops_before: int) -> None:
    assert observable(node) == before
    assert node.pop_events() == []
    assert node.datagrams_to_send(now=5.0) == []
    assert node.streams_to_open(now=5.0) == []
    assert sum(drops(node).values()) == drops_before + 1


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=1600))
def test_random_bytes_never_raise_nor_change_an_encrypted_node(data: bytes) -> None:
    node = _fresh()
    node.pop_events()
    before, d0 = observable(node), sum(drops(node).values())
    node.receive_datagram(data, RECEIVER_ADDR, now=5.0)
    _assert_untouched(node, before, d0)
    assert node.handle_stream(data, RECEIVER_ADDR, now=5.0) is None
    _assert_untouched(node, before, d0 + 1)


@FUZZ
@given(st.sampled_from(DGRAMS), st.data())
def test_mutated_datagrams_never_change_an_encrypted_node(
    frame: bytes, data: st.DataObject
) -> None:
    mutated = _mutate(frame, data)
    # A receiver that already has the original: every mutation is refused.
    node = _fresh()
    node.receive_datagram(frame, ("10.0.0.1", 7946), now=5.0)
    node.pop_events()
    node.datagrams_to_send(now=5.0)
    node.streams_to_open(now=5.0)
    before, d0 = observable(node), sum(drops(node).values())
    node.receive_datagram(mutated, ("10.0.0.1", 7946), now=5.0)
    _assert_untouched(node, before, d0)
    # A fresh receiver: refused too, unless the mutation is invisible after base64 decoding.
    fresh = _fresh()
    fresh.pop_events()
    if _equivalent(frame, mutated):
        return
    before, d0 = observable(fresh), sum(drops(fresh).values())
    fresh.receive_datagram(mutated, ("10.0.0.1", 7946), now=5.0)
    _assert_untouched(fresh, before, d0)


@FUZZ
@given(st.sampled_from(STREAMS), st.data())
def test_mutated_stream_frames_never_change_an_encrypted_node(
    frame: bytes, data: st.DataObject
) -> None:
    mutated = _mutate(frame, data)
    fresh = _fresh()
    fresh.pop_events()
    if _equivalent(frame, mutated):
        return
    before, d0 = observable(fresh), sum(drops(fresh).values())
    assert fresh.handle_stream(mutated, ("10.0.0.1", 40000), now=5.0) is None
    _assert_untouched(fresh, before, d0)


def _plain_frame(msgs: list[Any], sender: bytes, ftype: FrameType) -> bytes:
    from covey.core.wire.frame import build_frame
    from covey.core.wire.messages import encode_message

    body = msgpack.packb(["test", sender, [encode_message(m) for m in msgs]])
    return build_frame(ftype, Security.PLAIN, body)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(DATAGRAM_MESSAGES, min_size=1, max_size=6),
    st.sampled_from([node_id(2), node_id(3), node_id(1)]),
    st.booleans(),
)
def test_any_valid_message_from_a_peer_never_raises(
    msgs: list[Message], sender: bytes, about_self: bool
) -> None:
    """A plain-text node must survive every well-formed message with any field values."""
    node = make_node(1, plaintext=True)
    net_peer = make_node(2, plaintext=True)
    # Make some of the messages concern the receiver or a known peer.
    if about_self:
        msgs = [_retarget(m, node.node_id) for m in msgs]
    node.receive_datagram(
        _plain_frame(
            [Alive(0, net_peer.node_id, "n2", ("10.0.0.2", 7946), {})],
            node_id(2),
            FrameType.DATAGRAM,
        ),
        ("10.0.0.2", 7946),
        now=0.5,
    )
    frame = _plain_frame(msgs, sender, FrameType.DATAGRAM)
    node.receive_datagram(frame, ("10.0.0.2", 7946), now=1.0)
    node.handle_stream(
        _plain_frame(msgs, sender, FrameType.STREAM_REQUEST), ("10.0.0.2", 40000), now=1.0
    )
    for t in (1.0, 2.0, 5.0, 30.0):
        node.handle_timer(now=t)
        for d in node.datagrams_to_send(now=t):
            assert len(d.data) <= MAX_DATAGRAM
        node.streams_to_open(now=t)


@settings(max_examples=300, deadline=None)
@given(st.lists(MESSAGES, min_size=1, max_size=4), st.sampled_from(FrameType), st.data())
def test_mutated_plaintext_frames_never_raise(
    msgs: list[Message], ftype: FrameType, data: st.DataObject
) -> None:
    """Without authentication garbage reaches the msgpack and message decoders."""
    node = make_node(1, plaintext=True)
    frame = _mutate(_plain_frame(msgs, node_id(2), ftype), data)
    node.receive_datagram(frame, ("10.0.0.2", 7946), now=1.0)
    reply = node.handle_stream(frame, ("10.0.0.2", 40000), now=1.0)
    assert reply is None or reply[:5] == b"CV\x01\x03\x00"
    node.handle_timer(now=2.0)


@FUZZ
@given(st.binary(max_size=600) | st.sampled_from(STREAMS + DGRAMS))
def test_garbage_stream_replies_never_raise_and_finish_the_request(data: bytes) -> None:
    node = _fresh()
    node.join([("10.0.0.1", 7946)], now=1.0)
    [req] = node.streams_to_open(now=1.0)
    assert node.pending_streams() == 1
    node.stream_reply(req.request_id, data, now=1.0)
    assert node.pending_streams() == 0
    # a stream request frame is never a valid reply
    assert not node.joined
    assert state(node, make_node(1, start=False)) is None


def _retarget(m: Message, nid: bytes) -> Message:
    import dataclasses

    if isinstance(m, Alive | Suspect | Dead):
        # 2**64 - 1 about ourselves is test_refuting_the_largest_incarnation_does_not_raise
        return dataclasses.replace(m, node_id=nid, incarnation=min(m.incarnation, 2**64 - 2))
    if isinstance(m, Ping | PingReq):
        return dataclasses.replace(m, target=nid)
    if isinstance(m, Beacon):
        return dataclasses.replace(m, node_id=nid, incarnation=min(m.incarnation, 2**64 - 2))
    return m


@settings(max_examples=100, deadline=None)
@given(st.lists(MESSAGES, min_size=1, max_size=4))
def test_any_stream_request_never_raises(msgs: list[Message]) -> None:
    node = make_node(1, plaintext=True)
    reply = node.handle_stream(
        _plain_frame(msgs, node_id(2), FrameType.STREAM_REQUEST), ("h", 1), now=1.0
    )
    if reply is not None:
        assert reply[:5] == b"CV\x01\x03\x00"
        assert open_plain(reply)


def open_plain(frame: bytes) -> list[Any]:
    cluster, sender, raw = msgpack.unpackb(frame[5:], raw=False)
    assert (cluster, sender) == ("test", node_id(1))
    return list(raw)


# ------------------------------------------------------------- core bugs (xfail)


def test_joining_through_a_beacon_does_not_bump_the_incarnation() -> None:
    a = make_node(1, tags={"role": "db"})
    b = make_node(2)
    net = Net(a, b)
    net.run_until(10.0)
    assert a.member(a.node_id).tags == {"role": "db"}  # type: ignore[union-attr]
    assert b.member(a.node_id).tags == {"role": "db"}  # type: ignore[union-attr]
    assert a.incarnation == 0


def test_large_tags_cost_exactly_one_incarnation() -> None:
    a, b = make_node(1), make_node(2)
    net = joined(a, b)
    a.set_tags({f"key{i:03d}": "v" * 30 for i in range(110)}, now=net.now)
    net.run_until(net.now + 10.0)
    assert a.incarnation == 1


def test_stale_tags_from_a_third_node_do_not_complete_a_record() -> None:
    from covey.core.wire.messages import MemberRecord

    # No periodic anti-entropy here: only the tag-fetching mechanism is under test.
    a = make_node(1, tags={"v": "1"}, push_pull_interval=1000.0)
    b = make_node(2, push_pull_interval=1000.0)
    net = joined(a, b)
    net.drop = lambda src, dst, d: src == a.config.address and dst is not None
    a.set_tags({"v": "2", "pad": "x" * 600}, now=net.now)  # too big for a datagram alive
    net.run_until(net.now + 1.0)
    # b hears the tag-less alive, and the push-pull it opens to fetch the tags is lost
    inc = a.incarnation
    alive = Alive(inc, a.node_id, "n1", a.config.address, None)
    b.receive_datagram(seal([alive], sender=a.node_id, wall=net.now), a.config.address, now=net.now)
    b.streams_to_open(now=net.now)
    # c, which also only heard the tag-less alive, syncs with b first: its record of a
    # has the new incarnation and, correctly, no tags (it does not have them either)
    stale = MemberRecord(a.node_id, "n1", a.config.address, inc, MemberState.ALIVE, None)
    req = seal(
        [PushPull(False, False, (stale,))],
        sender=node_id(3),
        ftype=FrameType.STREAM_REQUEST,
        wall=net.now,
    )
    assert b.handle_stream(req, ("10.0.0.3", 40000), now=net.now) is not None
    # b's next good probe of a reminds it that it still owes itself a's tags
    net.drop = None
    net.run_until(net.now + 8.0)
    assert b.member(a.node_id).tags == a.member(a.node_id).tags  # type: ignore[union-attr]


def test_large_tags_learned_by_push_pull_do_not_clog_gossip() -> None:
    from covey.core.wire.messages import MemberRecord

    b, c = make_node(2), make_node(3)
    net = joined(b, c)
    big = {f"key{i:03d}": "v" * 30 for i in range(110)}
    a_id = node_id(1)
    rec = MemberRecord(a_id, "n1", ("10.0.0.1", 7946), 5, MemberState.ALIVE, big)
    req = seal(
        [PushPull(False, False, (rec,))], sender=a_id, ftype=FrameType.STREAM_REQUEST, wall=net.now
    )
    assert b.handle_stream(req, ("10.0.0.1", 40000), now=net.now) is not None
    assert b.member(a_id).tags == big  # type: ignore[union-attr]
    mark = len(net.sent)
    net.run_until(net.now + 20.0)
    empty = [d for s, d in net.sent[mark:] if s == b.config.address and not open_frame(d.data)[2]]
    assert empty == []


def test_nacks_arrive_before_the_probe_ends() -> None:
    a, b, c = make_node(1), make_node(2), make_node(3)
    net = joined(a, b, c, latency=0.001)
    net.down.add(c.config.address)
    net.refuse = False
    while True:
        net.run_until(net.now + 0.001)
        if of_type(a.pop_events(), MemberSuspect, c):
            break
        assert net.now < 40
    # b is healthy and answered the ping-req with a nack; a must not blame itself.
    assert a.statistics().health == 0


def test_longest_allowed_names_still_fit_a_datagram() -> None:
    with pytest.raises(ConfigError, match="name"):
        make_node(1, name="\u20ac" * 86)  # 258 octets of UTF-8
    name = "\u20ac" * 85  # 255 octets
    a = make_node(1, name=name, cluster=name)
    b = make_node(2, cluster=name)
    net = Net(a, b)
    net.run_until(5.0)
    assert max(len(d.data) for _, d in net.sent) <= MAX_DATAGRAM
    assert "oversized" not in drops(b)


def test_longest_ascii_names_fit_a_datagram() -> None:
    name = "n" * 255
    a = make_node(1, name=name, cluster="c" * 255, address=("h" * 255, 65535))
    b = make_node(2, cluster="c" * 255)
    net = Net(a, b)
    net.run_until(5.0)
    assert state(b, a) is MemberState.ALIVE
    assert max(len(d.data) for _, d in net.sent) <= MAX_DATAGRAM


def test_refuting_the_largest_incarnation_does_not_raise() -> None:
    node = make_node(1)
    frame = seal([Suspect(2**63 - 1, node.node_id, PEER)], sender=PEER)
    node.receive_datagram(frame, ("10.0.0.2", 7946), now=1.0)
    node.handle_timer(now=1.0)
    node.datagrams_to_send(now=1.0)


def test_a_beacon_naming_us_does_not_change_our_beacon_state() -> None:
    node = make_node(1)
    net = Net(node)
    net.run_until(10.0)  # past the fast start: READY
    impostor = Beacon(node.node_id, "n1", node.config.address, BeaconState.LEAVING, 0)
    node.receive_datagram(seal([impostor], sender=PEER, wall=10.0), ("10.0.0.2", 7946), now=10.0)
    mark = len(net.sent)
    net.run_until(20.0)
    states = [m.state for _, dst, m in sent_messages(net, mark) if isinstance(m, Beacon)]
    assert states and all(s is BeaconState.READY for s in states)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError):
        CoreConfig(node_id=b"x", name="n", cluster="c", address=("h", 1))
    with pytest.raises(ConfigError):
        CoreConfig(node_id=node_id(1), name="n", cluster="c", address=("h", 1), probe_timeout=2)
    with pytest.raises(ConfigError):
        CoreConfig(node_id=node_id(1), name="n", cluster="c", address=("h", 1), max_datagram=100)


def test_same_seed_replays_exactly() -> None:
    def run() -> list[bytes]:
        nodes = [make_node(i) for i in (1, 2, 3)]
        net = Net(*nodes)
        net.run_until(20.0)
        return [d.data[:5] + bytes(str(d.address), "ascii") for _, d in net.sent]

    first, second = run(), run()
    assert first == second and len(first) > 20


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
