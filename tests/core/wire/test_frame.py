"""Frame header, body layout and size limits."""

from __future__ import annotations

import msgpack
import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core import MAX_DATAGRAM, MAX_STREAM_FRAME, STREAM_PREFIX_LEN, Keyring
from covey.core.types import DropReason
from covey.core.wire.frame import (
    HEADER_LEN,
    MAGIC,
    PROTOCOL_VERSION,
    FrameError,
    FrameType,
    Security,
    body_overhead,
    body_prefix,
    build_frame,
    encode_message_bytes,
    pack_body,
    parse_header,
    unpack_body,
)
from covey.core.wire.messages import Message, decode_message, encode_message

from ..strategies import DATAGRAM_MESSAGES, MESSAGES, NODE_IDS

KEY = Fernet.generate_key()
SENDER = b"\x01" * 16


def test_constants() -> None:
    assert (MAGIC, PROTOCOL_VERSION, HEADER_LEN) == (b"CV", 1, 5)
    assert (MAX_DATAGRAM, STREAM_PREFIX_LEN, MAX_STREAM_FRAME) == (1400, 4, 32 * 1024 * 1024)
    assert [int(t) for t in FrameType] == [1, 2, 3]
    assert [int(s) for s in Security] == [0, 1]


def test_header_layout() -> None:
    frame = build_frame(FrameType.STREAM_REPLY, Security.FERNET, b"payload")
    assert frame == b"CV\x01\x03\x01payload"


@given(st.sampled_from(FrameType), st.sampled_from(Security), st.binary(max_size=1395))
def test_header_round_trip(ftype: FrameType, security: Security, payload: bytes) -> None:
    assert parse_header(build_frame(ftype, security, payload), MAX_DATAGRAM) == (
        ftype,
        security,
        payload,
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", DropReason.TRUNCATED),
        (b"CV\x01\x01", DropReason.TRUNCATED),
        (b"ZRE\x01\x01" + b"\x00" * 17, DropReason.BAD_MAGIC),
        (b"CV\x02\x01\x01x", DropReason.UNKNOWN_VERSION),
        (b"CV\x00\x01\x01x", DropReason.UNKNOWN_VERSION),
        (b"CV\x01\x00\x01x", DropReason.BAD_FRAME_TYPE),
        (b"CV\x01\x04\x01x", DropReason.BAD_FRAME_TYPE),
        (b"CV\x01\x01\x02x", DropReason.BAD_FRAME_TYPE),
        (b"CV\x01\x01\x01" + b"x" * (MAX_DATAGRAM - 4), DropReason.OVERSIZED),
    ],
)
def test_header_rejections(data: bytes, reason: DropReason) -> None:
    with pytest.raises(FrameError) as err:
        parse_header(data, MAX_DATAGRAM)
    assert err.value.reason is reason


def test_exactly_max_datagram_is_accepted() -> None:
    frame = b"CV\x01\x01\x01" + b"x" * (MAX_DATAGRAM - 5)
    assert len(frame) == MAX_DATAGRAM
    assert parse_header(frame, MAX_DATAGRAM)[2] == b"x" * (MAX_DATAGRAM - 5)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=255), NODE_IDS, st.lists(MESSAGES, max_size=20))
def test_body_is_plain_msgpack(cluster: str, sender: bytes, msgs: list[Message]) -> None:
    """pack_body's hand-made prefix equals what any msgpack library produces."""
    body = pack_body(body_prefix(cluster, sender), [encode_message_bytes(m) for m in msgs])
    expected = msgpack.packb([cluster, sender, [encode_message(m) for m in msgs]])
    assert body == expected
    c, s, raw = unpack_body(body)
    assert (c, s) == (cluster, sender)
    assert [decode_message(a) for a in raw] == msgs


@pytest.mark.parametrize("count", [0, 15, 16, 65535, 65536])
def test_body_overhead_counts_the_array_header(count: int) -> None:
    prefix = body_prefix("c", SENDER)
    header = len(msgpack.packb([None] * count)) - count  # None packs to one octet
    assert body_overhead(prefix, count) == len(prefix) + header


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_unpack_body_only_raises_frame_errors(data: bytes) -> None:
    try:
        cluster, sender, raw = unpack_body(data)
    except FrameError as exc:
        assert exc.reason is DropReason.MALFORMED
        return
    assert isinstance(cluster, str)
    assert len(sender) == 16
    assert isinstance(raw, list)


@pytest.mark.parametrize(
    "obj",
    [
        ["c", SENDER],
        ["c", SENDER, [], 1],
        {"c": 1},
        [b"c", SENDER, []],
        ["c", SENDER[:15], []],
        ["c", "s" * 16, []],
        ["c", SENDER, {}],
    ],
)
def test_unpack_body_shape(obj: object) -> None:
    with pytest.raises(FrameError) as err:
        unpack_body(msgpack.packb(obj, use_bin_type=True))
    assert err.value.reason is DropReason.MALFORMED


def test_unpack_body_refuses_trailing_bytes() -> None:
    body = msgpack.packb(["c", SENDER, []]) + b"\x00"
    with pytest.raises(FrameError):
        unpack_body(body)


def test_max_body_defaults() -> None:
    assert Keyring([KEY]).max_body() == 975
    assert Keyring([], plaintext=True).max_body() == MAX_DATAGRAM - HEADER_LEN


@settings(max_examples=60, deadline=None)
@given(st.integers(576, 65000))
def test_max_body_is_the_largest_that_fits(limit: int) -> None:
    ring = Keyring([KEY])
    n = ring.max_body(limit)
    fits = build_frame(FrameType.DATAGRAM, Security.FERNET, ring.seal(b"x" * n, 0))
    too_big = build_frame(FrameType.DATAGRAM, Security.FERNET, ring.seal(b"x" * (n + 1), 0))
    assert len(fits) <= limit < len(too_big)


@settings(max_examples=100, deadline=None)
@given(st.lists(DATAGRAM_MESSAGES, min_size=1, max_size=10), st.booleans())
def test_frames_round_trip_through_seal_and_open(msgs: list[Message], plaintext: bool) -> None:
    """Seal like a node does, open like a node does (header, keyring, body, messages)."""
    ring = Keyring([], plaintext=True) if plaintext else Keyring([KEY])
    body = pack_body(body_prefix("c", SENDER), [encode_message_bytes(m) for m in msgs])
    frame = build_frame(FrameType.DATAGRAM, ring.security, ring.seal(body, 1000.0))
    ftype, security, payload = parse_header(frame, MAX_STREAM_FRAME)
    assert ftype is FrameType.DATAGRAM
    assert security is (Security.PLAIN if plaintext else Security.FERNET)
    reader = Keyring([], plaintext=True) if plaintext else Keyring([KEY])
    cluster, sender, raw = unpack_body(reader.open(security, payload, 1001.0))
    assert (cluster, sender) == ("c", SENDER)
    assert [decode_message(a) for a in raw] == msgs
    if not plaintext:
        assert Fernet(KEY).decrypt(frame[HEADER_LEN:]) == body
