"""Deliveries in the simulator: simulated disks, and a seeded chaos run with its checks.

:class:`DeliveryCluster` runs :class:`~covey.core.deliveries.Deliveries` on every host
of a :class:`~covey.sim.world.Simulation`. Each host has a simulated disk (:class:`Disk`)
that the effects are written to as the core hands them out (``sim.effect_listeners``),
and a restarted host's capability is rebuilt from it, as the runtime's store will do.
The handler counts its runs per (node, delivery, stage).

A :class:`ChaosRun` (one seed) creates deliveries on two owners while the seed chooses
loss, pauses, crashes and restarts of receivers and of the owners; then the network
heals, everyone comes back and the run waits for every delivery to end. Checked:

* **nothing lost**: every delivery whose ``create`` returned ends (complete or failed);
* **nothing completed twice**: one ``DeliveryComplete`` per delivery across owner
  restarts, and a stored record never changes after its end;
* **never beyond K**: no stored stage holds more than K receipts, or two from one node;
* **handlers at most once** per node per delivery stage, across receiver restarts, and
  every stored receipt comes from a node whose handler ran.

A failing run reports its seed; ``run_chaos(seed)`` replays it exactly.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from covey.core import Event, Extension
from covey.core.deliveries import (
    Deliveries,
    DeliveriesConfig,
    DeliveryComplete,
    DeliveryRecord,
    DeliveryRequested,
    HandledRecord,
    Refused,
    SaveDelivery,
    SaveHandled,
    SelectorError,
    StageSpec,
)
from covey.core.effects import Effect
from covey.sim.network import LinkModel
from covey.sim.world import HostState, SimHost, Simulation


@dataclass
class Disk:
    """One host's simulated disk: the last stored record of each delivery and request."""

    deliveries: dict[bytes, DeliveryRecord] = field(default_factory=dict)
    handled: dict[tuple[bytes, int], HandledRecord] = field(default_factory=dict)


