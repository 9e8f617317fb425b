"""Transmit-limited queue of membership updates to piggyback on outgoing datagrams.

Each update about a member is sent at most ``limit`` times (retransmit_mult * log10(N+1),
as in SWIM's infection-style dissemination); a newer update about the same member
replaces the older one. Updates sent fewest times go first, so fresh news spreads fast.
"""

from __future__ import annotations

import math

from covey.core.records import record


@record(frozen=False)
class _Item:
    key: bytes
    payload: bytes
    transmits: int
    order: int
    #: Bulk items (a whole table learned by push-pull) only fill space real news left.
    bulk: bool = False


class GossipQueue:
    """Queue of encoded updates keyed by the member they are about."""

    def __init__(self, retransmit_mult: int, max_item: int = 1 << 16) -> None:
        self._mult = retransmit_mult
        #: Items larger than this can never fit a datagram and are dropped when met.
        self.max_item = max_item
        self._items: dict[bytes, _Item] = {}
        self._order = 0
        self._fresh = 0  # items never sent

    def __len__(self) -> int:
        return len(self._items)

    def limit(self, n: int) -> int:
        """Transmissions per update in a cluster of ``n`` members."""
        return self._mult * max(1, math.ceil(math.log10(n + 1)))

    def push(self, key: bytes, payload: bytes, *, bulk: bool = False) -> None:
        """Queue ``payload`` about ``key``, replacing any older update about it.

        ``bulk`` marks low-priority news (members merely learned from a peer's table): it
        is sent only in room that real news leaves, and never pushed eagerly.
        """
        self._order += 1
        old = self._items.get(key)
        if old is not None and not old.bulk:
            bulk = False  # a pending real update keeps its priority
        if old is not None and not old.transmits and not old.bulk:
            self._fresh -= 1
        if not bulk:
            self._fresh += 1
        self._items[key] = _Item(key, payload, 0, self._order, bulk)

    def has_fresh(self) -> bool:
        """True when some update was never sent."""
        return self._fresh > 0

    def take(self, budget: int, overhead: int, n: int, *, fresh_only: bool = False) -> list[bytes]:
        """Pick updates that fit ``budget`` octets (each costing ``overhead`` extra).

        With ``fresh_only`` only updates never sent before are picked: an eager push of news
        must not spend the retransmit budget of older updates.
        """
        if not self._items or budget <= 0:
            return []
        limit = self.limit(n)
        picked: list[bytes] = []
        # Fewest transmissions first, newest first among equals.
        # Real news before bulk; fewest transmissions first; newest first among equals.
        for item in sorted(self._items.values(), key=lambda it: (it.bulk, it.transmits, -it.order)):
            if fresh_only and (item.transmits or item.bulk):
                break
            cost = len(item.payload) + overhead
            if cost > budget:
                if cost > self.max_item:
                    self._forget(item)  # could never be sent: do not let it linger
                continue
            budget -= cost
            picked.append(item.payload)
            if not item.transmits and not item.bulk:
                self._fresh -= 1
            item.transmits += 1
            if item.transmits >= limit:
                self._forget(item)
            if budget < 16:
                break
        return picked

    def _forget(self, item: _Item) -> None:
        del self._items[item.key]
        if not item.transmits and not item.bulk:
            self._fresh -= 1

    def clear(self) -> None:
        """Forget every queued update."""
        self._items.clear()
        self._fresh = 0
