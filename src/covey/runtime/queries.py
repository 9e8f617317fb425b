"""The query side of :class:`covey.runtime.agent.Agent`: members, info, tags, events, waits.

Kept apart from the lifecycle code; everything here runs on the event loop's thread and
only reads the core's tables or calls its public methods through the driver.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Self

from covey.core import MemberInfo, MemberState, Node, NodeStatistics
from covey.runtime.config.model import AgentConfig, ConfigError
from covey.runtime.events import EventHub, Subscription

if TYPE_CHECKING:
    from covey.runtime.driver import CoreDriver
    from covey.runtime.net.interfaces import DiscoveryPlan

_STATES = {s.label: s for s in MemberState}


class AgentQueries:
    """Read and steer a running agent (mixed into :class:`~covey.runtime.agent.Agent`)."""

    if TYPE_CHECKING:
        config: AgentConfig
        node: Node
        node_id: bytes
        hub: EventHub
        plan: DiscoveryPlan
        started_at: float
        _driver: CoreDriver | None

        @property
        def ready(self) -> bool: ...

    @property
    def name(self) -> str:
        """This node's name."""
        return self.config.name

    def local(self) -> MemberInfo:
        """This node's own member record."""
        info = self.node.member(self.node_id)
        assert info is not None
        return info

    def members(self) -> list[MemberInfo]:
        """Every member this node knows (itself included), sorted by name."""
        return sorted(self.node.members(), key=lambda m: (m.name, m.node_id))

    def member(self, name_or_id: str | bytes) -> MemberInfo | None:
        """The member with this name (or 16-byte id / hex id), if known."""
        for m in self.node.members():
            if name_or_id in (m.name, m.node_id, m.id_hex):
                return m
        return None

    def statistics(self) -> NodeStatistics:
        """The core's counters (traffic, drops per reason, health, member counts)."""
        return self.node.statistics()

    def info(self) -> dict[str, object]:
        """A JSON-ready summary: self, configuration highlights, counters, drop reasons."""
        stats = asdict(self.statistics())
        runtime = dict(self._driver.counters) if self._driver else {}
        runtime["events_dropped"] = self.hub.dropped
        return {
            "self": self.local().to_json(),
            "cluster": self.config.cluster,
            "encrypted": not self.config.plaintext,
            "keys": len(self.config.keys),
            "discovery": {
                "enabled": bool(self.plan.interfaces),
                "mode": "broadcast" if self.plan.broadcast else "multicast",
                "group": f"{self.plan.group}:{self.plan.port}",
                "interfaces": [f"{i.name}={i.address}" for i in self.plan.interfaces],
            },
            "join": [f"{h}:{p}" for h, p in self.config.join],
            "control": str(self.config.control_path),
            "pid": os.getpid(),
            "uptime": time.time() - self.started_at,
            "stats": stats,
            "drops": stats["drops"],
            "runtime": runtime,
        }

    def names(self) -> dict[str, object]:
        """Seed 003's GetNames: ``cluster``, ``leader``, ``stable``, ``node``, ``term``.

        Also the election ``mode`` (normal/panic) and why. Raises ControlError when the
        election is off.
        """
        from covey.runtime.features.election import names

        return names(self)  # type: ignore[arg-type]

    def set_tags(self, tags: dict[str, str]) -> MemberInfo:
        """Replace this node's tags and gossip them; returns the updated record.

        Raises:
            ConfigError: the tags are not text or too large.
        """
        if self._driver is None or not self.ready:
            raise RuntimeError("agent is not running")
        try:
            self._driver.set_tags(dict(tags))
        except ValueError as exc:
            raise ConfigError("tags", str(exc).removeprefix("tags: ")) from None
        return self.local()

    def update_tags(
        self, set_: dict[str, str] | None = None, delete: Iterable[str] = ()
    ) -> MemberInfo:
        """Set some tags and delete others, keeping the rest."""
        tags = dict(self.local().tags)
        tags.update(set_ or {})
        for key in delete:
            tags.pop(key, None)
        return self.set_tags(tags)

    def events(self) -> Subscription:
        """Subscribe to member events, traces and clock leaps from now on.

        Use ``async for event in agent.events(): ...``; it ends when the agent stops.
        """
        return self.hub.subscribe()

    async def wait_for(self, predicate: Callable[[Self], bool], timeout: float) -> None:
        """Wait until ``predicate(agent)`` holds; re-checked after every event.

        Raises:
            TimeoutError: it did not hold within ``timeout`` seconds.
        """
        with self.events() as sub:
            async with asyncio.timeout(timeout):
                while not predicate(self):
                    # Re-check at least once a second in case no event comes.
                    await sub.get(timeout=1.0)

    async def wait_for_members(
        self, count: int, state: str = "alive", timeout: float = 30.0
    ) -> None:
        """Wait until ``count`` members (itself included) are in ``state``."""
        want = _STATES[state]
        await self.wait_for(lambda a: sum(m.state is want for m in a.members()) >= count, timeout)

    async def wait_for_state(self, name: str, state: str, timeout: float = 30.0) -> MemberInfo:
        """Wait until the member called ``name`` is in ``state``; returns its record."""
        want = _STATES[state]

        def ok(a: Self) -> bool:
            m = a.member(name)
            return m is not None and m.state is want

        await self.wait_for(ok, timeout)
        found = self.member(name)
        assert found is not None
        return found
