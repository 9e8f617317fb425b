"""The election in the agent: vote file, fencing command, heartbeat disk, control and HTTP.

On unless switched off (``election = false``, ``--no-election``); without
``expected_votes`` the quorum's size is tracked (:mod:`covey.core.election.size`). The core
(:mod:`covey.core.election.election`) decides; this module does the IO around it:

* the term and the vote given in it, and the tracked size with its generation, are kept
  in ``DATA_DIR/election.json`` (fsync'd before any vote leaves), so a restarted node
  never votes twice in one term and remembers how large its cluster was;
* a :class:`FenceDecision` runs ``fence_command`` with the decision in the environment
  (``COVEY_FENCE_NODE``, ``COVEY_FENCE_ID``, ``COVEY_FENCE_ADDRESS``,
  ``COVEY_FENCE_INCARNATION``, ``COVEY_TERM`` as fencing token, ``COVEY_LEADER``);
* with ``heartbeat_disk``, every election heartbeat writes our slot and reads all slots
  (in a worker thread), and feeds them to the core, which decides "partitioned, not dead"
  and "storage failure";
* control operations ``names``, ``recover``, ``reboot``, ``candidate``, ``expect``;
  ``GET /v1/names``, ``POST /v1/election/expect``
  (with the Python facade ``agent.election``, in :mod:`covey.runtime.features.election_api`).

:class:`ElectionFeature` is always part of an agent: with the election off it plugs in no
capability, and its operations answer "the election is off".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covey.core import Extension, format_address
from covey.core.effects import Effect
from covey.core.election.election import (
    Election,
    ElectionConfig,
    SaveSize,
    SizeStore,
    VoteStore,
)
from covey.core.election.events import (
    FenceDecision,
    LeaderChanged,
    NodePartitioned,
    PanicEntered,
    Recovered,
)
from covey.core.election.voting import SaveVote
from covey.core.events import TraceOp, TraceRecord
from covey.runtime.features.base import (
    Built,
    ControlHandler,
    EffectWriter,
    Feature,
    HttpRoute,
    split_built,
)
from covey.runtime.features.election_api import ElectionAPI, election_ops, election_routes
from covey.runtime.features.hbdisk import DiskError, HeartbeatDisk

if TYPE_CHECKING:
    from covey.runtime.config.model import AgentConfig
    from covey.runtime.context import AgentContext

log = logging.getLogger("covey.election")

#: Longest a fencing command may run before it is killed.
FENCE_TIMEOUT = 60.0
#: Fencing outcomes kept for ``covey names --json``.
FENCE_LOG = 20


class FileVoteStore:
    """Term, vote and tracked size in a JSON file, replaced atomically and fsync'd on
    every change.

    Reads what is there at construction (``initial``, ``size``); :meth:`write` carries
    out the election's :class:`SaveVote` and :class:`SaveSize` effects, before the
    step's datagrams leave (the file holds both: each write keeps the other's last value).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.initial = VoteStore()
        self.size = SizeStore()
        try:
            raw = json.loads(path.read_text())
            term = int(raw["term"])
            voted = bytes.fromhex(raw["voted_for"]) if raw.get("voted_for") else None
            self.initial = VoteStore(term, voted)
            gen, expected = int(raw.get("size_gen", 0)), int(raw.get("expected", 0))
            if gen < 0 or expected < 0:
                raise ValueError("negative size")
            self.size = SizeStore(gen, expected)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            from covey.runtime.config.model import ConfigError

            raise ConfigError("data_dir", f"{path} is unreadable: {exc}") from None
        self._vote = (self.initial.term, self.initial.voted_for)
        self._size = (self.size.gen, self.size.expected)

    def write(self, effect: Effect) -> None:
        """Make one :class:`SaveVote` or :class:`SaveSize` durable."""
        if isinstance(effect, SaveSize):
            self._size = (effect.gen, effect.expected)
        else:
            assert isinstance(effect, SaveVote)
            self._vote = (effect.term, effect.voted_for)
        tmp = self.path.with_suffix(".tmp")
        term, voted_for = self._vote
        voted = voted_for.hex() if voted_for else None
        gen, expected = self._size
        data = {"term": term, "voted_for": voted, "size_gen": gen, "expected": expected}
        try:
            # For the agent's user only, as every file of the data directory (the election
            # runs by default now, so every agent with a data dir writes this file).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(data))
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self.path)
        except OSError as exc:
            log.error("cannot save the election vote to %s: %s", self.path, exc)


def _factory(config: AgentConfig) -> Built | None:
    if not config.election:
        return None
    expected = 2 if config.two_node else config.expected_votes  # None: tracked
    ecfg = ElectionConfig.scaled(
        expected,
        config.election_heartbeat,
        two_node=config.two_node,
        bootstrap=config.election_bootstrap,
    )
    if config.data_dir is None:
        return Election(ecfg, VoteStore())
    store = FileVoteStore(config.data_dir / "election.json")
    writers: dict[type[Effect], EffectWriter] = {SaveVote: store.write, SaveSize: store.write}
    return Election(ecfg, store.initial, store.size), writers


