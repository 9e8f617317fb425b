"""Election messages: array round trips, strict decoding, and the config checks."""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.core import ConfigError, MalformedMessage
from covey.core.election.election import ElectionConfig
from covey.core.election.messages import (
    ELECTION_MESSAGES,
    Expect,
    Heartbeat,
    HeartbeatAck,
    Info,
    Recover,
    VoteReply,
    VoteRequest,
)
from covey.core.plugin import ExtensionMessage

u63 = st.integers(0, (1 << 63) - 1)
text = st.text(max_size=40)

messages = st.one_of(
    st.builds(VoteRequest, u63, st.booleans(), u63, u63, u63),
    st.builds(VoteReply, u63, st.booleans(), st.booleans(), u63, u63, u63),
    st.builds(Heartbeat, u63, u63, u63, text, u63, st.booleans(), u63),
    st.builds(HeartbeatAck, u63, u63, u63, st.booleans(), text, u63, u63, u63),
    st.builds(Recover, u63),
    st.builds(Expect, u63, u63, st.booleans()),
    st.builds(
        Info,
        u63,
        st.sampled_from([b"", b"x" * 16]),
        st.sampled_from(["follower", "candidate", "leader"]),
        u63,
        u63,
    ),
)


@given(messages)
def test_round_trip_through_msgpack(msg: ExtensionMessage) -> None:
    arr = msgpack.unpackb(msgpack.packb(msg.to_array()))
    assert type(msg).from_array(arr) == msg


junk = st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.binary(), st.floats())


@given(st.lists(junk, max_size=8))
def test_junk_arrays_raise_malformed_only(fields: list[Any]) -> None:
    """Any other exception (TypeError, IndexError...) would escape the receive path."""
    for cls in ELECTION_MESSAGES:
        with contextlib.suppress(MalformedMessage):
            msg = cls.from_array(fields)
            assert msg.to_array() == fields


def test_types_are_in_the_election_range_and_distinct() -> None:
    types = [c.TYPE for c in ELECTION_MESSAGES]
    assert len(set(types)) == len(types) and all(40 <= t <= 49 for t in types)


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ([True, False, 5, 0, 0], "term"),  # a bool is not a term
        ([1, 1, 5, 0, 0], "pre"),
        ([1, False, -1, 0, 0], "expected"),
        ([1, False, 5, 0, -1], "size_gen"),
        ([1, False, 5, 0], "fields"),
    ],
)
def test_vote_request_rejects_each_bad_field(fields: list[Any], word: str) -> None:
    with pytest.raises(MalformedMessage, match=word):
        VoteRequest.from_array(fields)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"expected_votes": 0}, "expected_votes"),
        ({"expected_votes": 5, "lease": 2.0, "follower_wait": 1.5}, "lease"),
        ({"expected_votes": 3, "two_node": True}, "two_node"),
        ({"expected_votes": 5, "heartbeat_interval": 0.6}, "heartbeat_interval"),
        ({"expected_votes": None, "bootstrap": -1.0}, "bootstrap"),
        ({"expected_votes": None, "bootstrap": float("nan")}, "bootstrap"),
    ],
)
def test_config_errors_name_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        ElectionConfig(**kw)
