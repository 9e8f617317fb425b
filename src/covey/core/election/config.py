"""The election's settings (:class:`ElectionConfig`), checked when they are built.

The timings are seconds of the monotonic clock. The checks keep the safety argument of
:mod:`covey.core.election.election` true: a lease shorter than ``follower_wait``, and at
least two heartbeats per lease.

``expected_votes=None`` is the default rule: the size the quorum is a majority of is
*tracked* (:mod:`covey.core.election.size`), and a node collects peers for ``bootstrap``
seconds after it starts before it stands.
"""

from __future__ import annotations

import math
from typing import Any

from covey.core.config import ConfigError
from covey.core.records import record


@record
class ElectionConfig:
    """Election settings; timings in seconds of the monotonic clock.

    Attributes:
        expected_votes: cluster size the quorum is computed from (same on every node);
            None tracks it: the largest membership seen alive, carried in every election
            message and only ratcheted up, lowered by ``covey expect`` or a graceful leave.
        two_node: Corosync-like two-node mode (``expected_votes`` must be 2): after both
            nodes were seen together once (wait_for_all), the node with the lower id is
            quorate alone, and so is the other one when the heartbeat disk shows its peer
            dead. Without the disk, only the tie-breaker can take over.
        heartbeat_interval: leader heartbeat period.
        lease: how long a quorum's acceptance keeps the leader leader.
        follower_wait: silence after which a follower stands; must exceed ``lease``.
        backoff: upper bound of the random wait before standing.
        vote_timeout: how long a candidate waits for a vote round.
        stable_after: heartbeats accepted by a quorum before leadership counts as stable.
        reboot_delay: upper bound of the random pause of ``reboot``.
        disk_timeout: a heartbeat-disk slot unchanged this long is stale.
        silent_rounds: unanswered vote rounds, while a quorum looks alive, before panic.
        bootstrap: tracked size only: seconds after start before the node stands (it
            collects peers meanwhile), and of steady membership before ``stable``.
    """

    expected_votes: int | None
    two_node: bool = False
    heartbeat_interval: float = 0.2
    lease: float = 0.9
    follower_wait: float = 1.2
    backoff: float = 0.3
    vote_timeout: float = 0.3
    stable_after: int = 5
    reboot_delay: float = 2.0
    disk_timeout: float = 3.0
    silent_rounds: int = 20
    bootstrap: float = 4.0

    def __post_init__(self) -> None:
        ev = self.expected_votes
        if ev is not None and (type(ev) is not int or not 1 <= ev <= 10_000):
            raise ConfigError("expected_votes: must be an integer in 1..10000")
        if self.two_node and self.expected_votes != 2:
            raise ConfigError("two_node: needs expected_votes = 2")
        for name in ("heartbeat_interval", "lease", "follower_wait", "backoff", "vote_timeout"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{name}: must be a positive number")
        if self.lease >= self.follower_wait:
            raise ConfigError("lease: must be shorter than follower_wait (safety)")
        if self.heartbeat_interval * 2 > self.lease:
            raise ConfigError("heartbeat_interval: must be at most half the lease")
        if self.stable_after < 1 or self.silent_rounds < 1:
            raise ConfigError("stable_after: must be at least 1")
        b = self.bootstrap
        if not (isinstance(b, int | float) and math.isfinite(b) and 0 <= b <= 600):
            raise ConfigError("bootstrap: must be a number of seconds in 0..600")

    @property
    def tracked(self) -> bool:
        """True when the expected size is tracked (no ``expected_votes`` configured)."""
        return self.expected_votes is None

    @classmethod
    def scaled(cls, expected_votes: int | None, heartbeat: float, **kw: object) -> ElectionConfig:
        """Timings derived from one heartbeat interval (the defaults are ``heartbeat=0.2``).

        ``kw`` sets any other field (or overrides a derived timing); ``__post_init__``
        checks the result like any other configuration.
        """
        fields: dict[str, Any] = {
            "heartbeat_interval": heartbeat,
            "lease": 4.5 * heartbeat,
            "follower_wait": 6.0 * heartbeat,
            "backoff": 1.5 * heartbeat,
            "vote_timeout": 1.5 * heartbeat,
            "disk_timeout": 15.0 * heartbeat,
            "reboot_delay": 10.0 * heartbeat,
            **kw,
        }
        return cls(expected_votes, **fields)
