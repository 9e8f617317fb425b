"""The receive path: bad input is dropped and counted by reason, never raised.

Hand-made frames into a node driven directly, then fuzzing: random bytes, mutations of
real frames of a simulated cluster, and every well-formed message with any field values.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import msgpack
import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from covey.core import MAX_DATAGRAM, Keyring, Node
from covey.core.types import DropReason
from covey.core.wire.frame import FrameType, Security, body_prefix, build_frame
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
    encode_message,
)

from ..strategies import DATAGRAM_MESSAGES, MESSAGES
from .helpers import (
    KEY,
    PEER,
    World,
    drops,
    inject,
    make_node,
    node_id,
    open_frame,
    seal,
    state,
)

OTHER_KEY = Fernet.generate_key()


# ------------------------------------------------------------- drops by reason


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


def test_receive_says_who_sent_a_frame_or_why_it_was_dropped() -> None:
    # The runtime counts drops per interface from this answer.
    node = make_node(1)
    addr = ("10.0.0.2", 7946)
    alive = seal([Alive(0, PEER, "n2", addr, {})], sender=PEER)
    assert node.receive_datagram(alive, addr, now=1.0) == PEER
    wrong_key = seal([Ack(1)], sender=PEER, keyring=Keyring([OTHER_KEY]))
    assert node.receive_datagram(wrong_key, addr, now=1.0) is DropReason.BAD_KEY
    assert node.receive_datagram(b"CV\x01", addr, now=1.0) is DropReason.TRUNCATED
    # A message dropped inside a frame that was opened: the frame's sender, the drop counted.
    misdirected = seal([Ping(1, node_id(7))], sender=PEER)
    assert node.receive_datagram(misdirected, addr, now=1.0) == PEER
    assert drops(node) == {"bad_key": 1, "truncated": 1, "misdirected": 1}


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
    alive = Alive(0, PEER, "n2", ("10.0.0.2", 7946), {})
    future = 42  # the election's Heartbeat on a node that runs an election; not on this one
    node = make_node(1)
    assert future not in node.message_types
    body = body_prefix("test", PEER) + msgpack.packb([[future, "future"], encode_message(alive)])
    frame = build_frame(FrameType.DATAGRAM, Security.FERNET, Keyring([KEY]).seal(body, 0.0))
    assert inject(node, frame) == {"unknown_message": 1}
    assert node.member(PEER) is not None


def test_one_malformed_message_drops_the_whole_frame() -> None:
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
    world = World(cluster="blue")
    a = world.add()
    world.sim.cluster = "green"  # the next host belongs to another cluster
    b = world.add()
    world.run_until(10.0)
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


# ------------------------------------------------------------------- fuzzing

RECEIVER_ADDR = ("10.0.0.9", 7946)


def _corpus() -> tuple[list[bytes], list[bytes]]:
    """Real datagrams and stream requests of a small cluster at work."""
    world = World()
    hosts = [world.add() for _ in range(3)]
    hosts[0].node.set_tags({"k": "v"}, now=0.0)
    world.run_until(12.0)
    world.sim.leave(hosts[1].name)
    dgrams = [d.data for _, d in world.traffic.datagrams]
    streams = [r.data for _, r in world.traffic.streams]
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
