"""When a node must next wake: hard deadlines on time, soft ones on the next wake-up.

An idle node has one duty that must run on time, the probe (once per probe interval),
and several that may run a little late: the reap, the reconnection tick, the push-pull
exchange, the settled node's periodic beacon, a capability's sweep. Each used to wake the
node on its own (2.13 wake-ups a second on an idle agent, measured; 1.00 since), and a
Python process pays for every wake-up with cold caches: most of an idle agent's CPU.

So a soft deadline waits for the next hard one when that comes within ``slack`` (a probe
interval), and :meth:`covey.core.membership.node.Node.handle_timer` runs every duty that
is due at that wake-up. A soft deadline with no hard one close enough still wakes the
node at its own time, so nothing waits longer than ``slack``.
"""

from __future__ import annotations

from collections.abc import Iterable


def next_wakeup(
    hard: Iterable[float | None], soft: Iterable[float | None], slack: float
) -> float | None:
    """The time to wake for ``hard`` (on time) and ``soft`` (up to ``slack`` late)
    deadlines; None entries are duties with nothing scheduled, None back if all are."""
    h = min((d for d in hard if d is not None), default=None)
    s = min((d for d in soft if d is not None), default=None)
    if h is None or s is None:
        return s if h is None else h
    if s < h <= s + slack:
        return h
    return min(s, h)
