"""Shared-state message codecs: round trips through msgpack and strict decoding."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.core import MalformedMessage
from covey.core.state.actions import Actions
from covey.core.state.facts.capability import Facts
from covey.core.state.messages import (
    VALUE_LIMIT,
    ActionAck,
    ActionRequest,
    ActionResult,
    FactBatch,
    FactDigest,
    FactNotice,
    FactPull,
    FactUpdate,
    SettingUpdate,
)
from covey.core.state.settings import ClusterSettings
from covey.core.wire.messages import MessageTypes, encode_message

_ids = st.binary(min_size=16, max_size=16)
_keys = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.:@+=-]{0,20}", fullmatch=True)
_values = st.text(max_size=50).filter(lambda s: "\x00" not in s)
_counters = st.integers(0, 2**63 - 1)

_messages = st.one_of(
    st.builds(FactUpdate, _ids, _counters, _keys, st.none() | _values),
    st.builds(FactNotice, _ids, _counters),
    st.builds(FactPull, st.lists(_ids, max_size=5).map(tuple)),
    st.builds(
        FactBatch,
        st.lists(st.tuples(_ids, _keys, _counters, st.none() | _values), max_size=5).map(tuple),
    ),
    st.builds(SettingUpdate, _keys, st.none() | _values, _counters, _ids),
    st.builds(ActionRequest, _ids, _ids, _counters, _keys, _values),
    st.builds(ActionResult, _ids, st.booleans(), _values),
    st.builds(ActionAck, _ids),
    st.builds(
        FactDigest,
        st.lists(st.tuples(_ids, _counters, st.integers(0, 2**64 - 1)), max_size=5).map(tuple),
    ),
)

_TYPES = MessageTypes()  # one node's table, as a node running these capabilities has
for _cls in (Facts, ClusterSettings, Actions):
    for _m in _cls.message_types:
        _TYPES.add(_m)


@given(_messages)
def test_every_message_round_trips_through_msgpack(msg: Any) -> None:
    wire = msgpack.unpackb(msgpack.packb(encode_message(msg)), raw=False)
    assert _TYPES.decode(wire) == msg


@pytest.mark.parametrize(
    "arr",
    [
        [50, b"short", 1, "k", "v"],  # id too short
        [50, b"x" * 16, -1, "k", "v"],  # negative counter
        [50, b"x" * 16, 1, "../etc", "v"],  # key that would escape the export tree
        [50, b"x" * 16, 1, "k", "v" * (VALUE_LIMIT + 1)],  # value too big
        [50, b"x" * 16, 1, "k"],  # field missing
        [51, b"x" * 16, True],  # bool is not a counter
        [53, [[b"x" * 16, "k", 1]]],  # short entry
        [54, "n", 7, 1, b"x" * 16],  # value of the wrong type
        [56, b"x" * 16, 1, "r"],  # ok flag not a bool
        [55, b"x" * 16, b"y" * 16, 1, "n", None],  # payload missing
        [58, [[b"x" * 16, 1, 2**64]]],  # fingerprint out of range
    ],
)
def test_malformed_arrays_are_refused(arr: list[Any]) -> None:
    with pytest.raises(MalformedMessage):
        _TYPES.decode(arr)
