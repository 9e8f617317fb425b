"""Lifeguard suspicion timer: starts long, shrinks with independent confirmations.

timeout(c) = max(min, max - (max - min) * log(c + 1) / log(k + 1)), where c is the number
of distinct members that confirmed the suspicion and k the number expected. A member that
is really dead is declared so quickly once several members agree; a lone suspicion (often
the suspecting node's own trouble) waits long enough for the member to refute it.
"""

from __future__ import annotations

import math


class Suspicion:
    """The suspicion of one member, as held by one node."""

    __slots__ = ("_confirmers", "_k", "_max", "_min", "deadline", "incarnation", "start")

    def __init__(
        self,
        *,
        start: float,
        incarnation: int,
        k: int,
        min_timeout: float,
        max_timeout: float,
        first: bytes,
    ) -> None:
        self.start = start
        self.incarnation = incarnation
        self._k = max(k, 0)
        self._min = min_timeout
        self._max = max(max_timeout, min_timeout)
        self._confirmers = {first}
        self.deadline = start + (self._min if self._k < 1 else self._max)

    def confirm(self, sender: bytes) -> bool:
        """Count a confirmation from ``sender``; True if it was new (and so worth gossiping)."""
        if self._k < 1 or sender in self._confirmers or len(self._confirmers) > self._k:
            return False
        self._confirmers.add(sender)
        c = len(self._confirmers) - 1
        frac = math.log(c + 1) / math.log(self._k + 1)
        timeout = max(self._min, self._max - (self._max - self._min) * frac)
        self.deadline = self.start + timeout
        return True

    def restart(self, now: float) -> None:
        """Start the same suspicion over at ``now``, keeping its confirmations."""
        timeout = self.deadline - self.start
        self.start = now
        self.deadline = now + timeout

    @property
    def confirmations(self) -> int:
        """Independent confirmations beyond the first suspicion."""
        return len(self._confirmers) - 1


def suspicion_bounds(
    n: int, probe_interval: float, mult: int, max_mult: int
) -> tuple[float, float]:
    """(min, max) suspicion timeout for a cluster of ``n`` members."""
    scale = max(1.0, math.log10(max(1, n)))
    low = mult * scale * probe_interval
    return low, low * max_mult
