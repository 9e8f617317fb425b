"""SWIM merge rules of the member table."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core.events import (
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberRecovered,
    MemberSuspect,
    MemberUpdated,
)
from covey.core.member import Member
from covey.core.membership.table import MemberTable
from covey.core.types import MemberState
from covey.core.wire.messages import Alive, Dead, Suspect

LOCAL = b"\x00" * 16
X = b"\x01" * 16
P = b"\x02" * 16
Q = b"\x03" * 16
ADDR = ("10.0.0.1", 7946)


def table() -> MemberTable:
    local = Member(LOCAL, "local", ("10.0.0.0", 7946), 0, MemberState.ALIVE, 0.0)
    return MemberTable(local, probe_interval=1.0, suspicion_mult=4, suspicion_max_mult=6)


def alive(inc: int, tags: dict[str, str] | None = None, addr: tuple[str, int] = ADDR) -> Alive:
    return Alive(inc, X, "x", addr, {} if tags is None else tags)


def with_x(state: MemberState, inc: int) -> MemberTable:
    """A table that knows X in ``state`` at ``inc`` (peers P and Q alive too)."""
    t = table()
    for nid in (P, Q):
        t.apply_alive(Alive(0, nid, "p", ("10.0.0.9", 1), {}), 0.0)
    assert t.apply_alive(alive(inc), 0.0)
    if state is MemberState.SUSPECT:
        assert t.apply_suspect(Suspect(inc, X, P), 0.0)
    elif state is MemberState.FAILED:
        assert t.apply_dead(Dead(inc, X, P, False), 0.0)
    elif state is MemberState.LEFT:
        assert t.apply_dead(Dead(inc, X, X, True), 0.0)
    t.events.clear()
    assert t.members[X].state is state
    return t


def test_new_member_joins() -> None:
    t = table()
    assert t.apply_alive(alive(3, {"k": "v"}), 1.0)
    m = t.members[X]
    assert (m.state, m.incarnation, m.tags) == (MemberState.ALIVE, 3, {"k": "v"})
    assert [type(e) for e in t.events] == [MemberJoined]
    assert t.live_count == 2


@pytest.mark.parametrize("state", list(MemberState))
def test_lower_incarnation_is_never_news(state: MemberState) -> None:
    t = with_x(state, 5)
    assert not t.apply_alive(alive(4), 1.0)
    assert not t.apply_suspect(Suspect(4, X, P), 1.0)
    assert not t.apply_dead(Dead(4, X, P, False), 1.0)
    assert not t.apply_dead(Dead(4, X, X, True), 1.0)
    assert t.members[X].state is state
    assert t.members[X].incarnation == 5
    assert t.events == []


@pytest.mark.parametrize("state", list(MemberState))
def test_alive_at_same_incarnation_changes_nothing(state: MemberState) -> None:
    t = with_x(state, 5)
    assert not t.apply_alive(alive(5), 1.0)
    assert t.members[X].state is state
    assert t.events == []


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (MemberState.SUSPECT, MemberRecovered),
        (MemberState.FAILED, MemberRecovered),
        (MemberState.LEFT, MemberJoined),
    ],
)
def test_higher_alive_revives(state: MemberState, event: type) -> None:
    t = with_x(state, 5)
    live_before = t.live_count
    assert t.apply_alive(alive(6), 2.0)
    m = t.members[X]
    assert (m.state, m.incarnation, m.state_change) == (MemberState.ALIVE, 6, 2.0)
    assert [type(e) for e in t.events] == [event]
    assert X not in t.suspicions
    assert X not in t.gone
    assert t.live_count == live_before + (state is not MemberState.SUSPECT)


def test_higher_alive_with_new_tags_is_an_update() -> None:
    t = with_x(MemberState.ALIVE, 5)
    assert t.apply_alive(alive(6, {"v": "2"}), 1.0)
    assert [type(e) for e in t.events] == [MemberUpdated]
    assert t.events[0].member.tags == {"v": "2"}  # type: ignore[union-attr]
    t.events.clear()
    assert t.apply_alive(alive(7, {"v": "2"}), 1.0)
    assert t.events == []  # news for gossip, but nothing a user would see
    assert t.apply_alive(alive(8, {"v": "2"}, ("10.0.0.7", 1)), 1.0)
    assert [type(e) for e in t.events] == [MemberUpdated]


def test_tagless_alive_keeps_old_tags_until_complete() -> None:
    t = table()
    t.apply_alive(alive(1, {"v": "1"}), 0.0)
    assert t.apply_alive(Alive(2, X, "x", ADDR, None), 1.0)
    m = t.members[X]
    assert (m.incarnation, m.tags, m.tags_complete) == (2, {"v": "1"}, False)
    t.events.clear()
    # The full tags at the same incarnation complete the record (once).
    assert not t.apply_alive(alive(2, {"v": "2"}), 2.0)
    assert (m.tags, m.tags_complete) == ({"v": "2"}, True)
    assert [type(e) for e in t.events] == [MemberUpdated]
    t.events.clear()
    assert not t.apply_alive(alive(2, {"v": "3"}), 3.0)
    assert m.tags == {"v": "2"}
    assert t.events == []


def test_suspect_applies_to_alive_at_same_or_higher_incarnation() -> None:
    for inc in (5, 6):
        t = with_x(MemberState.ALIVE, 5)
        assert t.apply_suspect(Suspect(inc, X, P), 1.0)
        m = t.members[X]
        assert (m.state, m.incarnation) == (MemberState.SUSPECT, inc)
        assert [type(e) for e in t.events] == [MemberSuspect]
        assert t.live_count == 4  # suspects still count as live


@pytest.mark.parametrize("state", [MemberState.FAILED, MemberState.LEFT])
def test_suspect_does_not_apply_to_gone_members(state: MemberState) -> None:
    t = with_x(state, 5)
    assert not t.apply_suspect(Suspect(9, X, P), 1.0)
    assert t.members[X].state is state


def test_unknown_member_cannot_be_suspected_or_killed() -> None:
    t = table()
    assert not t.apply_suspect(Suspect(1, X, P), 1.0)
    assert not t.apply_dead(Dead(1, X, P, False), 1.0)
    assert X not in t.members


@pytest.mark.parametrize("state", [MemberState.ALIVE, MemberState.SUSPECT])
@pytest.mark.parametrize("left", [False, True])
def test_dead_applies_to_live_members(state: MemberState, left: bool) -> None:
    t = with_x(state, 5)
    assert t.apply_dead(Dead(5, X, P, left), 1.0)
    m = t.members[X]
    assert m.state is (MemberState.LEFT if left else MemberState.FAILED)
    assert [type(e) for e in t.events] == [MemberLeft if left else MemberFailed]
    assert X in t.gone
    assert X not in t.suspicions
    assert t.live_count == 3


def test_left_overrides_failed_but_not_the_reverse() -> None:
    t = with_x(MemberState.FAILED, 5)
    assert not t.apply_dead(Dead(5, X, P, False), 1.0)
    assert t.apply_dead(Dead(5, X, X, True), 1.0)
    assert t.members[X].state is MemberState.LEFT
    assert [type(e) for e in t.events] == [MemberLeft]
    t.events.clear()
    assert not t.apply_dead(Dead(9, X, P, False), 2.0)
    assert not t.apply_dead(Dead(9, X, X, True), 2.0)
    assert t.members[X].state is MemberState.LEFT
    assert t.events == []


def test_reap_forgets_gone_members_after_their_retention() -> None:
    t = table()
    t.apply_alive(alive(0), 0.0)
    t.apply_alive(Alive(0, P, "p", ADDR, {}), 0.0)
    t.apply_dead(Dead(0, X, Q, False), 10.0)
    t.apply_dead(Dead(0, P, P, True), 10.0)
    t.events.clear()
    t.reap(609.0, failed_after=3600.0, left_after=600.0)
    assert t.events == []
    t.reap(610.0, failed_after=3600.0, left_after=600.0)
    assert [type(e) for e in t.events] == [MemberReaped]
    assert P not in t.members and X in t.members
    t.reap(3610.0, failed_after=3600.0, left_after=600.0)
    assert X not in t.members and not t.gone


_UPDATES = st.one_of(
    st.builds(lambda i: ("alive", i), st.integers(0, 6)),
    st.builds(lambda i: ("suspect", i), st.integers(0, 6)),
    st.builds(lambda i: ("failed", i), st.integers(0, 6)),
    st.builds(lambda i: ("left", i), st.integers(0, 6)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_UPDATES, max_size=25))
def test_invariants_under_any_update_sequence(updates: list[tuple[str, int]]) -> None:
    t = table()
    now = 0.0
    for kind, inc in updates:
        now += 1.0
        before = t.members.get(X)
        prev = (before.state, before.incarnation) if before else None
        if kind == "alive":
            t.apply_alive(alive(inc), now)
        elif kind == "suspect":
            t.apply_suspect(Suspect(inc, X, P), now)
        else:
            t.apply_dead(Dead(inc, X, P, kind == "left"), now)
        m = t.members.get(X)
        if m is None:
            continue
        assert m.incarnation >= (prev[1] if prev else 0)  # incarnations never go back
        if prev and prev[0] is MemberState.LEFT and m.state is not MemberState.LEFT:
            assert kind == "alive" and m.incarnation > prev[1]  # revival needs a higher one
        if prev and prev[0] is MemberState.FAILED and m.state is MemberState.ALIVE:
            assert m.incarnation > prev[1]
        # bookkeeping stays consistent
        live_states = (MemberState.ALIVE, MemberState.SUSPECT)
        live = {k for k, v in t.members.items() if v.state in live_states}
        assert t.live_count == len(live)
        assert set(t.gone) == set(t.members) - live
        assert (X in t.suspicions) == (m.state is MemberState.SUSPECT)
