"""The query side of :class:`covey.runtime.agent.Agent`: members, info, tags, events, waits,
and the flat names of the feature facades (``set_fact`` → ``agent.facts.set``...).

Kept apart from the lifecycle code; everything here runs on the event loop's thread and
only reads the core's tables or calls its public methods through the driver.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Self

from covey.core import Address, MemberInfo, MemberState, Node, NodeStatistics, format_address
from covey.core.state.facts.capability import FactsEvent
from covey.runtime.config.model import AgentConfig, ConfigError
from covey.runtime.context import wait_on_hub
from covey.runtime.events import EventHub, Subscription

if TYPE_CHECKING:
    from collections import Counter

    from covey.runtime.driver import CoreDriver
    from covey.runtime.features.base import Feature
    from covey.runtime.features.election_api import ElectionAPI
    from covey.runtime.features.shared_api import ActionsAPI, FactsAPI, SettingsAPI
    from covey.runtime.net.interface_stats import NetCounters
    from covey.runtime.net.interfaces import DiscoveryPlan
    from covey.runtime.net.limits import PortGuard
    from covey.runtime.zre.feature import ZreAPI

_STATES = {s.label: s for s in MemberState}


class AgentQueries:
    """Read and steer a running agent (mixed into :class:`~covey.runtime.agent.Agent`)."""

    if TYPE_CHECKING:
        config: AgentConfig
        node: Node
        node_id: bytes
        address: Address
        hub: EventHub
        plan: DiscoveryPlan
        net: NetCounters
        started_at: float
        _driver: CoreDriver | None
        counters: Counter[str]
        ports: dict[str, PortGuard]
        facts: FactsAPI
        settings: SettingsAPI
        actions: ActionsAPI
        election: ElectionAPI
        zre: ZreAPI
        features: tuple[Feature, ...]

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

    def member_listing(self) -> list[dict[str, object]]:
        """What ``covey members`` lists: covey's members (``MemberInfo.to_json()``), then
        the foreign ZRE peers in the same shape with ``kind: zre`` (``--zre``). The
        foreign ones are only listed here: :meth:`members`, quorum, election and shared
        state know covey members alone."""
        return [m.to_json() for m in self.members()] + self.zre.peers()

    def member(self, name_or_id: str | bytes) -> MemberInfo | None:
        """The member with this name (or 16-byte id / hex id), if known."""
        for m in self.node.members():
            if name_or_id in (m.name, m.node_id, m.id_hex):
                return m
        return None

    def statistics(self) -> NodeStatistics:
        """The core's counters (traffic, drops per reason, health, member counts)."""
        return self.node.statistics()

    def interfaces(self) -> dict[str, object]:
        """Per discovery interface: beacons out and in, from whom, when last, drops by
        reason; the unicast socket's datagrams and drops; a one-word status (``ok``,
        ``silent``, ``bad_key``...). See :mod:`covey.runtime.net.interface_stats`."""
        return self.net.to_json()

    def info(self) -> dict[str, object]:
        """A JSON-ready summary: self, configuration highlights, counters, drop reasons,
        interfaces."""
        stats = asdict(self.statistics())
        runtime = dict(self.runtime_counters())
        runtime["events_dropped"] = self.hub.dropped
        return {
            "self": self.local().to_json(),
            "cluster": self.config.cluster,
            "encrypted": not self.config.plaintext,
            "keys": self.node.keyring.keys,
            "discovery": {
                "enabled": bool(self.plan.interfaces),
                "mode": "off"
                if not self.plan.interfaces
                else "broadcast"
                if self.plan.broadcast
                else "multicast",
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
            "ports": {label: asdict(g.statistics()) for label, g in self.ports.items()},
            "interfaces": self.interfaces(),
            **{f.name: dict(shown) for f in self.features if (shown := f.info())},
        }

    def serving_line(self) -> str:
        """The start-up log line: who, where, and every endpoint an operator may use."""
        c = self.config
        parts = [
            f"agent {c.name} ({self.node_id.hex()}) serving on {format_address(self.address)}",
            f"cluster {c.cluster}",
            f"control {c.control_path}",
        ]
        if c.http is not None:
            parts.append(f"http http://{format_address(c.http)}/ui/")
        if c.rpc is not None:
            parts.append(f"rpc {format_address(c.rpc)}")
        return ", ".join(parts)

    def runtime_counters(self) -> dict[str, int]:
        """The runtime counters, live: the driver's (internal_error, effect_error,
        send_error...) and the listening ports' refusals (``<port>_busy``, ``_timeout``,
        ``_oversized``)."""
        return self.counters

    def drop_traffic(
        self, add: Iterable[Address] = (), remove: Iterable[Address] = (), clear: bool = False
    ) -> set[Address]:
        """Testing aid: discard unicast traffic to or from these addresses, as if the
        network between us were cut (``clear`` first empties the set); returns the set.

        Raises:
            RuntimeError: the agent is not running.
        """
        if self._driver is None:
            raise RuntimeError("agent is not running")
        drop = self._driver.drop
        if clear:
            drop.clear()
        drop |= set(add)
        drop -= set(remove)
        return set(drop)

    def names(self) -> dict[str, object]:
        """Seed 003's GetNames (``agent.election.names()``): ``cluster``, ``leader``,
        ``stable``, ``node``, ``term``, the ``mode`` (normal/panic) and why.

        Raises:
            ControlError: the election is off.
        """
        return self.election.names()

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
        await wait_on_hub(self.hub, lambda: predicate(self), timeout)

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

    # ------------------------------------------------------------------ flat names

    def set_fact(self, key: str, value: str) -> bool:
        """``agent.facts.set``: publish fact ``key`` = ``value`` (False: no change)."""
        return self.facts.set(key, value)

    def delete_fact(self, key: str) -> bool:
        """``agent.facts.delete``: withdraw fact ``key`` (False: there was none)."""
        return self.facts.delete(key)

    def on_fact_change(self, callback: Callable[[FactsEvent], None]) -> None:
        """``agent.facts.on_change``: call ``callback(event)`` for every change."""
        self.facts.on_change(callback)

    @property
    def local_version(self) -> str | None:
        """``agent.facts.local_version``: this node's published version."""
        return self.facts.local_version

    def set_local_version(self, version: str) -> None:
        """``agent.facts.set_local_version``: publish this node's version."""
        self.facts.set_local_version(version)

    def lowest_version(self) -> str | None:
        """``agent.facts.lowest_version``: the lowest version over the live members."""
        return self.facts.lowest_version()

    def versions(self) -> dict[str, Any]:
        """``agent.facts.versions``: local, lowest, per-node versions, count_failed."""
        return self.facts.versions()

    def feature_enabled(self, min_version: str) -> bool:
        """``agent.facts.feature_enabled``: every counted member runs ``min_version``+."""
        return self.facts.feature_enabled(min_version)

    async def wait_lowest_version(self, at_least: str, timeout: float = 60.0) -> str:
        """``agent.facts.wait_lowest_version``: wait for the lowest version to reach it."""
        return await self.facts.wait_lowest_version(at_least, timeout)

    def set_setting(self, name: str, value: str | None) -> None:
        """``agent.settings.set``: write cluster-wide setting ``name`` (None deletes)."""
        self.settings.set(name, value)

    def get_setting(self, name: str) -> str | None:
        """``agent.settings.get``: the value of cluster-wide setting ``name``."""
        return self.settings.get(name)

    def set_registry(self, ip: str, port: int, key: str) -> None:
        """``agent.settings.set_registry`` (Seed 003's SetRegistry)."""
        self.settings.set_registry(ip, port, key)

    def get_registry(self) -> dict[str, Any] | None:
        """``agent.settings.get_registry`` (Seed 003's GetRegistry)."""
        return self.settings.get_registry()

    def set_steward(self, ip: str, port: int) -> None:
        """``agent.settings.set_steward`` (Seed 003's SetSteward)."""
        self.settings.set_steward(ip, port)

    def get_steward(self) -> dict[str, Any] | None:
        """``agent.settings.get_steward`` (Seed 003's GetSteward)."""
        return self.settings.get_steward()

    def on_action(self, name: str, fn: Callable[[str], str | Awaitable[str]]) -> None:
        """``agent.actions.on``: run ``fn(payload)`` for cluster-wide action ``name``."""
        self.actions.on(name, fn)

    async def run_action(
        self, name: str, payload: str = "", timeout: float = 10.0
    ) -> dict[str, Any]:
        """``agent.actions.run``: run action ``name`` everywhere, collect the outcomes."""
        return await self.actions.run(name, payload, timeout)
