"""The shared-state half of the agent's Python API (mixed into :class:`Agent`).

    async with covey.Agent(config) as agent:
        agent.set_fact("ready", "yes")
        await agent.wait_lowest_version("4.12", timeout=60)
        if agent.feature_enabled("4.12"):
            ...
        outcome = await agent.run_action("zstop", "vm-7", timeout=10)
        agent.set_registry("10.0.0.9", 5000, "k1")

Everything runs on the event loop's thread. Changes go through the driver, so what they
produce (gossip) leaves at once. Bad input raises ``ValueError`` (``LimitError`` or
``VersionError``) whose message names the field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from covey.core import MemberState
from covey.core.state.facts.capability import VERSION_KEY, FactsEvent
from covey.core.state.messages import check_key, check_value
from covey.core.state.settings import decode_endpoint, encode_endpoint
from covey.core.state.versions import VersionError, parse_version

if TYPE_CHECKING:
    from covey.core import Node
    from covey.runtime.driver import CoreDriver
    from covey.runtime.features.shared import SharedRuntime

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


class SharedStateAPI:
    """Facts, versions, cluster-wide settings and actions of a running agent."""

    _shared_runtime: Any = None

    if TYPE_CHECKING:
        node: Node
        node_id: bytes
        _driver: CoreDriver | None

        async def wait_for(self, predicate: Callable[[Any], bool], timeout: float) -> None: ...

    @property
    def _shared(self) -> SharedRuntime:
        from covey.runtime.features.shared import runtime_of

        return runtime_of(self)  # type: ignore[arg-type]

    def _call(self, fn: Callable[[float], Any]) -> Any:
        if self._driver is None or self._driver.closed:
            raise RuntimeError("agent is not running")
        return self._driver.call(fn)

    # ------------------------------------------------------------------ facts

    def facts(self, node: str | None = None) -> dict[str, dict[str, str]]:
        """node name → facts (key → value) of every live node (or only ``node``)."""
        out: dict[str, dict[str, str]] = {}
        f = self._shared.facts
        for nid, m in self.node.table.members.items():
            if m.state in _LIVE and (node is None or node in (m.name, nid.hex())):
                out[m.name] = f.facts_of(nid)
        return out

    def set_fact(self, key: str, value: str) -> bool:
        """Publish fact ``key`` = ``value``; False when it already had that value.

        Raises:
            ValueError: bad key or value (the message names which), too many facts.
        """
        return bool(self._call(lambda now: self._shared.facts.set(key, value, now)))

    def delete_fact(self, key: str) -> bool:
        """Withdraw fact ``key``; False when there was none."""
        check_key(key)
        return bool(self._call(lambda now: self._shared.facts.delete(key, now)))

    def on_fact_change(self, callback: Callable[[FactsEvent], None]) -> None:
        """Call ``callback(event)`` for every fact change, lowest-version change and drop."""
        self._shared.callbacks.append(callback)

    # ------------------------------------------------------------------ versions

    @property
    def local_version(self) -> str | None:
        """This node's published version."""
        return self._shared.facts.local_version

    def set_local_version(self, version: str) -> None:
        """Publish this node's version (integer or dotted).

        Raises:
            VersionError: not a version.
        """
        parse_version(version)
        self.set_fact(VERSION_KEY, version.strip())

    def lowest_version(self) -> str | None:
        """The lowest version over the live members (None while any is unknown)."""
        return self._shared.facts.lowest_version()

    def versions(self) -> dict[str, Any]:
        """``{"local", "lowest", "nodes": {name: version or None}, "count_failed"}``."""
        f = self._shared.facts
        nodes = {}
        for nid, v in f.versions().items():
            m = self.node.table.get(nid)
            nodes[m.name if m else nid.hex()] = v
        return {
            "local": f.local_version,
            "lowest": f.lowest_version(),
            "nodes": dict(sorted(nodes.items())),
            "count_failed": f.count_failed,
        }

    def feature_enabled(self, min_version: str) -> bool:
        """True when every counted member runs ``min_version`` or newer.

        Raises:
            VersionError: ``min_version`` is not a version.
        """
        want = parse_version(min_version)
        lowest = self.lowest_version()
        return lowest is not None and parse_version(lowest) >= want

    async def wait_lowest_version(self, at_least: str, timeout: float = 60.0) -> str:
        """Wait until the lowest version is ``at_least`` or newer; returns it.

        Raises:
            VersionError: ``at_least`` is not a version.
            TimeoutError: not reached within ``timeout`` seconds.
        """
        parse_version(at_least)
        await self.wait_for(lambda a: a.feature_enabled(at_least), timeout)
        lowest = self.lowest_version()
        assert lowest is not None
        return lowest

    # ------------------------------------------------------------------ settings

    def set_setting(self, name: str, value: str | None) -> None:
        """Write cluster-wide setting ``name`` (None deletes it); last writer wins."""
        self._call(lambda now: self._shared.settings.set(name, value, now))

    def get_setting(self, name: str) -> str | None:
        """The current value of cluster-wide setting ``name``."""
        return self._shared.settings.get(name)

    def settings(self) -> dict[str, str]:
        """Every cluster-wide setting."""
        return self._shared.settings.items()

    def set_registry(self, ip: str, port: int, key: str) -> None:
        """Seed 003's SetRegistry: the registry address and key, for the whole cluster."""
        check_value(key, "key")
        self.set_setting("registry", encode_endpoint(ip, port, key))

    def get_registry(self) -> dict[str, Any] | None:
        """Seed 003's GetRegistry: ``{"ip", "port", "key"}`` or None when unset."""
        return decode_endpoint(self.get_setting("registry"))

    def set_steward(self, ip: str, port: int) -> None:
        """Seed 003's SetSteward: the steward address, for the whole cluster."""
        self.set_setting("steward", encode_endpoint(ip, port))

    def get_steward(self) -> dict[str, Any] | None:
        """Seed 003's GetSteward: ``{"ip", "port"}`` or None when unset."""
        return decode_endpoint(self.get_setting("steward"))

    # ------------------------------------------------------------------ actions

    def on_action(self, name: str, fn: Callable[[str], str | Awaitable[str]]) -> None:
        """Run ``fn(payload)`` for cluster-wide action ``name`` (its return is the result;
        an exception reports failure). Takes precedence over ``--action-handler``."""
        check_key(name, "name")
        self._shared.action_fns[name] = fn

    async def run_action(
        self, name: str, payload: str = "", timeout: float = 10.0
    ) -> dict[str, Any]:
        """Run action ``name`` on every live node; wait for their outcomes up to ``timeout``.

        Returns ``{"id", "results": {node: {"ok", "result"}}, "missing": [node...]}``;
        ``missing`` lists live members that did not answer in time.

        Raises:
            ValueError: bad name or payload.
        """
        acts = self._shared.actions
        action_id: bytes = self._call(lambda now: acts.start(name, payload, now))
        with contextlib.suppress(TimeoutError):
            await self.wait_for(lambda a: not acts.pending(action_id), timeout)
        out = acts.outstanding.get(action_id)
        results = {}
        if out is not None:
            for nid, (ok, result) in out.results.items():
                m = self.node.table.get(nid)
                results[m.name if m else nid.hex()] = {"ok": ok, "result": result}
        missing = []
        for nid in acts.pending(action_id):
            m = self.node.table.get(nid)
            missing.append(m.name if m else nid.hex())
        return {
            "id": action_id.hex(),
            "results": dict(sorted(results.items())),
            "missing": sorted(missing),
        }


__all__ = ["SharedStateAPI", "VersionError"]
