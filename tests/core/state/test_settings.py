"""Cluster settings against a fake handle: last writer wins by (Lamport time, writer)."""

from __future__ import annotations

from covey.core.state.messages import SettingUpdate
from covey.core.state.settings import ClusterSettings, SettingChanged

from ..fakes import FakeHandle, add_member, attach, node_id


def _settings() -> tuple[ClusterSettings, FakeHandle]:
    s = ClusterSettings()
    h = attach(s, FakeHandle(5))
    add_member(h, s, 2)
    return s, h


def _hear(s: ClusterSettings, h: FakeHandle, upd: SettingUpdate, now: float = 1.0) -> None:
    peer = h.members.members[node_id(2)]
    s.on_message(upd, peer.node_id, peer.address, now)


def test_the_highest_lamport_time_wins_whatever_the_order() -> None:
    s, h = _settings()
    _hear(s, h, SettingUpdate("registry", "b", 4, node_id(2)))
    _hear(s, h, SettingUpdate("registry", "a", 3, node_id(9)))  # older: ignored
    assert s.get("registry") == "b"
    changed = [e for e in h.events if isinstance(e, SettingChanged)]
    assert [(e.value, e.lamport) for e in changed] == [("b", 4)]


def test_equal_lamport_times_are_broken_by_the_writer_id() -> None:
    s, h = _settings()
    _hear(s, h, SettingUpdate("steward", "high", 4, node_id(9)))
    _hear(s, h, SettingUpdate("steward", "low", 4, node_id(3)))
    assert s.get("steward") == "high"
    _hear(s, h, SettingUpdate("steward", "higher", 4, node_id(10)))
    assert s.get("steward") == "higher"


def test_a_write_made_after_seeing_another_wins_over_it() -> None:
    s, h = _settings()
    _hear(s, h, SettingUpdate("registry", "theirs", 41, node_id(9)))
    mine = s.set("registry", "mine", 2.0)  # our id is lower, but our clock moved past 41
    assert mine.lamport == 42 and s.get("registry") == "mine"
    assert h.gossiped[-1][1] == mine


def test_a_deletion_is_a_tombstone_that_wins_like_a_write() -> None:
    s, h = _settings()
    s.set("registry", "x", 1.0)
    s.set("registry", None, 2.0)
    assert s.get("registry") is None and s.items() == {}
    _hear(s, h, SettingUpdate("registry", "stale", 1, node_id(9)))  # older than the delete
    assert s.get("registry") is None
    s.merge_sync_state(
        [SettingUpdate("registry", "new", 10, node_id(2)).to_array()], node_id(2), 3.0
    )
    assert s.items() == {"registry": "new"}
