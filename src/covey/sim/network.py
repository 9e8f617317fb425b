"""The simulated network: per-link loss, delay, duplication, partitions and multicast.

Links are directed and keyed by host name. A partition assigns hosts to groups; hosts in
different groups cannot reach each other at all (datagrams and streams alike). Random
loss and duplication apply to datagrams only: streams model TCP, which retransmits.
"""

from __future__ import annotations

import random
from dataclasses import replace

from covey.core.records import record


@record
class LinkModel:
    """How one direction of a link behaves.

    Attributes:
        loss: probability a datagram is lost.
        delay: one-way delay in seconds.
        jitter: extra uniformly random delay in [0, jitter).
        duplicate: probability a datagram is delivered twice.
    """

    loss: float = 0.0
    delay: float = 0.001
    jitter: float = 0.0005
    duplicate: float = 0.0


class Network:
    """Reachability and link behaviour between simulated hosts."""

    def __init__(self, rng: random.Random, default: LinkModel | None = None) -> None:
        self.rng = rng
        self.default = default or LinkModel()
        self.links: dict[tuple[str, str], LinkModel] = {}
        self._group: dict[str, int] = {}
        #: False models a network where multicast does not get through (static joins only).
        self.multicast = True

    def set_loss(self, loss: float) -> None:
        """Set the random loss of every link (default and overrides)."""
        self.default = replace(self.default, loss=loss)
        self.links = {k: replace(v, loss=loss) for k, v in self.links.items()}

    def set_link(self, a: str, b: str, model: LinkModel, *, both: bool = True) -> None:
        """Override the link a→b (and b→a unless ``both`` is False)."""
        self.links[(a, b)] = model
        if both:
            self.links[(b, a)] = model

    def partition(self, *groups: list[str]) -> None:
        """Split the hosts into groups; hosts not named keep talking to nobody in a group."""
        self._group = {h: i for i, g in enumerate(groups) for h in g}

    def heal(self) -> None:
        """Remove every partition."""
        self._group = {}

    def connected(self, a: str, b: str) -> bool:
        """True when no partition separates ``a`` and ``b``."""
        if not self._group:
            return True
        return self._group.get(a, -1) == self._group.get(b, -1)

    def model(self, a: str, b: str) -> LinkModel:
        """The link model from ``a`` to ``b``."""
        return self.links.get((a, b), self.default)

    def datagram_delays(self, a: str, b: str) -> list[float]:
        """Delivery delays of one datagram a→b: empty when lost, two entries when duplicated."""
        if not self.connected(a, b):
            return []
        m = self.model(a, b)
        rng = self.rng
        if m.loss and rng.random() < m.loss:
            return []
        delays = [m.delay + rng.random() * m.jitter]
        if m.duplicate and rng.random() < m.duplicate:
            delays.append(m.delay + rng.random() * m.jitter * 4)
        return delays

    def stream_delay(self, a: str, b: str) -> float | None:
        """One-way delay of a stream message a→b, or None when unreachable."""
        if not self.connected(a, b):
            return None
        m = self.model(a, b)
        return m.delay + self.rng.random() * m.jitter
