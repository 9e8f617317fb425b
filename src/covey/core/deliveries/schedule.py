"""The scheduler: a sorted set of delivery ids scored by when each is next due.

This is seed 002's design (a Redis sorted set, ``broadcast:in-flight``, read by
range-by-score), with one change: it is never polled. The capability's ``next_deadline``
is the set's lowest score, so the node's timer fires exactly when the first item is due.
Every action on an item is followed by a reschedule (a new score) or a removal (it ended).

:class:`Schedule` is the interface a backend implements: :class:`MemorySchedule` here
(the simulator and the unit tests), SQLite and Redis ones in the runtime later. ``pop``
is the claim: with a shared backend it must remove the item atomically (``ZPOPMIN``, or a
Lua script with a claim lease), so two schedulers never act on one item at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Protocol


class Schedule(Protocol):
    """A sorted set of ids (16 octets) scored by due time (seconds)."""

    def add(self, item: bytes, score: float) -> None:
        """Insert ``item`` with ``score``, or move it to ``score`` (ZADD)."""
        ...

    def score(self, item: bytes) -> float | None:
        """The score of ``item``, None if absent (ZSCORE)."""
        ...

    def due(self, now: float, limit: int | None = None) -> list[bytes]:
        """The items scored at most ``now``, lowest first (ZRANGEBYSCORE -inf now)."""
        ...

    def pop(self, now: float) -> bytes | None:
        """Remove and return the lowest item if it is due by ``now`` (the claim)."""
        ...

    def remove(self, item: bytes) -> None:
        """Drop ``item`` if present (ZREM)."""
        ...

    def next_due(self) -> float | None:
        """The lowest score, None when empty."""
        ...

    def __len__(self) -> int: ...


class MemorySchedule:
    """An in-memory :class:`Schedule`: a dict of scores and a heap with lazy deletion.

    Moving an item pushes a new heap entry; stale entries (whose score no longer matches
    the dict) are dropped when they reach the top. Ties are broken by id, so the order
    is deterministic.
    """

    def __init__(self, items: Iterable[tuple[bytes, float]] = ()) -> None:
        self._scores: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []
        for item, score in items:
            self.add(item, score)

    def add(self, item: bytes, score: float) -> None:
        """Insert ``item`` with ``score``, or move it."""
        if self._scores.get(item) == score:
            return
        self._scores[item] = score
        heapq.heappush(self._heap, (score, item))
        if len(self._heap) > 2 * len(self._scores) + 64:
            self._compact()

    def score(self, item: bytes) -> float | None:
        """The score of ``item``, None if absent."""
        return self._scores.get(item)

    def _top(self) -> tuple[float, bytes] | None:
        heap = self._heap
        while heap:
            score, item = heap[0]
            if self._scores.get(item) == score:
                return heap[0]
            heapq.heappop(heap)
        return None

    def due(self, now: float, limit: int | None = None) -> list[bytes]:
        """The items scored at most ``now``, lowest first (at most ``limit``)."""
        out = [i for s, i in sorted((s, i) for i, s in self._scores.items() if s <= now)]
        return out if limit is None else out[:limit]

    def pop(self, now: float) -> bytes | None:
        """Remove and return the lowest item if its score is at most ``now``."""
        top = self._top()
        if top is None or top[0] > now:
            return None
        heapq.heappop(self._heap)
        del self._scores[top[1]]
        return top[1]

    def remove(self, item: bytes) -> None:
        """Drop ``item`` (its heap entry goes stale)."""
        self._scores.pop(item, None)

    def next_due(self) -> float | None:
        """The lowest score, None when empty."""
        top = self._top()
        return None if top is None else top[0]

    def __len__(self) -> int:
        return len(self._scores)

    def __iter__(self) -> Iterator[tuple[bytes, float]]:
        return iter(sorted(self._scores.items(), key=lambda kv: (kv[1], kv[0])))

    def _compact(self) -> None:
        self._heap = [(s, i) for i, s in self._scores.items()]
        heapq.heapify(self._heap)
