"""Lifeguard local health awareness: a node that is itself slow probes less aggressively.

The score rises when our probes fail although intermediaries were alive (missed nacks)
and when we must refute suspicions about ourselves; it falls on each successful probe.
Probe interval and timeout are multiplied by ``score + 1``.
"""

from __future__ import annotations


class Awareness:
    """A bounded health score; 0 is healthy."""

    __slots__ = ("_max", "score")

    def __init__(self, max_score: int) -> None:
        self._max = max_score
        self.score = 0

    def apply(self, delta: int) -> None:
        """Move the score by ``delta``, clamped to [0, max - 1]."""
        self.score = min(max(self.score + delta, 0), self._max - 1)

    def scale(self, value: float) -> float:
        """``value`` stretched by the current score."""
        return value * (self.score + 1)
