"""Shared state in the agent: facts, versions, settings and actions, wired to the outside.

:class:`SharedStateFeature` plugs in the three core capabilities — ``facts`` (with the
SQLite store when the agent has a data directory), ``settings`` and ``actions`` — and,
once the agent runs, starts its :class:`SharedRuntime`, which

* publishes the configured facts and version (``--fact``, ``--local-version``) and
  follows ``--version-file`` (checked once a second, re-published when it changes);
* mirrors every change into ``--export-dir`` and runs ``--export-command`` per change;
* runs ``--event-handler`` scripts for every event, Serf-style;
* runs cluster-wide actions with Python handlers (``agent.on_action``) or the
  ``--action-handler`` command, and reports each outcome to the action's origin.

Durable writes are effects: the factories return each capability with the writer of its
effects (``SaveFact`` → :class:`SqliteFactStore`, ``RecordAction`` →
:class:`SqliteActionLog`), and the capability gets what the store held at construction.
Actions run on the ``ActionDelivered`` event, which the driver publishes only after the
step's ``RecordAction`` was written; if that write failed, the driver published an
``EffectFailed`` first and the action is refused instead of run.

The Python facades (``agent.facts``, ``agent.settings``, ``agent.actions``) live in
runtime/features/shared_api.py, the control operations and HTTP routes in shared_ops.py.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from covey.core import Extension
from covey.core.effects import Effect
from covey.core.state.actions import UNRECORDED, ActionDelivered, Actions, RecordAction
from covey.core.state.facts.capability import (
    VERSION_KEY,
    FactChanged,
    Facts,
    FactsEvent,
    LowestVersionChanged,
    NodeFactsDropped,
    SaveFact,
)
from covey.core.state.settings import ClusterSettings, SettingChanged
from covey.runtime.config.checks import read_version_file
from covey.runtime.config.model import AgentConfig, ConfigError
from covey.runtime.events import EffectFailed, Subscription, event_kind, event_to_json
from covey.runtime.features.base import (
    Built,
    ControlHandler,
    EffectWriter,
    Feature,
    HttpRoute,
    split_built,
)
from covey.runtime.features.exporters import CommandRunner, DirectoryExporter, run_command
from covey.runtime.features.shared_api import ActionsAPI, FactsAPI, SettingsAPI
from covey.runtime.features.shared_ops import SharedOps

if TYPE_CHECKING:
    from covey.core.effects import Effect
    from covey.runtime.context import AgentContext

log = logging.getLogger("covey.shared")

#: Seconds between checks of the version file.
VERSION_FILE_POLL = 1.0

ActionFn = Callable[[str], "str | Awaitable[str]"]
_C = TypeVar("_C", bound=Extension)
FactCallback = Callable[[FactsEvent], None]


def _facts(config: AgentConfig) -> Built:
    if config.export_dir is not None:
        try:
            config.export_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("export_dir", f"cannot create {config.export_dir}: {exc}") from None
    if config.data_dir is None:
        return Facts(count_failed=config.versions_count_failed)
    # sqlite3 is loaded only by agents that keep state on disk (start-up and memory).
    from covey.runtime.stores.sqlite import FILENAME, SqliteFactStore

    store = SqliteFactStore(config.data_dir / FILENAME)
    facts = Facts(restored=store.load(), count_failed=config.versions_count_failed)
    writers: dict[type[Effect], EffectWriter] = {SaveFact: store.write}
    return facts, writers


def _actions(config: AgentConfig) -> Built:
    if config.data_dir is None:
        return Actions()
    from covey.runtime.stores.sqlite import FILENAME, SqliteActionLog

    log = SqliteActionLog(config.data_dir / FILENAME)
    writers: dict[type[Effect], EffectWriter] = {RecordAction: log.write}
    return Actions(restored=log.load()), writers


class SharedRuntime:
    """The runtime half of the shared state for one agent (see the module docstring).

    Its background work begins with :meth:`start`; callbacks and Python action handlers
    may be added before that.
    """

    def __init__(
        self,
        config: AgentConfig,
        node_id: bytes,
        facts: Facts,
        settings: ClusterSettings,
        actions: Actions,
    ) -> None:
        self.config = config
        self.facts, self.settings, self.actions = facts, settings, actions
        self._ctx: AgentContext | None = None
        c = config
        env = {
            "COVEY_SELF_NAME": c.name,
            "COVEY_SELF_ID": node_id.hex(),
            "COVEY_CLUSTER": c.cluster,
            "COVEY_CONTROL": str(c.control_path),
        }
        self.exporter = DirectoryExporter(c.export_dir) if c.export_dir else None
        self.export_runner = CommandRunner("export command", env) if c.export_command else None
        self.handler_runner = CommandRunner("event handler", env) if c.event_handlers else None
        self.action_runner = CommandRunner("action handler", env)
        self.callbacks: list[FactCallback] = []
        self.action_fns: dict[str, ActionFn] = {}
        self.version_errors = 0

    # ------------------------------------------------------------------ start

    @property
    def ctx(self) -> AgentContext:
        """The agent's context (once started)."""
        if self._ctx is None:
            raise RuntimeError("agent is not running")
        return self._ctx

    def start(self, ctx: AgentContext) -> None:
        """Publish configured facts, export a first snapshot, start watchers and runners."""
        self._ctx = ctx
        c = self.config
        self.facts.listeners.append(self._on_facts)
        # Subscribed before the first step after start, so no ActionDelivered is missed.
        ctx.spawn(self._run_actions(ctx.subscribe()))
        initial = dict(c.facts)
        if c.local_version is not None:
            initial[VERSION_KEY] = c.local_version.strip()
        elif c.version_file is not None:
            initial[VERSION_KEY] = read_version_file(c.version_file)

        def publish(now: float) -> None:
            for key, value in initial.items():
                self.facts.set(key, value, now)

        ctx.call(publish)
        if self.exporter is not None:
            for nid, facts in self.facts.all_facts().items():
                for key, value in facts.items():
                    self.exporter.fact(self._name(nid), key, value)
            self._export_versions()
        for runner in (self.export_runner, self.handler_runner):
            if runner is not None:
                ctx.spawn(runner.run())
        if c.export_dir or c.export_command or c.event_handlers:
            ctx.spawn(self._follow_events())
        if c.version_file is not None:
            ctx.spawn(self._watch_version_file())

    def _name(self, node_id: bytes) -> str:
        m = self.facts.handle.members.get(node_id)
        return m.name if m is not None else node_id.hex()

    # ------------------------------------------------------------------ facts

    def _on_facts(self, event: FactsEvent) -> None:
        """Called by the core for every change, in order (synchronously, on the loop)."""
        ex = self.exporter
        if isinstance(event, FactChanged):
            if ex is not None:
                ex.fact(event.node, event.key, event.value)
                if event.key == VERSION_KEY:
                    self._export_versions()
            self._export_command(f"nodes/{event.node}/{event.key}", event.value)
        elif isinstance(event, NodeFactsDropped):
            if ex is not None:
                ex.drop_node(event.node)
                self._export_versions()
        elif isinstance(event, LowestVersionChanged):
            if ex is not None:
                self._export_versions()
            self._export_command("lowest_version", event.new)
        for cb in list(self.callbacks):
            try:
                cb(event)
            except Exception:
                log.exception("fact callback failed")

    def _export_versions(self) -> None:
        if self.exporter is None:
            return
        versions = {self._name(n): v for n, v in self.facts.versions().items() if v is not None}
        self.exporter.versions(self.facts.local_version, self.facts.lowest_version(), versions)

    def _export_command(self, path: str, value: str | None) -> None:
        c = self.config
        if self.export_runner is None or c.export_command is None:
            return
        env = {"COVEY_EXPORT_PATH": path, "COVEY_EXPORT_VALUE": value or ""}
        if value is None:
            env["COVEY_EXPORT_DELETED"] = "1"
        self.export_runner.submit(c.export_command, env, value or "")

    async def _follow_events(self) -> None:
        """Settings into the exporter; every event to the event handlers."""
        c = self.config
        with self.ctx.subscribe() as sub:
            async for event in sub:
                if isinstance(event, SettingChanged):
                    if self.exporter is not None:
                        self.exporter.setting(event.name, event.value)
                    self._export_command(f"settings/{event.name}", event.value)
                if self.handler_runner is None:
                    continue
                data = event_to_json(event, self.ctx.wall_offset)
                env = {"COVEY_EVENT": str(data.get("event") or event_kind(event))}
                for k in ("node", "key", "name", "value", "id"):
                    v = data.get(k)
                    if isinstance(v, str):
                        env[f"COVEY_{k.upper()}"] = v
                member = data.get("member")
                if isinstance(member, dict):
                    env["COVEY_MEMBER_NAME"] = str(member.get("name", ""))
                    env["COVEY_MEMBER_ADDRESS"] = str(member.get("address", ""))
                    env["COVEY_MEMBER_STATE"] = str(member.get("state", ""))
                payload = json.dumps(data, sort_keys=True, default=str) + "\n"
                for handler in c.event_handlers:
                    self.handler_runner.submit(handler, env, payload)

    async def _watch_version_file(self) -> None:
        """Re-read the version file when its stamp changes; publish a new valid version."""
        path = self.config.version_file
        assert path is not None
        last: tuple[int, int] | None = None
        while True:
            await asyncio.sleep(VERSION_FILE_POLL)
            try:
                st = path.stat()
            except OSError:
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == last:
                continue
            last = stamp
            try:
                version = read_version_file(path)
            except ConfigError as exc:
                self.version_errors += 1
                log.warning("version file ignored: %s", exc)
                continue
            self._publish_version(version)

    def _publish_version(self, version: str) -> None:
        """Publish ``version`` (already valid and stripped) as this node's."""
        self.ctx.call(lambda now: self.facts.set(VERSION_KEY, version, now))

    # ------------------------------------------------------------------ actions

    async def _run_actions(self, sub: Subscription) -> None:
        """Run each delivered action, unless the driver reported its record as failed.

        The driver publishes a step's ``EffectFailed`` before the step's events, so a
        refused record is known here before its ``ActionDelivered`` arrives.
        """
        unrecorded: set[bytes] = set()
        with sub:
            async for event in sub:
                if isinstance(event, EffectFailed) and isinstance(event.effect, RecordAction):
                    unrecorded.add(event.effect.action_id)
                elif isinstance(event, ActionDelivered):
                    try:
                        if event.action_id in unrecorded:
                            # Unrecorded, it could run twice after a restart: do not run it.
                            unrecorded.discard(event.action_id)
                            self._answer(event.action_id, False, UNRECORDED)
                        else:
                            self._on_action(event)
                    except Exception:  # one action's failure must not stop the runner
                        log.exception("action %s failed", event.name)

    def _on_action(self, d: ActionDelivered) -> None:
        """Run one delivered action: a Python handler, else the command; answer its origin."""
        fn = self.action_fns.get(d.name)
        if fn is not None:
            try:
                out = fn(d.payload)
            except Exception as exc:
                self._answer(d.action_id, False, f"{type(exc).__name__}: {exc}")
                return
            if inspect.isawaitable(out):
                self.ctx.spawn(self._finish(d.action_id, _awaited(out)))
            else:
                self._answer(d.action_id, True, str(out))
            return
        command = self.config.action_handler
        if command is None:
            self._answer(d.action_id, False, f"no handler for action {d.name!r}")
            return
        env = {
            "COVEY_EVENT": "action",
            "COVEY_ACTION": d.name,
            "COVEY_ACTION_ID": d.action_id.hex(),
            "COVEY_ACTION_ORIGIN": self._name(d.origin),
            "COVEY_LAMPORT": str(d.lamport),
        }
        coro = run_command(self.action_runner, command, env, d.payload.encode())
        self.ctx.spawn(self._finish(d.action_id, _as_outcome(coro)))

    async def _finish(self, action_id: bytes, outcome: Awaitable[tuple[bool, str]]) -> None:
        ok, result = await outcome
        self._answer(action_id, ok, result)

    def _answer(self, action_id: bytes, ok: bool, result: str) -> None:
        if self.ctx.running:
            self.ctx.call(lambda now: self.actions.answer(action_id, ok, result, now))


