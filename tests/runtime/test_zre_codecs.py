"""The ZRE codecs: beacons are 22 bytes or nothing, messages round-trip, and neither
decoder raises on anything (bounded random mutations of valid input)."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.runtime.zre import messages as m
from covey.runtime.zre.beacon import LENGTH, MAGIC, Beacon, decode_beacon, encode_beacon
from covey.runtime.zre.messages import ZreMessage, decode, encode

UUID = bytes(range(16))


def test_beacon_layout_is_rfc36() -> None:
    """``ZRE`` + version 1 + UUID + port in network order: pyre's own struct packing."""
    data = encode_beacon(Beacon(UUID, 0x1234))
    assert data == b"ZRE\x01" + UUID + b"\x12\x34"
    assert data == struct.pack("cccb16sH", b"Z", b"R", b"E", 1, UUID, 0x3412)  # pyre's htons
    assert decode_beacon(data) == (Beacon(UUID, 0x1234), "")
    assert decode_beacon(data, own=UUID) == (None, "own")
    assert decode_beacon(encode_beacon(Beacon(UUID, 0)))[0] == Beacon(UUID, 0)


@given(st.binary(max_size=40), st.integers(-(2**20), 2**20))
def test_the_encoder_makes_22_bytes_or_refuses(uuid: bytes, port: int) -> None:
    try:
        data = encode_beacon(Beacon(uuid, port))
    except ValueError:
        assert len(uuid) != 16 or not 0 <= port <= 0xFFFF
    else:
        assert len(data) == LENGTH and data.startswith(MAGIC)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"ZRE\x01" + UUID + b"\x00", "bad_length"),
        (b"ZRE\x01" + UUID + b"\x00\x01\x02", "bad_length"),
        (b"ZRE", "bad_length"),
        (b"ZRE\x02" + UUID + b"\x00\x01", "bad_version"),
        (b"ZRF\x01" + UUID + b"\x00\x01", "not_zre"),
        (b"", "not_zre"),
    ],
)
def test_malformed_beacons_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    assert decode_beacon(data) == (None, reason)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    op = rng.randrange(4)
    if op == 0 and b:
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 1:
        del b[rng.randrange(len(b) + 1) :]
    elif op == 2:
        b += rng.randbytes(rng.randint(1, 8))
    else:
        b = bytearray(data[:3] + rng.randbytes(rng.randint(0, 40)))
    return bytes(b)


def test_ten_thousand_mutated_beacons_never_raise() -> None:
    rng = random.Random(36)
    base = encode_beacon(Beacon(UUID, 5670))
    reasons: dict[str, int] = {}
    for _ in range(10_000):
        data = _mutate(rng, base)
        beacon, reason = decode_beacon(data)
        assert (beacon is None) == bool(reason)
        if beacon is not None:
            assert len(data) == LENGTH and encode_beacon(beacon) == data
        reasons[reason] = reasons.get(reason, 0) + 1
    assert reasons["bad_length"] > 1000 and reasons[""] > 100


HELLO = ZreMessage(
    m.HELLO,
    1,
    "tcp://127.0.0.1:5000",
    ("chat", "ops"),
    2,
    "cov1",
    {"X-COVEY-CLUSTER": "c", "k": "v" * 300},
)


def test_hello_layout_matches_zre_msg() -> None:
    """The fields in zre_msg order: signature, id, version, sequence, endpoint, groups,
    status, name, headers (key a string, value a long string)."""
    frame = encode(HELLO)[0]
    assert frame[:6] == b"\xaa\xa1\x01\x02\x00\x01"
    assert frame[6:27] == b"\x14tcp://127.0.0.1:5000"
    assert frame[27:31] == b"\x00\x00\x00\x02" and frame[31:39] == b"\x00\x00\x00\x04chat"
    assert decode([frame]) == (HELLO, "")


@pytest.mark.parametrize(
    "msg",
    [
        HELLO,
        ZreMessage(m.WHISPER, 7, content=(b"a", b"\xff\x00")),
        ZreMessage(m.SHOUT, 65535, group="chat", content=(b"hi",)),
        ZreMessage(m.JOIN, 3, group="chat", status=255),
        ZreMessage(m.LEAVE, 4, group="x" * 255, status=0),
        ZreMessage(m.PING, 5),
        ZreMessage(m.PING_OK, 6),
    ],
)
def test_messages_round_trip(msg: ZreMessage) -> None:
    assert decode(encode(msg)) == (msg, "")


def test_the_encoder_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        encode(ZreMessage(m.SHOUT, 1, group="g" * 256))
    with pytest.raises(ValueError):
        encode(ZreMessage(m.PING, 70000))
    with pytest.raises(ValueError):
        encode(ZreMessage(99))


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([], "empty"),
        ([b""], "empty"),
        ([b"\xaa\xa0\x06\x02\x00\x01"], "bad_signature"),
        ([b"\xaa\xa1\x06\x03\x00\x01"], "bad_version"),
        ([b"\xaa\xa1\x09\x02\x00\x01"], "unknown_kind"),
        ([b"\xaa\xa1\x06\x02\x00"], "truncated"),
        ([b"\xaa\xa1\x06\x02\x00\x01\x00"], "trailing"),
        ([b"\xaa\xa1\x03\x02\x00\x01\x02\xff\xfe"], "bad_text"),
        ([b"\xaa\xa1\x01\x02\x00\x01\x00\xff\xff\xff\xff"], "too_many_items"),
        ([b"\xaa\xa1\x02\x02\x00\x01", *([b"x"] * 64)], "too_many_frames"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(frames: list[bytes], reason: str) -> None:
    assert decode(frames) == (None, reason)


def test_ten_thousand_mutated_messages_never_raise() -> None:
    rng = random.Random(2)
    valid = [encode(HELLO)[0], encode(ZreMessage(m.JOIN, 3, group="chat", status=1))[0]]
    refused = 0
    for _ in range(10_000):
        frame = _mutate(rng, rng.choice(valid))
        msg, reason = decode([frame])
        refused += msg is None
        assert (msg is None) == bool(reason)
    assert refused > 5000


def test_identity_frames() -> None:
    assert m.identity(UUID) == b"\x01" + UUID
    assert m.sender(m.identity(UUID)) == UUID
    assert m.sender(UUID) is None and m.sender(b"\x00" + UUID) is None
