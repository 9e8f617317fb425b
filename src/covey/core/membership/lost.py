"""Lost members: failed members that were reaped, remembered so a partition can heal.

Reaping forgets a failed member after ``reap_failed_after``. Without more, a partition
longer than that never heals: neither side knows the other any more, settled nodes send
no beacons, and nobody re-contacts anybody (memberlist issue 222). So a reaped *failed*
member (not one that left: it meant to go) moves to a bounded set of lost members, which
the syncer keeps re-contacting for as long as the node runs, and which beacons keep
looking for.

A lost member keeps its last record, incarnation included. Any sign of it — a frame it
sends, an alive record about it, a beacon — first *restores* that failed record into the
member table (see :meth:`~.table.MemberTable.restore`), and the ordinary SWIM rules take
it from there: an alive at the incarnation we failed it at does not revive it; the
exchange that follows tells it it is held failed, and it refutes with a higher
incarnation. So reaping never lets a stale alive record bring a dead node back.
"""

from __future__ import annotations

from collections.abc import Iterator

from covey.core.member import Member


class LostMembers:
    """The reaped failed members, oldest first, at most ``limit`` of them.

    Args:
        limit: how many are kept; beyond it the oldest is forgotten for good (0: none).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._by_id: dict[bytes, Member] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._by_id

    def __iter__(self) -> Iterator[Member]:
        return iter(self._by_id.values())

    def add(self, m: Member) -> None:
        """Remember a reaped failed member (the newest, evicting the oldest past the limit)."""
        if self._limit <= 0:
            return
        self._by_id.pop(m.node_id, None)
        self._by_id[m.node_id] = m
        while len(self._by_id) > self._limit:
            del self._by_id[next(iter(self._by_id))]

    def pop(self, node_id: bytes) -> Member | None:
        """Take the lost member with ``node_id`` out of the set, if it is there."""
        return self._by_id.pop(node_id, None)
