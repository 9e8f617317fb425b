"""The election in the agent: vote file, fencing command, heartbeat disk, control and HTTP.

On when ``expected_votes`` (or ``two_node``) is set. The core
(:mod:`covey.core.election.election`) decides; this module does the IO around it:

* the term and the vote given in it are kept in ``DATA_DIR/election.json`` (fsync'd before
  any vote leaves), so a restarted node never votes twice in one term;
* a :class:`FenceDecision` runs ``fence_command`` with the decision in the environment
  (``COVEY_FENCE_NODE``, ``COVEY_FENCE_ID``, ``COVEY_FENCE_ADDRESS``,
  ``COVEY_FENCE_INCARNATION``, ``COVEY_TERM`` as fencing token, ``COVEY_LEADER``);
* with ``heartbeat_disk``, every election heartbeat writes our slot and reads all slots
  (in a worker thread), and feeds them to the core, which decides "partitioned, not dead"
  and "storage failure";
* control operations ``names``, ``recover``, ``reboot``, ``candidate`` and the testing aid
  ``drop``; ``GET /v1/names``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covey.core.effects import Effect
from covey.core.election.election import Election, ElectionConfig, VoteStore
from covey.core.election.events import FenceDecision
from covey.core.election.voting import SaveVote
from covey.runtime.config.sources import parse_address
from covey.runtime.control.server import ControlError
from covey.runtime.features.base import (
    AGENT_STARTED,
    CONTROL_OPS,
    EXTENSIONS,
    HTTP_ROUTES,
    Built,
    EffectWriter,
    json_response,
)
from covey.runtime.features.hbdisk import DiskError, HeartbeatDisk

if TYPE_CHECKING:
    from aiohttp import web

    from covey.runtime.agent import Agent
    from covey.runtime.config.model import AgentConfig

log = logging.getLogger("covey.election")

#: Longest a fencing command may run before it is killed.
FENCE_TIMEOUT = 60.0
#: Fencing outcomes kept for ``covey names --json``.
FENCE_LOG = 20


class FileVoteStore:
    """Term and vote in a JSON file, replaced atomically and fsync'd on every change.

    Reads what is there at construction (``initial``); :meth:`write` carries out the
    election's :class:`SaveVote` effects, before the step's datagrams leave.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.initial = VoteStore()
        try:
            raw = json.loads(path.read_text())
            term = int(raw["term"])
            voted = bytes.fromhex(raw["voted_for"]) if raw.get("voted_for") else None
            self.initial = VoteStore(term, voted)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            from covey.runtime.config.model import ConfigError

            raise ConfigError("data_dir", f"{path} is unreadable: {exc}") from None

    def write(self, effect: Effect) -> None:
        """Make one :class:`SaveVote` durable."""
        assert isinstance(effect, SaveVote)
        tmp = self.path.with_suffix(".tmp")
        voted = effect.voted_for.hex() if effect.voted_for else None
        data = {"term": effect.term, "voted_for": voted}
        try:
            with open(tmp, "w") as fh:
                fh.write(json.dumps(data))
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self.path)
        except OSError as exc:
            log.error("cannot save the election vote to %s: %s", self.path, exc)


def _factory(config: AgentConfig) -> Built | None:
    if config.expected_votes is None and not config.two_node:
        return None
    expected = config.expected_votes or 2
    ecfg = ElectionConfig.scaled(expected, config.election_heartbeat, two_node=config.two_node)
    if config.data_dir is None:
        return Election(ecfg, VoteStore())
    store = FileVoteStore(config.data_dir / "election.json")
    writers: dict[type[Effect], EffectWriter] = {SaveVote: store.write}
    return Election(ecfg, store.initial), writers


EXTENSIONS.append(_factory)


