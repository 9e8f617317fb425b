"""The shared state's Python facades: ``agent.facts``, ``agent.settings``, ``agent.actions``.

    async with covey.Agent(config) as agent:
        agent.facts.set("ready", "yes")
        print(agent.facts())                      # {node name: {key: value}}
        await agent.facts.wait_lowest_version("4.12", timeout=60)
        if agent.facts.feature_enabled("4.12"):
            ...
        outcome = await agent.actions.run("zstop", "vm-7", timeout=10)
        agent.settings.set_registry("10.0.0.9", 5000, "k1")

(The agent keeps the flat names too: ``agent.set_fact``, ``agent.run_action``, ...)

Everything runs on the event loop's thread. Changes go through the agent's context, so
what they produce (gossip) leaves at once; they raise ``RuntimeError`` while the agent is
not running. Bad input raises ``ValueError`` (``LimitError`` or ``VersionError``) whose
message names the field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from covey.core import MemberState
from covey.core.state.facts.capability import VERSION_KEY, FactsEvent
from covey.core.state.messages import check_key, check_value
from covey.core.state.settings import decode_endpoint, encode_endpoint
from covey.core.state.versions import VersionError, parse_version

if TYPE_CHECKING:
    from covey.runtime.features.shared import SharedRuntime

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)
T = TypeVar("T")


class _Facade:
    def __init__(self, runtime: SharedRuntime) -> None:
        self._rt = runtime

    def _call(self, fn: Callable[[float], T]) -> T:
        ctx = self._rt.ctx
        if not ctx.running:
            raise RuntimeError("agent is not running")
        return ctx.call(fn)

    def _name(self, node_id: bytes) -> str:
        m = self._rt.facts.handle.members.get(node_id)
        return m.name if m is not None else node_id.hex()


class FactsAPI(_Facade):
    """Facts and versions of the cluster; calling it lists the facts of the live nodes."""

    def __call__(self, node: str | None = None) -> dict[str, dict[str, str]]:
        """node name → facts (key → value) of every live node (or only ``node``)."""
        out: dict[str, dict[str, str]] = {}
        f = self._rt.facts
        for nid, m in f.handle.members.members.items():
            if m.state in _LIVE and (node is None or node in (m.name, nid.hex())):
                out[m.name] = f.facts_of(nid)
        return out

    def set(self, key: str, value: str) -> bool:
        """Publish fact ``key`` = ``value``; False when it already had that value.

        Raises:
            ValueError: bad key or value (the message names which), too many facts.
        """
        return bool(self._call(lambda now: self._rt.facts.set(key, value, now)))

    def delete(self, key: str) -> bool:
        """Withdraw fact ``key``; False when there was none."""
        check_key(key)
        return bool(self._call(lambda now: self._rt.facts.delete(key, now)))

    def on_change(self, callback: Callable[[FactsEvent], None]) -> None:
        """Call ``callback(event)`` for every fact change, lowest-version change and drop."""
        self._rt.callbacks.append(callback)

    @property
    def local_version(self) -> str | None:
        """This node's published version."""
        return self._rt.facts.local_version

    def set_local_version(self, version: str) -> None:
        """Publish this node's version (integer or dotted).

        Raises:
            VersionError: not a version.
        """
        parse_version(version)
        self.set(VERSION_KEY, version.strip())

    def lowest_version(self) -> str | None:
        """The lowest version over the live members (None while any is unknown)."""
        return self._rt.facts.lowest_version()

    def versions(self) -> dict[str, Any]:
        """``{"local", "lowest", "nodes": {name: version or None}, "count_failed"}``."""
        f = self._rt.facts
        nodes = {self._name(nid): v for nid, v in f.versions().items()}
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
        await self._rt.ctx.wait_for(lambda: self.feature_enabled(at_least), timeout)
        lowest = self.lowest_version()
        assert lowest is not None
        return lowest


class SettingsAPI(_Facade):
    """Cluster-wide settings (last writer wins); calling it returns every setting."""

    def __call__(self) -> dict[str, str]:
        """Every cluster-wide setting."""
        return self._rt.settings.items()

    def set(self, name: str, value: str | None) -> None:
        """Write cluster-wide setting ``name`` (None deletes it); last writer wins."""
        self._call(lambda now: self._rt.settings.set(name, value, now))

    def get(self, name: str) -> str | None:
        """The current value of cluster-wide setting ``name``."""
        return self._rt.settings.get(name)

    def set_registry(self, ip: str, port: int, key: str) -> None:
        """Seed 003's SetRegistry: the registry address and key, for the whole cluster."""
        check_value(key, "key")
        self.set("registry", encode_endpoint(ip, port, key))

    def get_registry(self) -> dict[str, Any] | None:
        """Seed 003's GetRegistry: ``{"ip", "port", "key"}`` or None when unset."""
        return decode_endpoint(self.get("registry"))

    def set_steward(self, ip: str, port: int) -> None:
        """Seed 003's SetSteward: the steward address, for the whole cluster."""
        self.set("steward", encode_endpoint(ip, port))

    def get_steward(self) -> dict[str, Any] | None:
        """Seed 003's GetSteward: ``{"ip", "port"}`` or None when unset."""
        return decode_endpoint(self.get("steward"))


class ActionsAPI(_Facade):
    """Cluster-wide actions: run one everywhere, or handle them here."""

    def on(self, name: str, fn: Callable[[str], str | Awaitable[str]]) -> None:
        """Run ``fn(payload)`` for cluster-wide action ``name`` (its return is the result;
        an exception reports failure). Takes precedence over ``--action-handler``.

        Raises:
            ValueError: a bad name, or a reserved one (``covey.keys``: key rotation).
        """
        check_key(name, "name")
        if name == "covey.keys":
            raise ValueError("name: 'covey.keys' is reserved (covey keys)")
        self._rt.action_fns[name] = fn

    async def run(self, name: str, payload: str = "", timeout: float = 10.0) -> dict[str, Any]:
        """Run action ``name`` on every live node; wait for their outcomes up to ``timeout``.

        Returns ``{"id", "results": {node: {"ok", "result"}}, "missing": [node...]}``;
        ``missing`` lists live members that did not answer in time.

        Raises:
            ValueError: bad name or payload.
        """
        acts = self._rt.actions
        action_id: bytes = self._call(lambda now: acts.start(name, payload, now))
        with contextlib.suppress(TimeoutError):
            await self._rt.ctx.wait_for(lambda: not acts.pending(action_id), timeout)
        out = acts.outstanding.get(action_id)
        results = {}
        if out is not None:
            for nid, (ok, result) in out.results.items():
                results[self._name(nid)] = {"ok": ok, "result": result}
        missing = [self._name(nid) for nid in acts.pending(action_id)]
        return {
            "id": action_id.hex(),
            "results": dict(sorted(results.items())),
            "missing": sorted(missing),
        }


__all__ = ["ActionsAPI", "FactsAPI", "SettingsAPI", "VersionError"]
