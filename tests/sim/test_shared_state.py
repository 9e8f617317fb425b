"""Shared state between simulated nodes: limits, merge rules of facts and settings, bad
sync state (the single-capability unit tests are in tests/core/state/)."""

from __future__ import annotations

import pytest

from covey.core.state.actions import Actions
from covey.core.state.facts.capability import VERSION_KEY, Facts
from covey.core.state.messages import KEY_LIMIT, MAX_KEYS, VALUE_LIMIT, FactUpdate, LimitError
from covey.core.state.settings import ClusterSettings, decode_endpoint, encode_endpoint
from covey.sim import Simulation


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
