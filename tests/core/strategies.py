"""Hypothesis strategies for every wire message, within the limits the decoder enforces."""

from __future__ import annotations

from hypothesis import strategies as st

from covey.core.types import BeaconState, MemberState
from covey.core.wire.messages import (
    Ack,
    Alive,
    Beacon,
    Dead,
    MemberRecord,
    Message,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
)

U32 = st.integers(0, 2**32 - 1)
#: Incarnations: 63 bits, so that refuting the largest one still encodes as a uint64.
U64 = st.integers(0, 2**63 - 1)
NODE_IDS = st.binary(min_size=16, max_size=16)
# Text fields are limited to 255 octets of UTF-8, not characters.
TEXT = st.text(max_size=255).filter(lambda t: len(t.encode()) <= 255)
HOST = st.text(min_size=1, max_size=255).filter(lambda t: len(t.encode()) <= 255)
PORT = st.integers(1, 65535)
ADDRESS = st.tuples(HOST, PORT)
TAGS = st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=8)

PINGS = st.builds(Ping, U32, NODE_IDS)
ACKS = st.builds(Ack, U32)
NACKS = st.builds(Nack, U32)
PING_REQS = st.builds(PingReq, U32, NODE_IDS, ADDRESS, st.booleans())
ALIVES = st.builds(Alive, U64, NODE_IDS, TEXT, ADDRESS, st.none() | TAGS)
SUSPECTS = st.builds(Suspect, U64, NODE_IDS, NODE_IDS)
DEADS = st.builds(Dead, U64, NODE_IDS, NODE_IDS, st.booleans())
RECORDS = st.builds(
    MemberRecord, NODE_IDS, TEXT, ADDRESS, U64, st.sampled_from(MemberState), st.none() | TAGS
)
PUSH_PULLS = st.builds(
    PushPull,
    st.booleans(),
    st.booleans(),
    st.lists(RECORDS, max_size=5).map(tuple),
)
BEACONS = st.builds(Beacon, NODE_IDS, TEXT, ADDRESS, st.sampled_from(BeaconState), U64)

#: Everything that may travel in a datagram (push-pull is stream-only).
DATAGRAM_MESSAGES: st.SearchStrategy[Message] = st.one_of(
    PINGS, ACKS, NACKS, PING_REQS, ALIVES, SUSPECTS, DEADS, BEACONS
)
MESSAGES: st.SearchStrategy[Message] = st.one_of(DATAGRAM_MESSAGES, PUSH_PULLS)