class ElectionRuntime:
    """The IO side of one agent's election (fencing command, heartbeat disk)."""

    def __init__(self, agent: Agent, ext: Election) -> None:
        self.agent = agent
        self.ext = ext
        self.fences: list[dict[str, object]] = []
        self.disk: HeartbeatDisk | None = None
        self.disk_error: str | None = None

    def start(self) -> None:
        self.agent._spawn(self._watch_events())
        if self.agent.config.heartbeat_disk is not None:
            self.agent._spawn(self._disk_loop(self.agent.config.heartbeat_disk))

    async def _watch_events(self) -> None:
        with self.agent.events() as sub:
            async for event in sub:
                if isinstance(event, FenceDecision):
                    await self._fence(event)

    async def _fence(self, d: FenceDecision) -> None:
        record: dict[str, object] = {**d.to_json(), "time": time.time()}
        self.fences = [*self.fences[-(FENCE_LOG - 1) :], record]
        command = self.agent.config.fence_command
        if command is None:
            log.warning("fence %s (term %d): no fence_command configured", d.node, d.term)
            record["status"] = "no command"
            return
        env = {
            **os.environ,
            "COVEY_EVENT": "fence",
            "COVEY_FENCE_NODE": d.node,
            "COVEY_FENCE_ID": d.node_id.hex(),
            "COVEY_FENCE_ADDRESS": f"{d.address[0]}:{d.address[1]}",
            "COVEY_FENCE_INCARNATION": str(d.incarnation),
            "COVEY_TERM": str(d.term),
            "COVEY_LEADER": self.agent.config.name,
            "COVEY_CLUSTER": self.agent.config.cluster,
        }
        log.warning("fencing %s with token (term) %d", d.node, d.term)
        try:
            proc = await asyncio.create_subprocess_shell(
                command, env=env, stdin=asyncio.subprocess.DEVNULL
            )
            try:
                code = await asyncio.wait_for(proc.wait(), FENCE_TIMEOUT)
            except TimeoutError:
                proc.kill()
                code = await proc.wait()
        except OSError as exc:
            log.error("fence command failed to start: %s", exc)
            record["status"] = f"error: {exc}"
            return
        record["status"] = code
        log.log(logging.INFO if code == 0 else logging.ERROR, "fence %s: exit %s", d.node, code)

    async def _disk_loop(self, path: Path) -> None:
        interval = self.ext.cfg.heartbeat_interval
        while True:
            slots = None
            try:
                if self.disk is None:
                    self.disk = await asyncio.to_thread(HeartbeatDisk, path)
                slots = await asyncio.to_thread(self._disk_io)
                self.disk_error = None
            except DiskError as exc:
                if self.disk_error != str(exc):
                    log.error("heartbeat disk: %s", exc)
                self.disk_error = str(exc)
                if self.disk is not None:
                    self.disk.close()
                    self.disk = None
            driver = self.agent._driver
            if driver is None or driver.closed:
                return
            driver.call(partial(self.ext.observe_disk, slots=slots))
            await asyncio.sleep(interval)

    def _disk_io(self) -> list[Any]:
        disk = self.disk
        assert disk is not None
        node = self.agent.node
        disk.write(node.config.name, node.node_id, time.time(), self.ext.term, node.incarnation)
        return [r.observation() for r in disk.read()]

    def close(self) -> None:
        if self.disk is not None:
            self.disk.close()
            self.disk = None


def election_of(agent: Agent) -> Election:
    """The agent's election extension; ControlError when the election is off."""
    ext = agent.node.capability("election")
    if not isinstance(ext, Election):
        raise ControlError("the election is off (start the agent with --expected-votes N)")
    return ext


def runtime_of(agent: Agent) -> ElectionRuntime | None:
    rt = getattr(agent, "_election_runtime", None)
    return rt if isinstance(rt, ElectionRuntime) else None


def _started(agent: Agent) -> None:
    ext = agent.node.capability("election")
    if isinstance(ext, Election):
        rt = ElectionRuntime(agent, ext)
        agent._election_runtime = rt  # type: ignore[attr-defined]
        rt.start()


AGENT_STARTED.append(_started)


def names(agent: Agent) -> dict[str, object]:
    """Seed 003's GetNames for ``agent``: cluster, leader, stable, node, term, mode..."""
    ext = election_of(agent)
    assert agent._driver is not None
    out = ext.names(agent._driver.now())
    rt = runtime_of(agent)
    if rt is not None:
        out["fences"] = list(rt.fences)
        out["disk"] = (
            None
            if agent.config.heartbeat_disk is None
            else {"path": str(agent.config.heartbeat_disk), "error": rt.disk_error}
        )
    return out


def _call(agent: Agent, fn: Any) -> Any:
    driver = agent._driver
    if driver is None or driver.closed:
        raise ControlError("agent is not running")
    return driver.call(fn)


def _op_names(agent: Agent, req: dict[str, Any]) -> object:
    return names(agent)


def _op_recover(agent: Agent, req: dict[str, Any]) -> object:
    ext = election_of(agent)
    return {"result": _call(agent, ext.recover)}


def _op_reboot(agent: Agent, req: dict[str, Any]) -> object:
    ext = election_of(agent)
    back = _call(agent, ext.reboot)
    assert agent._driver is not None
    return {"resumes_in": round(back - agent._driver.now(), 3)}


def _op_candidate(agent: Agent, req: dict[str, Any]) -> object:
    ext = election_of(agent)
    target = req.get("node")
    if not isinstance(target, str) or not target:
        raise ControlError('"node" must name a member')
    member = agent.member(target)
    if member is None:
        raise ControlError(f"no member called {target!r}")
    _call(agent, lambda now: ext.send_info(member.address, now))
    return {"sent_to": member.name}


def _op_drop(agent: Agent, req: dict[str, Any]) -> object:
    """Testing aid: drop unicast traffic to/from addresses (``add``, ``remove``, ``clear``)."""
    driver = agent._driver
    if driver is None:
        raise ControlError("agent is not running")
    try:
        add = {parse_address("add", a) for a in req.get("add") or []}
        remove = {parse_address("remove", a) for a in req.get("remove") or []}
    except ValueError as exc:
        raise ControlError(str(exc)) from None
    if req.get("clear"):
        driver.drop.clear()
    driver.drop |= add
    driver.drop -= remove
    return sorted(f"{h}:{p}" for h, p in driver.drop)


CONTROL_OPS["names"] = _op_names
CONTROL_OPS["recover"] = _op_recover
CONTROL_OPS["reboot"] = _op_reboot
CONTROL_OPS["candidate"] = _op_candidate
CONTROL_OPS["drop"] = _op_drop


async def _http_names(request: web.Request) -> web.Response:
    from covey.api.http import AGENT_KEY

    agent = request.app[AGENT_KEY]
    try:
        return json_response(names(agent))
    except ControlError as exc:
        return json_response({"error": str(exc)}, status=404)


HTTP_ROUTES.append(("GET", "/v1/names", _http_names))
