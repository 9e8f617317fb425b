"""Message codec: exact array shapes, round trips, and the decoder's strictness."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core.types import BeaconState, MemberState
from covey.core.wire.messages import (
    Ack,
    Alive,
    Beacon,
    Dead,
    MalformedMessage,
    MemberRecord,
    Message,
    MsgType,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    UnknownMessage,
    decode_message,
    encode_message,
)

from ..strategies import MESSAGES

A = b"\xaa" * 16
B = b"\xbb" * 16


def wire_roundtrip(msg: Message) -> Message:
    packed = msgpack.packb(encode_message(msg), use_bin_type=True)
    return decode_message(msgpack.unpackb(packed, raw=False, strict_map_key=True))


def test_type_numbers_are_stable() -> None:
    assert {t.name: t.value for t in MsgType} == {
        "PING": 1,
        "ACK": 2,
        "NACK": 3,
        "PING_REQ": 4,
        "ALIVE": 5,
        "SUSPECT": 6,
        "DEAD": 7,
        "PUSH_PULL": 8,
        "BEACON": 9,
    }


@pytest.mark.parametrize(
    ("msg", "array"),
    [
        (Ping(7, A), [1, 7, A]),
        (Ack(7), [2, 7]),
        (Nack(7), [3, 7]),
        (PingReq(7, A, ("h", 9), True), [4, 7, A, "h", 9, True]),
        (Alive(3, A, "n", ("h", 9), {"k": "v"}), [5, 3, A, "n", "h", 9, {"k": "v"}]),
        (Alive(3, A, "n", ("h", 9), None), [5, 3, A, "n", "h", 9, None]),
        (Suspect(3, A, B), [6, 3, A, B]),
        (Dead(3, A, B, False), [7, 3, A, B, False]),
        (
            PushPull(True, False, (MemberRecord(A, "n", ("h", 9), 3, MemberState.LEFT, {}),)),
            [8, True, False, [[A, "n", "h", 9, 3, 3, {}]]],
        ),
        (Beacon(A, "n", ("h", 9), BeaconState.EXIT, 4), [9, A, "n", "h", 9, 2, 4]),
    ],
)
def test_array_shapes_match_the_spec(msg: Message, array: list[Any]) -> None:
    # Compare the msgpack bytes, so IntEnum vs int and tuple vs list cannot hide a difference.
    assert msgpack.packb(encode_message(msg), use_bin_type=True) == msgpack.packb(
        array, use_bin_type=True
    )
    assert wire_roundtrip(msg) == msg


def test_node_ids_travel_as_bin_and_names_as_str() -> None:
    packed = msgpack.packb(encode_message(Beacon(A, "n", ("h", 9), BeaconState.INIT, 0)))
    # fixarray(7), positive fixint 9, bin8 of 16 octets, fixstr "n"
    assert packed[:4] == b"\x97\x09\xc4\x10"
    assert packed[4:20] == A
    assert packed[20:22] == b"\xa1n"


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_every_message_round_trips(msg: Message) -> None:
    assert wire_roundtrip(msg) == msg


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats(allow_nan=False)
        | st.text(max_size=300)
        | st.binary(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=30,
    )
)
def test_decoder_raises_only_its_own_errors(obj: Any) -> None:
    try:
        msg = decode_message(obj)
    except (MalformedMessage, UnknownMessage):
        return
    # Anything accepted must be a real message that encodes back to the same value.
    assert encode_message(msg) == obj


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 9).flatmap(
        lambda t: st.tuples(st.just(t), st.lists(st.integers(0, 5), max_size=9))
    )
)
def test_wrong_arity_is_malformed(args: tuple[int, list[int]]) -> None:
    kind, rest = args
    arity = {1: 3, 2: 2, 3: 2, 4: 6, 5: 7, 6: 4, 7: 5, 8: 4, 9: 7}[kind]
    arr = [kind, *rest]
    if len(arr) == arity:
        arr.append(0)
    with pytest.raises(MalformedMessage):
        decode_message(arr)


@pytest.mark.parametrize(
    "arr",
    [
        [],
        "ping",
        [True, 1, A],  # a boolean is not a type number
        [1.0, 1, A],
        [1, 2**32, A],  # seq is 32-bit
        [1, -1, A],
        [1, True, A],  # booleans are not integers
        [1, 1, A[:15]],  # node id must be 16 octets
        [1, 1, "a" * 16],  # ... and binary, not text
        [5, 2**63, A, "n", "h", 9, None],  # incarnation is 63-bit (room to refute)
        [5, 1, A, "x" * 256, "h", 9, None],  # text is at most 255 octets
        [5, 1, A, "\u20ac" * 86, "h", 9, None],  # ... of UTF-8, not characters
        [5, 1, A, "n", "", 9, None],  # empty host
        [5, 1, A, "n", "h", 0, None],  # port 0
        [5, 1, A, "n", "h", 65536, None],
        [5, 1, A, "n", "h", 9, {"k": 1}],  # tag values are text
        [5, 1, A, "n", "h", 9, {b"k": "v"}],  # tag keys are text
        [5, 1, A, "n", "h", 9, ["k", "v"]],
        [4, 1, A, "h", 9, 1],  # want_nack is a boolean
        [7, 1, A, B, 0],
        [8, False, False, [[A, "n", "h", 9, 1, 4, {}]]],  # member state 4
        [8, False, False, [[A, "n", "h", 9, 1, 0, "tags"]]],  # tags are a map or nil
        [8, False, False, [[A, "n", "h", 9, 1, 0]]],
        [8, False, False, "members"],
        [9, A, "n", "h", 9, 4, 0],  # beacon state 4
        [9, A, "n", "h", 9, -1, 0],
    ],
)
def test_malformed_messages_are_refused(arr: Any) -> None:
    with pytest.raises(MalformedMessage):
        decode_message(arr)


@pytest.mark.parametrize("kind", [0, 10, 255, 2**40])
def test_unknown_type_numbers_are_told_apart(kind: int) -> None:
    with pytest.raises(UnknownMessage):
        decode_message([kind, 1, 2])


def test_encode_refuses_non_messages() -> None:
    with pytest.raises(TypeError):
        encode_message("ping")  # type: ignore[arg-type]
