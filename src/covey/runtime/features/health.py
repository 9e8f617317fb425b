"""Health that tells the truth: ``ok`` only when nothing says otherwise.

The agent's ``/v1/health`` and ``covey info`` (``health``) said ``ok`` for a node that
listed its peers alive from before while dropping every frame it got as ``bad_key``: a
mis-keyed node looked healthy. :class:`HealthFeature` samples the node's drop counters
every :data:`SAMPLE_EVERY` seconds (and whenever asked) and reports ``degraded``, with
the reasons, while

* frames were dropped in the last :data:`RECENT` seconds because no key opened them
  (``bad_key``: the sender has a key we lack, or we have the wrong one), or because they
  belong to another cluster (``foreign_cluster``);
* the node has been alone for :data:`ALONE_AFTER` seconds although it expects peers
  (static ``--join`` seeds, ``--srv``, or expected votes above 1: configured with
  ``--expected-votes``, or tracked, i.e. it has seen peers alive before); then also, for each
  discovery interface that heard nothing from another node (not even a frame it had to
  drop) for as long: "no beacon heard on interface X", which tells a dead interface
  from a bad key. A node meant to be alone (no seeds, no votes) stays ``ok`` alone, as
  a settled cluster's quiet interfaces do (settled members send no beacons).

It is ``stopping`` once the agent shuts down. ``/v1/health`` answers 200 for ``ok`` and
``degraded`` (the process serves; a load balancer's check still passes) and says which in
its body, and 503 while stopping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from covey.core import MemberState
from covey.core.types import DropReason
from covey.runtime.config.model import AgentConfig
from covey.runtime.features.base import Feature

if TYPE_CHECKING:
    from covey.runtime.context import AgentContext
    from covey.runtime.net.interface_stats import NetCounters

#: Seconds during which a drop keeps the node degraded.
RECENT = 30.0
#: Seconds alone, while peers are expected, before that is degraded.
ALONE_AFTER = 10.0
#: Seconds between two samples of the counters.
SAMPLE_EVERY = 5.0
_WATCHED = (DropReason.BAD_KEY, DropReason.FOREIGN_CLUSTER)


class HealthFeature(Feature):
    """Samples the drop counters and membership; :meth:`verdict` says how the node is."""

    name = "health"

    def __init__(
        self,
        config: AgentConfig,
        net: NetCounters | None = None,
        expected_votes: Callable[[], int | None] | None = None,
    ) -> None:
        self.config = config
        self.net = net
        #: The election's expected votes now (tracked ones grow with the peers seen).
        self._expected = expected_votes
        self.ctx: AgentContext | None = None
        self._counts: dict[str, int] = {}
        #: reason → monotonic time its counter last rose.
        self._rose: dict[str, float] = {}
        self._alone_since: float | None = None
        self._started = time.monotonic()

    @property
    def expects_peers(self) -> bool:
        """True when the configuration says this node is not meant to be alone."""
        votes = self.config.expected_votes
        if self._expected is not None:
            votes = self._expected()
        return bool(self.config.join or self.config.srv) or (votes is not None and votes > 1)

    def start(self, ctx: AgentContext) -> None:
        """Sample every few seconds while the agent runs (an idle agent wakes for it
        rarely: the drop counters only need to be seen rising within the window)."""
        self.ctx = ctx
        self.sample()
        ctx.spawn(self._loop(ctx))

    async def _loop(self, ctx: AgentContext) -> None:
        while ctx.running:
            await asyncio.sleep(SAMPLE_EVERY)
            self.sample()

    def sample(self, now: float | None = None) -> None:
        """Read the counters once (the loop calls it; tests may too)."""
        ctx = self.ctx
        if ctx is None:
            return
        t = time.monotonic() if now is None else now
        drops = ctx.statistics().drops
        for reason in _WATCHED:
            count = drops.get(reason.value, 0)
            if count > self._counts.get(reason.value, 0):
                self._rose[reason.value] = t
            self._counts[reason.value] = count
        alive = sum(m.state is MemberState.ALIVE for m in ctx.members.members.values())
        if alive > 1:
            self._alone_since = None
        elif self._alone_since is None:
            self._alone_since = t

    def verdict(self, *, stopping: bool = False) -> dict[str, object]:
        """``{"status": ok | degraded | stopping, "reasons": [...]}``."""
        if stopping:
            return {"status": "stopping", "reasons": ["the agent is shutting down"]}
        self.sample()  # what rose since the last sample counts at once
        t = time.monotonic()
        reasons = []
        for reason in _WATCHED:
            rose = self._rose.get(reason.value)
            if rose is not None and t - rose < RECENT:
                total = self._counts.get(reason.value, 0)
                what = "no key opened them" if reason is DropReason.BAD_KEY else "another cluster"
                reasons.append(
                    f"{reason.value}: frames dropped in the last {RECENT:g} s ({what}; "
                    f"{total} so far)"
                )
        alone = self._alone_since
        if self.expects_peers and alone is not None and t - alone >= ALONE_AFTER:
            reasons.append(f"alone for {t - alone:.0f} s, yet peers are expected")
            reasons += self._quiet_interfaces(t)
        return {"status": "degraded" if reasons else "ok", "reasons": reasons}

    def _quiet_interfaces(self, t: float) -> list[str]:
        """A reason per discovery interface that heard no other node for ALONE_AFTER s."""
        out = []
        for iface in [] if self.net is None else self.net.interfaces:
            heard = iface.last_heard
            if heard is None and t - self._started >= ALONE_AFTER:
                out.append(f"no beacon heard on interface {iface.name} ({iface.address})")
            elif heard is not None and t - heard >= ALONE_AFTER:
                out.append(
                    f"no beacon heard on interface {iface.name} ({iface.address}) "
                    f"for {t - heard:.0f} s"
                )
        return out

    def info(self) -> Mapping[str, object]:
        return self.verdict()
