"""The simulator's hosts: one core each, and the failure modes a host can be in.

*crashed* (the process is gone but the host answers: streams are refused, like a killed
agent on a live machine), *down* (no answer at all, like a lost host), *paused* (a
stalled process: inputs queue up and are handled on resume).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from covey.core import CoreConfig, Event, Node
from covey.core.types import Address


class HostState(enum.Enum):
    """What a simulated host is doing."""

    RUNNING = "running"
    CRASHED = "crashed"
    DOWN = "down"
    PAUSED = "paused"


@dataclass(eq=False)
class SimHost:
    """One simulated host running one core."""

    name: str
    address: Address
    config: CoreConfig
    node: Node
    state: HostState = HostState.RUNNING
    seeds: list[Address] = field(default_factory=list)
    events: list[tuple[float, Event]] = field(default_factory=list)
    backlog: list[tuple[Any, ...]] = field(default_factory=list)
    timer_at: float | None = None
    timer_version: int = 0
    sent: int = 0
    sent_bytes: int = 0
    received: int = 0
    restarts: int = 0
    effects: int = 0

    @property
    def up(self) -> bool:
        """True while the process runs (paused counts: it is alive, merely slow)."""
        return self.state in (HostState.RUNNING, HostState.PAUSED)


EventListener = Callable[[SimHost, float, Event], None]