async def _awaited(aw: Awaitable[Any]) -> tuple[bool, str]:
    try:
        return True, str(await aw)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


async def _as_outcome(coro: Awaitable[tuple[int, str]]) -> tuple[bool, str]:
    code, out = await coro
    return code == 0, out.strip() if code == 0 else (out.strip() or f"exit status {code}")


class SharedStateFeature(Feature):
    """Facts, versions, settings and actions of one agent (see the module docstring).

    Args:
        config: the agent's configuration.
        node_id: the agent's node id (for the commands' environment).

    Raises:
        ConfigError: the data or export directory cannot be used.
    """

    name = "shared-state"

    def __init__(self, config: AgentConfig, node_id: bytes) -> None:
        self._writers: dict[type[Effect], EffectWriter] = {}
        facts = self._capability(_facts(config), Facts)
        actions = self._capability(_actions(config), Actions)
        self.runtime = SharedRuntime(config, node_id, facts, ClusterSettings(), actions)
        #: The Python facades (``agent.facts``, ``agent.settings``, ``agent.actions``).
        self.facts = FactsAPI(self.runtime)
        self.settings = SettingsAPI(self.runtime)
        self.actions = ActionsAPI(self.runtime)
        self._ops = SharedOps(self.facts, self.settings, self.actions)

    def _capability(self, built: Built, kind: type[_C]) -> _C:
        ext, writers = split_built(built)
        assert isinstance(ext, kind)
        self._writers.update(writers)
        return ext

    def capabilities(self) -> Sequence[Extension]:
        rt = self.runtime
        return (rt.facts, rt.settings, rt.actions)

    def effect_writers(self) -> Mapping[type[Effect], EffectWriter]:
        return self._writers

    def control_ops(self) -> Mapping[str, ControlHandler]:
        return self._ops.control_ops()

    def http_routes(self) -> Sequence[HttpRoute]:
        return self._ops.http_routes()

    def start(self, ctx: AgentContext) -> None:
        self.runtime.start(ctx)