class DeliveryCluster:
    """A simulation whose every host runs deliveries on a simulated disk.

    Args:
        seed: seeds the simulation.
        nodes: how many hosts (bootstrapped as a converged cluster).
        config: the capability's timings.
        refuse: the share of requests the handler refuses (drawn from ``rng``).
        rng: draws the refusals (default: seeded from ``seed``).
        sim: keyword arguments for :class:`Simulation` (timings, link model...).
    """

    def __init__(
        self,
        seed: int,
        *,
        nodes: int = 6,
        config: DeliveriesConfig | None = None,
        refuse: float = 0.0,
        rng: random.Random | None = None,
        **sim: Any,
    ) -> None:
        self.config = config or DeliveriesConfig(ask_deadline=5.0, backoff_max=8.0)
        self.refuse = refuse
        self.rng = rng or random.Random(seed ^ 0xDE11)
        self.disks: dict[str, Disk] = {}
        self.runs: Counter[tuple[str, bytes, int]] = Counter()
        self.completed: Counter[bytes] = Counter()
        self.violations: list[str] = []
        self.sim = Simulation(seed, extensions=self._extensions, record_events=False, **sim)
        self.sim.effect_listeners.append(self._on_effect)
        self.sim.listeners.append(self._on_event)
        self.hosts = self.sim.bootstrap(nodes)
        self.names = {h.config.node_id: h.name for h in self.hosts}

    # ------------------------------------------------------------ wiring

    def _extensions(self, host: SimHost) -> list[Extension]:
        disk = self.disks.setdefault(host.name, Disk())
        name = host.name

        def handler(req: DeliveryRequested) -> bytes | Refused:
            self.runs[(name, req.delivery, req.stage)] += 1
            if self.refuse and self.rng.random() < self.refuse:
                return Refused("not today")
            return name.encode()

        cap = Deliveries(
            handler=handler,
            records=list(disk.deliveries.values()),
            handled=list(disk.handled.values()),
            config=self.config,
        )
        return [cap]

    def fail(self, what: str) -> None:
        """Note a violated invariant (the first 20)."""
        if len(self.violations) < 20:
            self.violations.append(f"t={self.sim.now:.3f}: {what}")

    def _on_effect(self, host: SimHost, effect: Effect) -> None:
        disk = self.disks[host.name]
        if isinstance(effect, SaveHandled):
            disk.handled[effect.record.key] = effect.record
            return
        if not isinstance(effect, SaveDelivery):
            return
        rec = effect.record
        old = disk.deliveries.get(rec.id)
        if old is not None:
            if rec.version <= old.version:
                self.fail(f"{rec.id.hex()[:8]}: version {rec.version} after {old.version}")
            if old.state.done and (rec.state, rec.stage) != (old.state, old.stage):
                self.fail(f"{rec.id.hex()[:8]}: {old.state.value} became {rec.state.value}")
        for i, p in enumerate(rec.progress):
            nodes = [r.node for r in p.receipts]
            if len(nodes) > rec.stages[i].required or len(set(nodes)) != len(nodes):
                self.fail(f"{rec.id.hex()[:8]} stage {i}: {len(nodes)} receipts accepted")
        disk.deliveries[rec.id] = rec

    def _on_event(self, host: SimHost, now: float, event: Event) -> None:
        if isinstance(event, DeliveryComplete):
            self.completed[event.record.id] += 1
            if self.completed[event.record.id] > 1:
                self.fail(f"{event.record.id.hex()[:8]} completed twice")

    # ------------------------------------------------------------ actions

    def cap(self, name: str) -> Deliveries:
        """The deliveries capability of host ``name``."""
        cap = self.sim.hosts[name].node.capability("deliveries")
        assert isinstance(cap, Deliveries)
        return cap

    def create(
        self, name: str, stages: Sequence[StageSpec], payload: bytes = b"p", **kw: Any
    ) -> DeliveryRecord:
        """Create a delivery on ``name`` and hand out its step at once (as the runtime
        does after an API call): when this returns, the record is on the disk."""
        rec = self.cap(name).create(payload, stages, now=self.sim.now, **kw)
        self.sim._flush(self.sim.hosts[name])
        return rec

    def stored(self, name: str, delivery: bytes) -> DeliveryRecord | None:
        """The record of ``delivery`` on ``name``'s disk."""
        return self.disks[name].deliveries.get(delivery)

    def _check_failure(self, rec: DeliveryRecord) -> None:
        """A healed cluster fails a delivery only if its stage cannot be met: too many
        members refused it (a refusal is final for that member and stage)."""
        p = rec.current
        spec = rec.spec
        before = rec.answered_before() if spec.exclude_previous else frozenset()
        refused = {n for n, _ in p.refusals}
        could = [n for n in self.names if n != rec.owner and n not in before and n not in refused]
        if len(could) >= spec.required:
            self.fail(f"{rec.id.hex()[:8]} failed while {len(could)} members could answer")

    def check_end(self, owners: dict[bytes, str]) -> tuple[int, int]:
        """Check the end state of every created delivery; (complete, failed) counts."""
        complete = failed = 0
        for item, owner in owners.items():
            rec = self.stored(owner, item)
            if rec is None or not rec.state.done:
                state = "missing" if rec is None else f"{rec.state.value} ({rec.reason})"
                self.fail(f"{item.hex()[:8]} lost: {state}")
                continue
            if rec.state.value == "complete":
                complete += 1
                if self.completed[item] != 1:
                    self.fail(f"{item.hex()[:8]} complete, announced {self.completed[item]}x")
            else:
                failed += 1
                self._check_failure(rec)
            for i, p in enumerate(rec.progress):
                for r in p.receipts:
                    if self.runs[(self.names[r.node], item, i)] != 1:
                        self.fail(f"{item.hex()[:8]} stage {i}: receipt with no handler run")
        for (name, item, stage), n in self.runs.items():
            if n > 1:
                self.fail(f"{name} ran the handler of {item.hex()[:8]} stage {stage} {n}x")
        return complete, failed


