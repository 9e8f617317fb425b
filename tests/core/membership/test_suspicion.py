"""Lifeguard suspicion: the timeout starts long and shrinks with independent confirmations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core.member import Member
from covey.core.membership.suspicion import Suspicion, suspicion_bounds
from covey.core.membership.table import MemberTable
from covey.core.types import MemberState
from covey.core.wire.messages import Alive, Suspect


def ids(n: int) -> list[bytes]:
    return [bytes([i + 1]) * 16 for i in range(n)]


@pytest.mark.parametrize(
    ("n", "low"),
    [(1, 4.0), (3, 4.0), (10, 4.0), (100, 8.0), (1000, 12.0)],
)
def test_bounds_scale_with_log10_of_cluster_size(n: int, low: float) -> None:
    lo, hi = suspicion_bounds(n, 1.0, 4, 6)
    assert lo == pytest.approx(low)
    assert hi == pytest.approx(6 * low)


def test_timeout_shrinks_with_each_confirmation() -> None:
    a, b, c, d = ids(4)
    s = Suspicion(start=10.0, incarnation=1, k=3, min_timeout=4.0, max_timeout=24.0, first=a)
    assert s.deadline == 34.0
    deadlines = [s.deadline]
    for sender in (b, c, d):
        assert s.confirm(sender)
        deadlines.append(s.deadline)
    # timeout(c) = max - (max - min) * log(c + 1) / log(k + 1)
    expected = [10 + 24 - 20 * math.log(c + 1) / math.log(4) for c in range(4)]
    assert deadlines == pytest.approx(expected)
    assert deadlines[-1] == pytest.approx(14.0)  # k confirmations reach the minimum
    assert s.confirmations == 3


def test_repeated_or_excess_confirmations_do_not_count() -> None:
    a, b, c, d = ids(4)
    s = Suspicion(start=0.0, incarnation=1, k=2, min_timeout=4.0, max_timeout=24.0, first=a)
    assert not s.confirm(a)  # the first suspecter cannot confirm itself
    assert s.confirm(b)
    assert not s.confirm(b)
    assert s.confirm(c)
    before = s.deadline
    assert not s.confirm(d)  # k already reached
    assert s.deadline == before == 4.0


def test_no_expected_confirmations_means_minimum_timeout() -> None:
    a, b = ids(2)
    s = Suspicion(start=5.0, incarnation=0, k=0, min_timeout=4.0, max_timeout=24.0, first=a)
    assert s.deadline == 9.0
    assert not s.confirm(b)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10), st.floats(0.1, 10), st.integers(1, 10), st.integers(0, 12))
def test_deadline_is_monotone_and_bounded(k: int, low: float, mult: int, confirms: int) -> None:
    senders = ids(confirms + 1)
    s = Suspicion(
        start=0.0, incarnation=0, k=k, min_timeout=low, max_timeout=low * mult, first=senders[0]
    )
    last = s.deadline
    for sender in senders[1:]:
        s.confirm(sender)
        assert s.deadline <= last
        assert low - 1e-9 <= s.deadline <= low * mult + 1e-9
        last = s.deadline


def _table(n_live: int) -> tuple[MemberTable, list[bytes]]:
    local = Member(b"\x00" * 16, "l", ("h", 1), 0, MemberState.ALIVE, 0.0)
    t = MemberTable(local, probe_interval=1.0, suspicion_mult=4, suspicion_max_mult=6)
    others = ids(n_live - 1)
    for nid in others:
        t.apply_alive(Alive(0, nid, "m", ("h", 2), {}), 0.0)
    return t, others


def test_table_confirmations_shorten_the_timer() -> None:
    t, (target, p, q, r, *_) = _table(8)
    assert t.apply_suspect(Suspect(0, target, p), 0.0)
    # 8 live members: k = min(4 - 2, 8 - 2) = 2; starts at max = 6 * 4 s
    assert t.next_suspicion_deadline() == pytest.approx(24.0)
    assert t.apply_suspect(Suspect(0, target, q), 1.0)  # a confirmation is worth gossiping
    first = t.next_suspicion_deadline()
    assert first is not None and 4.0 < first < 24.0
    assert not t.apply_suspect(Suspect(0, target, q), 1.0)  # same confirmer again
    assert t.apply_suspect(Suspect(0, target, r), 2.0)
    assert t.next_suspicion_deadline() == pytest.approx(4.0)
    assert t.expired_suspicions(3.9, stall=1.0) == []
    assert t.expired_suspicions(4.0, stall=1.0) == [(target, 0)]


def test_a_timer_handled_long_after_its_deadline_starts_over() -> None:
    """Handled 6 s late, the node itself was stalled: the member gets its time again."""
    t, (target, p, *_) = _table(8)
    t.apply_suspect(Suspect(0, target, p), 0.0)
    assert t.next_suspicion_deadline() == pytest.approx(24.0)
    assert t.expired_suspicions(30.0, stall=1.0) == []
    assert t.next_suspicion_deadline() == pytest.approx(54.0)
    # Handled on time (within the stall allowance), it concludes as usual.
    assert t.expired_suspicions(54.5, stall=1.0) == [(target, 0)]


def test_small_cluster_suspicion_uses_the_minimum() -> None:
    t, (target, p) = _table(3)
    # 3 live members: fewer others (1) than confirmations wanted (2), so k = 0 and the
    # timeout is the minimum at once, as memberlist decides
    assert t.apply_suspect(Suspect(0, target, p), 0.0)
    assert t.next_suspicion_deadline() == pytest.approx(4.0)
    t2, (target2,) = _table(2)
    assert t2.apply_suspect(Suspect(0, target2, b"\x09" * 16), 0.0)
    assert t2.next_suspicion_deadline() == pytest.approx(4.0)  # k = 0


def test_higher_incarnation_suspicion_restarts_the_timer() -> None:
    t, (target, p, q, *_) = _table(6)
    t.apply_suspect(Suspect(0, target, p), 0.0)
    t.apply_suspect(Suspect(0, target, q), 0.0)
    shortened = t.next_suspicion_deadline()
    assert t.apply_suspect(Suspect(1, target, p), 10.0)
    assert t.suspicions[target].incarnation == 1
    assert t.suspicions[target].confirmations == 0
    assert shortened is not None and t.next_suspicion_deadline() == pytest.approx(10.0 + 24.0)