class ElectionFeature(Feature):
    """The election of one agent: the capability, its vote file, fencing and heartbeat disk.

    Args:
        config: the agent's configuration; the election is on unless it sets
            ``election = false`` (then :attr:`election` is None).

    Raises:
        ConfigError: the vote file exists but cannot be read.
    """

    name = "election"

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.election: Election | None = None
        self._writers: dict[type[Effect], EffectWriter] = {}
        built = _factory(config)
        if built is not None:
            ext, self._writers = split_built(built)
            assert isinstance(ext, Election)
            self.election = ext
        self.ctx: AgentContext | None = None
        #: The latest fencing outcomes, for ``covey names``.
        self.fences: list[dict[str, object]] = []
        self.disk: HeartbeatDisk | None = None
        self.disk_error: str | None = None
        self._disk_busy = False
        #: The Python facade (``agent.election``).
        self.api = ElectionAPI(self)
        #: What happened here since start: elections this node stood in (real votes,
        #: not pre-votes), fencing decisions it took, times it entered panic mode.
        self.counts = {"elections": 0, "fencings": 0, "panics": 0}

    def capabilities(self) -> Sequence[Extension]:
        return () if self.election is None else (self.election,)

    def expected_votes(self) -> int | None:
        """The size the quorum is a majority of now (configured or tracked); None when
        the election is off."""
        return None if self.election is None else self.election.expected

    def effect_writers(self) -> Mapping[type[Effect], EffectWriter]:
        return self._writers

    def control_ops(self) -> Mapping[str, ControlHandler]:
        return election_ops(self.api)

    def http_routes(self) -> Sequence[HttpRoute]:
        return election_routes(self.api)

    def start(self, ctx: AgentContext) -> None:
        """Watch for fencing decisions; with a heartbeat disk, start its loop."""
        self.ctx = ctx
        if self.election is None:
            return
        ctx.listen(self._log_event)
        ctx.spawn(self._watch_events(ctx))
        if self.config.heartbeat_disk is not None:
            ctx.spawn(self._disk_loop(ctx, self.election, self.config.heartbeat_disk))

    def stop(self) -> None:
        """Close the heartbeat disk (unless a worker thread still uses it)."""
        if self.disk is not None and not self._disk_busy:
            self.disk.close()
            self.disk = None

    def info(self) -> Mapping[str, object]:
        """``covey info``'s ``election`` (left out when it is off): term, leader, role,
        mode and :attr:`counts`."""
        ext = self.election
        if ext is None:
            return {}
        shown: dict[str, object] = {"term": ext.term, **self.counts}
        ctx = self.ctx
        if ctx is not None and ctx.running:
            names = ext.names(ctx.now())
            shown.update(leader=names["leader"], role=names["role"], mode=names["mode"])
        return shown

    def _log_event(self, event: object) -> None:
        """One line in the agent's log per election change (grep-able: "election: ..."),
        and :attr:`counts`."""
        if isinstance(event, TraceRecord) and event.op is TraceOp.ELECTION:
            self.counts["elections"] += 1
        elif isinstance(event, FenceDecision):
            self.counts["fencings"] += 1
        if isinstance(event, LeaderChanged):
            if event.leader is None:
                log.warning("election: no leader (term %d)", event.term)
            else:
                log.info("election: leader %s (term %d)", event.leader, event.term)
        elif isinstance(event, PanicEntered):
            self.counts["panics"] += 1
            log.error("election: PANIC, no fencing or failover until recovered: %s", event.reason)
        elif isinstance(event, Recovered):
            log.warning("election: recovered from panic (generation %d)", event.recover_gen)
        elif isinstance(event, NodePartitioned):
            log.warning(
                "election: %s is partitioned (silent, but its disk slot is alive): not fenced",
                event.node,
            )

    async def _watch_events(self, ctx: AgentContext) -> None:
        with ctx.subscribe() as sub:
            async for event in sub:
                if isinstance(event, FenceDecision):
                    await self._fence(event)

    async def _fence(self, d: FenceDecision) -> None:
        record: dict[str, object] = {**d.to_json(), "time": time.time()}
        self.fences = [*self.fences[-(FENCE_LOG - 1) :], record]
        command = self.config.fence_command
        if command is None:
            log.warning("fence %s (term %d): no fence_command configured", d.node, d.term)
            record["status"] = "no command"
            return
        env = {
            **os.environ,
            "COVEY_EVENT": "fence",
            "COVEY_FENCE_NODE": d.node,
            "COVEY_FENCE_ID": d.node_id.hex(),
            "COVEY_FENCE_ADDRESS": format_address(d.address),
            "COVEY_FENCE_INCARNATION": str(d.incarnation),
            "COVEY_TERM": str(d.term),
            "COVEY_LEADER": self.config.name,
            "COVEY_CLUSTER": self.config.cluster,
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

    async def _disk_loop(self, ctx: AgentContext, ext: Election, path: Path) -> None:
        interval = ext.cfg.heartbeat_interval
        while True:
            slots = None
            # Busy while a worker thread may use the disk: a cancel (shutdown) leaves it
            # set, so stop() never closes the descriptor under a write in progress.
            self._disk_busy = True
            try:
                if self.disk is None:
                    self.disk = await asyncio.to_thread(HeartbeatDisk, path)
                slots = await asyncio.to_thread(self._disk_io, ctx, ext)
                self.disk_error = None
            except DiskError as exc:
                if self.disk_error != str(exc):
                    log.error("heartbeat disk: %s", exc)
                self.disk_error = str(exc)
                if self.disk is not None:
                    self.disk.close()
                    self.disk = None
            self._disk_busy = False
            if not ctx.running:
                return
            ctx.call(partial(ext.observe_disk, slots=slots))
            await asyncio.sleep(interval)

    def _disk_io(self, ctx: AgentContext, ext: Election) -> list[Any]:
        disk = self.disk
        assert disk is not None
        disk.write(ctx.name, ctx.node_id, time.time(), ext.term, ctx.incarnation)
        return [r.observation() for r in disk.read()]
