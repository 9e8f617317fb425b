"""Transmit-limited gossip queue: retransmit limit, replacement, freshest first, budget."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core.membership.gossip_queue import GossipQueue

K1, K2, K3 = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16


@pytest.mark.parametrize(
    ("n", "limit"), [(1, 4), (2, 4), (9, 4), (10, 8), (99, 8), (100, 12), (1000, 16)]
)
def test_limit_is_mult_times_ceil_log10(n: int, limit: int) -> None:
    assert GossipQueue(4).limit(n) == limit


def test_each_update_is_sent_limit_times_then_dropped() -> None:
    q = GossipQueue(retransmit_mult=3)
    q.push(K1, b"a" * 10)
    sent = 0
    while len(q):
        assert q.take(1000, 0, n=5) == [b"a" * 10]
        sent += 1
        assert sent <= 3
    assert sent == q.limit(5) == 3
    assert q.take(1000, 0, n=5) == []


def test_newer_update_replaces_older_and_restarts_the_count() -> None:
    q = GossipQueue(2)
    q.push(K1, b"suspect")
    q.take(1000, 0, n=3)
    q.push(K1, b"alive")
    assert len(q) == 1
    assert q.take(1000, 0, n=3) == [b"alive"]
    assert q.take(1000, 0, n=3) == [b"alive"]
    assert q.take(1000, 0, n=3) == []


def test_fewest_transmissions_first_then_newest() -> None:
    q = GossipQueue(4)
    q.push(K1, b"one")
    q.push(K2, b"two")
    assert q.take(1000, 0, n=3) == [b"two", b"one"]
    q.push(K3, b"three")
    assert q.take(1000, 0, n=3) == [b"three", b"two", b"one"]
    # All sent once now: the newest goes first, and under 16 octets left the take stops.
    assert q.take(20, 0, n=3) == [b"three"]


def test_budget_and_overhead_are_respected_and_small_items_fill_gaps() -> None:
    q = GossipQueue(4)
    q.push(K1, b"s" * 10)
    q.push(K2, b"L" * 100)  # newest: tried first, does not fit
    assert q.take(50, 2, n=3) == [b"s" * 10]
    assert q.take(0, 0, n=3) == []
    assert q.take(102, 2, n=3) == [b"L" * 100]


def test_clear() -> None:
    q = GossipQueue(4)
    q.push(K1, b"x")
    q.clear()
    assert len(q) == 0 and q.take(100, 0, 3) == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.binary(min_size=1, max_size=60)), max_size=20),
    st.integers(1, 400),
    st.integers(0, 4),
    st.integers(1, 200),
)
def test_take_never_exceeds_budget(
    pushes: list[tuple[int, bytes]], budget: int, overhead: int, n: int
) -> None:
    q = GossipQueue(2)
    latest: dict[int, bytes] = {}
    for key, payload in pushes:
        q.push(bytes([key]) * 16, payload)
        latest[key] = payload
    assert len(q) == len(latest)
    total = 0
    for _ in range(q.limit(n) + 1):
        picked = q.take(budget, overhead, n)
        assert sum(len(p) + overhead for p in picked) <= budget
        assert set(picked) <= set(latest.values())
        total += len(picked)
    # Everything that fits at all is sent exactly `limit` times, then forgotten.
    fitting = [p for p in latest.values() if len(p) + overhead <= budget]
    if budget >= 16 + max((len(p) + overhead for p in fitting), default=0) * len(fitting):
        assert total == q.limit(n) * len(fitting)
