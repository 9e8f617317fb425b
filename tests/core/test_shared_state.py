"""Shared-state core pieces: versions, message codecs, limits, merge rules, bad input."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.core import MalformedMessage
from covey.core.state.actions import Actions
from covey.core.state.facts.capability import VERSION_KEY, Facts
from covey.core.state.messages import (
    KEY_LIMIT,
    MAX_KEYS,
    VALUE_LIMIT,
    ActionAck,
    ActionRequest,
    ActionResult,
    FactBatch,
    FactDigest,
    FactNotice,
    FactPull,
    FactUpdate,
    LimitError,
    SettingUpdate,
)
from covey.core.state.settings import ClusterSettings, decode_endpoint, encode_endpoint
from covey.core.state.versions import VersionError, compare_versions, lowest_version, parse_version
from covey.core.wire.messages import MessageTypes, encode_message
from covey.sim import Simulation

# ------------------------------------------------------------------ versions


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("4.12", "4.12.0", 0),
        ("4.12", "4.13", -1),
        ("4.9", "4.12", -1),  # numeric, not lexical
        ("10.0", "9.99", 1),
        ("9000000", "4.12", 1),
        ("9000000", "9000000", 0),
        (" 7 ", "7", 0),
    ],
)
def test_versions_compare_numerically_by_component(a: str, b: str, want: int) -> None:
    assert compare_versions(a, b) == want


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("4.x", "not a number"),
        ("-1", "not a number"),
        ("1..2", "empty component"),
        ("1.", "empty component"),
        ("v4", "not a number"),
        ("١٢", "not a number"),  # non-ASCII digits
        (".".join(["1"] * 9), "more than"),
        ("1" * 19, "too long"),
    ],
)
def test_garbage_versions_are_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(VersionError, match=why):
        parse_version(text)


def test_lowest_version_is_unknown_while_any_is_missing_or_invalid() -> None:
    assert lowest_version(["4.13", "4.12.1", "5"]) == "4.12.1"
    assert lowest_version(["4.13", None]) is None
    assert lowest_version(["4.13", "junk"]) is None
    assert lowest_version([]) is None


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=4), st.integers(0, 10**6))
def test_version_order_matches_tuple_order(parts: list[int], extra: int) -> None:
    text = ".".join(map(str, parts))
    assert compare_versions(text, text + ".0") == 0
    bumped = ".".join(map(str, [*parts[:-1], parts[-1] + 1 + extra]))
    assert compare_versions(text, bumped) == -1


# ------------------------------------------------------------------ codecs

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


# ------------------------------------------------------------------ facts behaviour


def _pair() -> tuple[Simulation, Facts, Facts]:
    sim = Simulation(3, extensions=lambda h: [Facts()])
    a, b = sim.bootstrap(2)
    fa, fb = a.node.capability("facts"), b.node.capability("facts")
    assert isinstance(fa, Facts) and isinstance(fb, Facts)
    return sim, fa, fb


def test_limits_are_enforced_with_the_field_named() -> None:
    sim, fa, _ = _pair()
    with pytest.raises(LimitError, match=r"key: .* limit 128"):
        fa.set("k" * (KEY_LIMIT + 1), "v", sim.now)
    with pytest.raises(LimitError, match="value: 1025 octets, limit 1024"):
        fa.set("k", "v" * (VALUE_LIMIT + 1), sim.now)
    with pytest.raises(LimitError, match="key: 'a/b'"):
        fa.set("a/b", "v", sim.now)
    with pytest.raises(LimitError, match="value: version"):
        fa.set(VERSION_KEY, "4.x", sim.now)
    for i in range(MAX_KEYS):
        fa.set(f"k{i}", "v", sim.now)
    with pytest.raises(LimitError, match="256 facts"):
        fa.set("one-more", "v", sim.now)
    assert fa.set("k0", "changed", sim.now)  # replacing an existing key is fine
    assert len(fa.facts_of(fa.handle.node_id)) == MAX_KEYS


def test_older_updates_lose_and_deletions_spread() -> None:
    sim, fa, fb = _pair()
    aid = fa.handle.node_id
    fa.set("mode", "one", sim.now)
    fa.set("mode", "two", sim.now)
    sim.run_for(1.0)
    assert fb.facts_of(aid) == {"mode": "two"}
    # A late copy of the first write changes nothing.
    fb.on_message(FactUpdate(aid, 1, "mode", "one"), aid, ("n0", 7946), sim.now)
    assert fb.facts_of(aid) == {"mode": "two"}
    assert fa.delete("mode", sim.now) and not fa.delete("mode", sim.now)
    sim.run_for(1.0)
    assert fb.facts_of(aid) == {}
    assert fb.digest()[aid] == fa.digest()[aid]


def test_a_node_refutes_a_newer_copy_of_its_own_facts() -> None:
    sim, fa, fb = _pair()
    aid = fa.handle.node_id
    fa.set("role", "db", sim.now)
    sim.run_for(1.0)
    # Someone claims a newer fact of ours (e.g. from before we lost our store).
    fa.on_message(FactUpdate(aid, 99, "role", "web"), fb.handle.node_id, ("n1", 7946), sim.now)
    fa.on_message(FactUpdate(aid, 98, "ghost", "x"), fb.handle.node_id, ("n1", 7946), sim.now)
    assert fa.seq > 99
    sim.run_for(1.0)
    assert fb.facts_of(aid) == {"role": "db"}


def test_settings_last_writer_wins_with_node_id_tie_break() -> None:
    sim = Simulation(4, extensions=lambda h: [ClusterSettings()])
    a, b = sim.bootstrap(2)
    sa, sb = a.node.capability("settings"), b.node.capability("settings")
    assert isinstance(sa, ClusterSettings) and isinstance(sb, ClusterSettings)
    ua = sa.set("steward", "A", sim.now)
    ub = sb.set("steward", "B", sim.now)
    assert ua.lamport == ub.lamport == 1
    sim.run_for(2.0)
    want = "A" if a.config.node_id > b.config.node_id else "B"
    assert sa.get("steward") == sb.get("steward") == want
    sb.set("steward", None, sim.now)
    sim.run_for(2.0)
    assert sa.get("steward") is None and sa.items() == {}


def test_endpoints_are_checked() -> None:
    text = encode_endpoint("10.0.0.1", 5000, "k")
    assert decode_endpoint(text) == {"ip": "10.0.0.1", "port": 5000, "key": "k"}
    with pytest.raises(ValueError, match="ip: 'nowhere'"):
        encode_endpoint("nowhere", 5000)
    with pytest.raises(ValueError, match="port: 0"):
        encode_endpoint("10.0.0.1", 0)
    assert decode_endpoint("not json") is None


def test_bad_sync_state_is_ignored_not_raised() -> None:
    sim, fa, _ = _pair()
    sender = fa.handle.node_id
    for junk in (None, 7, "x", [1, 2], [[b"short", 1, 2]], [[b"x" * 16, "1", 2]], {"a": 1}):
        fa.merge_sync_state(junk, sender, sim.now)
        ClusterSettings.merge_sync_state(ClusterSettings(), junk, sender, sim.now)
        Actions.merge_sync_state(Actions(), junk, sender, sim.now)