@dataclass
class ChaosResult:
    """What one chaos run saw."""

    seed: int
    created: int = 0
    complete: int = 0
    failed: int = 0
    actions: int = 0
    owner_restarts: int = 0
    refused_creates: int = 0
    steps: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every invariant held."""
        return not self.violations


def run_chaos(seed: int, *, deliveries: int = 12, chaos: float = 60.0) -> ChaosResult:
    """One seeded chaos run (see the module docstring)."""
    rng = random.Random(seed)
    world = DeliveryCluster(
        seed,
        nodes=6,
        refuse=0.05,
        rng=random.Random(seed ^ 0xDE11),
        link=LinkModel(delay=0.002, jitter=0.003),
        probe_interval=1.0,
        probe_timeout=0.5,
        gossip_interval=0.2,
    )
    sim, names = world.sim, [h.name for h in world.hosts]
    owner_names, receivers = names[:2], names[2:]
    result = ChaosResult(seed)
    owners: dict[bytes, str] = {}
    sim.run_for(1.0)
    creates = sorted(rng.uniform(0, chaos) for _ in range(deliveries))
    t0 = sim.now
    while sim.now < t0 + chaos:
        while creates and t0 + creates[0] <= sim.now:
            creates.pop(0)
            name = rng.choice(owner_names)
            if sim.hosts[name].state is not HostState.RUNNING:
                continue
            k1, k2 = rng.randint(1, 3), rng.randint(1, 2)
            stages = [StageSpec.parse(f"{k1}:any", deadline=rng.uniform(1.0, 6.0))]
            if rng.random() < 0.6:
                stages.append(StageSpec.parse(f"{k2}!:any", deadline=rng.uniform(1.0, 6.0)))
            try:
                rec = world.create(name, stages, payload=rng.randbytes(rng.choice((16, 4096))))
            except SelectorError:  # a restarted owner that does not know enough members yet
                result.refused_creates += 1
                continue
            owners[rec.id] = name
        _act(world, rng, owner_names, receivers, result)
        sim.run_for(rng.choice((0.2, 0.5, 1.0, 3.0)))
    # Heal: no loss, everyone back; then every delivery must end.
    sim.network.set_loss(0.0)
    for h in list(sim.hosts.values()):
        if h.state is HostState.PAUSED:
            sim.resume(h.name)
        elif h.state is not HostState.RUNNING:
            sim.restart(h.name)
    result.created = len(owners)

    def ended() -> bool:
        return all(
            (r := world.stored(o, i)) is not None and r.state.done for i, o in owners.items()
        )

    sim.run_until_true(ended, timeout=600.0, step=1.0)
    result.complete, result.failed = world.check_end(owners)
    result.steps = sim.steps
    result.violations = [f"seed {seed} {v}" for v in world.violations]
    return result


def _act(
    world: DeliveryCluster,
    rng: random.Random,
    owners: list[str],
    receivers: list[str],
    result: ChaosResult,
) -> None:
    sim = world.sim
    roll = rng.random()
    if roll < 0.55:
        return
    result.actions += 1
    if roll < 0.65:
        sim.network.set_loss(rng.choice((0.0, 0.0, 0.05, 0.1, 0.2)))
    elif roll < 0.78:
        name = rng.choice(receivers)
        if sim.hosts[name].state is HostState.RUNNING:
            sim.pause(name, rng.uniform(0.5, 10.0))
    elif roll < 0.82:
        name = rng.choice(receivers)
        if sim.hosts[name].state is HostState.RUNNING:
            sim.crash(name)
    elif roll < 0.86:
        # A quick restart (a supervisor brings it back): it may return before anyone
        # noticed, with requests still outstanding to it and repeated to it.
        name = rng.choice(receivers)
        if sim.hosts[name].state is HostState.RUNNING:
            sim.crash(name)
            sim.call_at(sim.now + rng.uniform(0.05, 1.0), lambda: _restart(sim, name))
    elif roll < 0.92:
        name = rng.choice(owners)
        if sim.hosts[name].state is HostState.RUNNING:
            sim.crash(name)
            result.owner_restarts += 1
            downtime = rng.uniform(0.5, 8.0)
            sim.call_at(sim.now + downtime, lambda: _restart(sim, name))
            # While the owner is down its receivers' answers bounce; one of them restarts
            # too, so the owner's re-sent requests reach a fresh process (the record, not
            # the handler, must answer them).
            other = rng.choice(receivers)
            at = sim.now + rng.uniform(0.0, downtime)
            sim.call_at(at, lambda: _bounce(sim, other))
    else:
        down = [h.name for h in sim.hosts.values() if h.state is HostState.CRASHED]
        if down:
            sim.restart(rng.choice(down))


def _bounce(sim: Simulation, name: str) -> None:
    if sim.hosts[name].state is HostState.RUNNING:
        sim.crash(name)
        sim.restart(name)


def _restart(sim: Simulation, name: str) -> None:
    if sim.hosts[name].state is HostState.CRASHED:
        sim.restart(name)


def run_many(seeds: range) -> list[ChaosResult]:
    """Run several seeds in this process."""
    return [run_chaos(s) for s in seeds]
