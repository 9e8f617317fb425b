"""Transmit-limited queue of membership updates to piggyback on outgoing datagrams.

Each update about a member is sent at most ``limit`` times (retransmit_mult * log10(N+1),
as in SWIM's infection-style dissemination); a newer update about the same member
replaces the older one. Updates sent fewest times go first, so fresh news spreads fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _Item:
    key: bytes
    payload: bytes
    transmits: int
    order: int


class GossipQueue:
    """Queue of encoded updates keyed by the member they are about."""

    def __init__(self, retransmit_mult: int, max_item: int = 1 << 16) -> None:
        self._mult = retransmit_mult
        #: Items larger than this can never fit a datagram and are dropped when met.
        self.max_item = max_item
        self._items: dict[bytes, _Item] = {}
        self._order = 0

    def __len__(self) -> int:
        return len(self._items)

    def limit(self, n: int) -> int:
        """Transmissions per update in a cluster of ``n`` members."""
        return self._mult * max(1, math.ceil(math.log10(n + 1)))

    def push(self, key: bytes, payload: bytes) -> None:
        """Queue ``payload`` about ``key``, replacing any older update about it."""
        self._order += 1
        self._items[key] = _Item(key, payload, 0, self._order)

    def take(self, budget: int, overhead: int, n: int) -> list[bytes]:
        """Pick updates that fit ``budget`` octets (each costing ``overhead`` extra)."""
        if not self._items or budget <= 0:
            return []
        limit = self.limit(n)
        picked: list[bytes] = []
        # Fewest transmissions first, newest first among equals.
        for item in sorted(self._items.values(), key=lambda it: (it.transmits, -it.order)):
            cost = len(item.payload) + overhead
            if cost > budget:
                if cost > self.max_item:
                    del self._items[item.key]  # could never be sent: do not let it linger
                continue
            budget -= cost
            picked.append(item.payload)
            item.transmits += 1
            if item.transmits >= limit:
                del self._items[item.key]
            if budget < 16:
                break
        return picked

    def clear(self) -> None:
        """Forget every queued update."""
        self._items.clear()
