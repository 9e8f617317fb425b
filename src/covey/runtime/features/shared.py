"""Shared state in the agent: facts, versions, settings and actions, wired to the outside.

Registers (see runtime/features.py) the three core extensions — ``facts`` (with the
SQLite store when the agent has a data directory), ``settings`` and ``actions`` — and,
once the agent runs, a :class:`SharedRuntime` that

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

Control operations and HTTP routes live in runtime/shared_ops.py.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

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
from covey.runtime.config.model import AgentConfig, ConfigError, read_version_file
from covey.runtime.events import EffectFailed, Subscription, event_kind, event_to_json
from covey.runtime.features.base import AGENT_STARTED, EXTENSIONS, Built, EffectWriter
from covey.runtime.features.exporters import CommandRunner, DirectoryExporter, run_command
from covey.runtime.stores.sqlite import FILENAME, SqliteActionLog, SqliteFactStore

if TYPE_CHECKING:
    from covey.runtime.agent import Agent

log = logging.getLogger("covey.shared")

#: Seconds between checks of the version file.
VERSION_FILE_POLL = 1.0

ActionFn = Callable[[str], "str | Awaitable[str]"]
FactCallback = Callable[[FactsEvent], None]


def _facts(config: AgentConfig) -> Built:
    if config.export_dir is not None:
        try:
            config.export_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("export_dir", f"cannot create {config.export_dir}: {exc}") from None
    if config.data_dir is None:
        return Facts(count_failed=config.versions_count_failed)
    store = SqliteFactStore(config.data_dir / FILENAME)
    facts = Facts(restored=store.load(), count_failed=config.versions_count_failed)
    writers: dict[type[Effect], EffectWriter] = {SaveFact: store.write}
    return facts, writers


EXTENSIONS.append(_facts)
EXTENSIONS.append(lambda config: ClusterSettings())


def _actions(config: AgentConfig) -> Built:
    if config.data_dir is None:
        return Actions()
    log = SqliteActionLog(config.data_dir / FILENAME)
    writers: dict[type[Effect], EffectWriter] = {RecordAction: log.write}
    return Actions(restored=log.load()), writers


EXTENSIONS.append(_actions)


def extensions(agent: Agent) -> tuple[Facts, ClusterSettings, Actions]:
    """The agent's three shared-state extensions."""
    f = agent.node.capability("facts")
    s = agent.node.capability("settings")
    a = agent.node.capability("actions")
    assert isinstance(f, Facts) and isinstance(s, ClusterSettings) and isinstance(a, Actions)
    return f, s, a


class SharedRuntime:
    """The runtime half of the shared state for one agent (see the module docstring)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.facts, self.settings, self.actions = extensions(agent)
        c = agent.config
        env = {
            "COVEY_SELF_NAME": c.name,
            "COVEY_SELF_ID": agent.node_id.hex(),
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

    def start(self) -> None:
        """Publish configured facts, export a first snapshot, start watchers and runners."""
        agent, c = self.agent, self.agent.config
        assert agent._driver is not None
        self.facts.listeners.append(self._on_facts)
        # Subscribed before the first step after start, so no ActionDelivered is missed.
        agent._spawn(self._run_actions(agent.events()))
        initial = dict(c.facts)
        if c.local_version is not None:
            initial[VERSION_KEY] = c.local_version.strip()
        elif c.version_file is not None:
            initial[VERSION_KEY] = read_version_file(c.version_file)

        def publish(now: float) -> None:
            for key, value in initial.items():
                self.facts.set(key, value, now)

        agent._driver.call(publish)
        if self.exporter is not None:
            for nid, facts in self.facts.all_facts().items():
                for key, value in facts.items():
                    self.exporter.fact(self._name(nid), key, value)
            self._export_versions()
        for runner in (self.export_runner, self.handler_runner):
            if runner is not None:
                agent._spawn(runner.run())
        if c.export_dir or c.export_command or c.event_handlers:
            agent._spawn(self._follow_events())
        if c.version_file is not None:
            agent._spawn(self._watch_version_file())

    def _name(self, node_id: bytes) -> str:
        m = self.agent.node.table.get(node_id)
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
        c = self.agent.config
        if self.export_runner is None or c.export_command is None:
            return
        env = {"COVEY_EXPORT_PATH": path, "COVEY_EXPORT_VALUE": value or ""}
        if value is None:
            env["COVEY_EXPORT_DELETED"] = "1"
        self.export_runner.submit(c.export_command, env, value or "")

    async def _follow_events(self) -> None:
        """Settings into the exporter; every event to the event handlers."""
        c = self.agent.config
        with self.agent.events() as sub:
            async for event in sub:
                if isinstance(event, SettingChanged):
                    if self.exporter is not None:
                        self.exporter.setting(event.name, event.value)
                    self._export_command(f"settings/{event.name}", event.value)
                if self.handler_runner is None:
                    continue
                data = event_to_json(event, self.agent.node.wall_offset)
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
        path = self.agent.config.version_file
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
            self.agent.set_local_version(version)

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
                self.agent._spawn(self._finish(d.action_id, _awaited(out)))
            else:
                self._answer(d.action_id, True, str(out))
            return
        command = self.agent.config.action_handler
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
        self.agent._spawn(self._finish(d.action_id, _as_outcome(coro)))

    async def _finish(self, action_id: bytes, outcome: Awaitable[tuple[bool, str]]) -> None:
        ok, result = await outcome
        self._answer(action_id, ok, result)

    def _answer(self, action_id: bytes, ok: bool, result: str) -> None:
        driver = self.agent._driver
        if driver is not None and not driver.closed:
            driver.call(lambda now: self.actions.answer(action_id, ok, result, now))


async def _awaited(aw: Awaitable[Any]) -> tuple[bool, str]:
    try:
        return True, str(await aw)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


async def _as_outcome(coro: Awaitable[tuple[int, str]]) -> tuple[bool, str]:
    code, out = await coro
    return code == 0, out.strip() if code == 0 else (out.strip() or f"exit status {code}")


def runtime_of(agent: Agent) -> SharedRuntime:
    """The agent's SharedRuntime (made on first use; started with the agent)."""
    rt = getattr(agent, "_shared_runtime", None)
    if rt is None:
        rt = SharedRuntime(agent)
        agent._shared_runtime = rt
    assert isinstance(rt, SharedRuntime)
    return rt


def _started(agent: Agent) -> None:
    runtime_of(agent).start()


AGENT_STARTED.append(_started)
