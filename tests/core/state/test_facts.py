"""Facts against a fake handle: merge rules, refutation, effects, the anti-entropy part."""

from __future__ import annotations

from covey.core import MemberState
from covey.core.state.facts.capability import (
    FactChanged,
    Facts,
    NodeFactsDropped,
    SaveFact,
)
from covey.core.state.facts.sync import AntiEntropy
from covey.core.state.messages import FactPull, FactUpdate

from ..fakes import FakeHandle, add_member, attach, node_id, set_state


def _facts() -> tuple[Facts, FakeHandle]:
    f = Facts()
    h = attach(f, FakeHandle(1))
    add_member(h, f, 2)
    return f, h


def _changes(h: FakeHandle) -> list[FactChanged]:
    return [e for e in h.events if isinstance(e, FactChanged)]


def _from(f: Facts, h: FakeHandle, seq: int, key: str, value: str | None, *, now: float) -> None:
    """n2 tells us about a fact of its own."""
    sender = h.members.members[node_id(2)]
    f.on_message(FactUpdate(node_id(2), seq, key, value), sender.node_id, sender.address, now)


def test_set_and_delete_persist_a_save_fact_each_with_the_next_seq() -> None:
    f, h = _facts()
    assert f.set("ready", "yes", 1.0)
    assert not f.set("ready", "yes", 2.0)  # unchanged: nothing to persist
    assert f.delete("ready", 3.0)
    assert not f.delete("ready", 4.0)
    assert h.effects == [SaveFact(1, "ready", "yes"), SaveFact(2, "ready", None)]
    assert f.facts_of(h.node_id) == {}
    assert [m for _, m, _ in h.gossiped] == [
        FactUpdate(h.node_id, 1, "ready", "yes"),
        FactUpdate(h.node_id, 2, "ready", None),
    ]


def test_restored_facts_are_held_at_start_and_the_counter_goes_on_from_them() -> None:
    f = Facts(restored=(7, {"ready": (5, "yes"), "gone": (7, None)}))
    h = attach(f, FakeHandle(1))
    assert f.facts_of(h.node_id) == {"ready": "yes"}
    assert h.effects == []  # what was restored is on disk already
    f.set("ready", "no", 1.0)
    assert h.effects == [SaveFact(8, "ready", "no")]


def test_a_newer_seq_wins_and_an_older_or_equal_one_is_ignored() -> None:
    f, h = _facts()
    _from(f, h, 3, "k", "three", now=1.0)
    _from(f, h, 2, "k", "two", now=2.0)  # older: ignored
    _from(f, h, 3, "k", "again", now=3.0)  # same seq: ignored
    assert f.facts_of(node_id(2)) == {"k": "three"}
    _from(f, h, 4, "k", None, now=4.0)  # a newer deletion wins too
    assert f.facts_of(node_id(2)) == {}
    assert [(e.seq, e.value) for e in _changes(h)] == [(3, "three"), (4, None)]
    assert h.effects == []  # others' facts are never persisted


def test_a_node_that_hears_of_its_own_fact_with_a_newer_seq_takes_over_that_seq() -> None:
    """It lost its store: a peer holds a fact of its past life. It jumps its counter past
    that seq and re-publishes what it really holds (persisted, then gossiped)."""
    f, h = _facts()
    f.set("ready", "yes", 1.0)
    h.effects.clear()
    h.gossiped.clear()
    peer = h.members.members[node_id(2)]
    stale = FactUpdate(h.node_id, 10, "ready", "from-a-past-life")
    f.on_message(stale, peer.node_id, peer.address, 2.0)
    assert f.seq == 11
    assert h.effects == [SaveFact(11, "ready", "yes")]
    assert h.gossiped[-1][1] == FactUpdate(h.node_id, 11, "ready", "yes")
    assert f.facts_of(h.node_id) == {"ready": "yes"}
    # A deletion of a fact we do not hold only moves the counter: nothing to re-assert.
    f.on_message(FactUpdate(h.node_id, 20, "old", None), peer.node_id, peer.address, 3.0)
    assert f.seq == 20 and len(h.effects) == 1
    f.set("new", "x", 4.0)
    assert h.effects[-1] == SaveFact(21, "new", "x")


def test_the_facts_of_a_member_that_left_are_dropped_and_refused_until_it_joins() -> None:
    f, h = _facts()
    _from(f, h, 1, "k", "v", now=1.0)
    set_state(h, f, 2, MemberState.LEFT, now=2.0)
    assert node_id(2) not in f.origins
    assert any(isinstance(e, NodeFactsDropped) and e.node_id == node_id(2) for e in h.events)
    _from(f, h, 2, "k", "late", now=3.0)
    assert f.facts_of(node_id(2)) == {}
    add_member(h, f, 2, now=4.0)  # joins again
    _from(f, h, 3, "k", "back", now=5.0)
    assert f.facts_of(node_id(2)) == {"k": "back"}


def test_the_anti_entropy_is_a_component_that_pulls_what_a_digest_shows_us_behind_on() -> None:
    f, h = _facts()
    assert isinstance(f.sync, AntiEntropy) and not isinstance(f, AntiEntropy)
    _from(f, h, 1, "k", "v", now=1.0)
    assert [node_id(2), 1, f.origins[node_id(2)].fp] in f.sync_state()
    peer = h.members.members[node_id(2)]
    f.merge_sync_state([[node_id(2), 5, 12345]], peer.node_id, 2.0)
    assert h.streams[-1] == (peer.address, [FactPull((node_id(2),))])
    # Within the pull backoff the same origin is not pulled again.
    f.merge_sync_state([[node_id(2), 6, 999]], peer.node_id, 2.5)
    assert len(h.streams) == 1
    # An equal digest asks for nothing.
    f.merge_sync_state(f.sync_state(), peer.node_id, 9.0)
    assert len(h.streams) == 1
