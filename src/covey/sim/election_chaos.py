"""Randomized chaos for the election, with invariants checked after every simulator step.

One run = one seed: five nodes (coarse timings, so an hour of virtual time is cheap) go
through partitions, loss, crashes, restarts, host losses, pauses and clock jumps chosen by
the seed. After every event the simulator processes, the host it touched is checked:

* **one leader**: no two up nodes hold a valid lease at the same instant;
* **terms only grow** on every node, across restarts (votes live in a simulated disk);
* **one leader per term**: a term never has two different leaders;
* **a running follower always has an election timer or a vote round** (else it would
  never stand again);
* **fencing**: every :class:`FenceDecision` comes from the node that holds a valid lease
  in that very term, and carries that term;
* **liveness**: once a majority of running nodes has been connected, with little loss
  and nothing changing, for ``settle`` seconds, one of them is leader (or was, within
  one election time: under loss a lease may lapse and be won back).

Two rules: ``expected`` configures ``expected_votes`` on every node (the cluster is built
converged; the chaos starts after ``warmup`` seconds, 0 = during the bootstrap); ``default``
tracks the size (:mod:`covey.core.election.size`): the nodes join one another for real,
and the chaos starts once every node's tracked size is the cluster's (a cluster that is
partitioned before it ever formed is the one case the tracked rule cannot make safe, see
docs/protocol.md).

Only a changed host can start or extend a lease, so checking the host of each step (and
all hosts after a scripted action) catches every instant with two leaders. A failing run
reports its seed; ``run_chaos(seed, hours)`` replays it exactly.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from covey.core import Event, Extension
from covey.core.election.election import Election, ElectionConfig, Role, SizeStore, VoteStore
from covey.core.election.events import FenceDecision
from covey.sim.network import LinkModel
from covey.sim.world import HostState, SimHost, Simulation

_CALL = 4  # the simulator's scripted-action event kind
#: The rules a run can use: ``expected_votes`` configured, or the tracked default.
RULES = ("expected", "default")


@dataclass
class ChaosResult:
    """What one chaos run saw."""

    seed: int
    hours: float
    steps: int = 0
    actions: int = 0
    violations: list[str] = field(default_factory=list)
    terms: int = 0
    fences: int = 0
    panics: int = 0
    liveness_checks: int = 0

    @property
    def ok(self) -> bool:
        """True when every invariant held."""
        return not self.violations


class ChaosRun:
    """One seeded chaos run (see the module docstring)."""

    def __init__(
        self,
        seed: int,
        *,
        nodes: int = 5,
        heartbeat: float = 1.0,
        settle: float = 30.0,
        rule: str = "expected",
        warmup: float = 10.0,
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"rule: one of {RULES}")
        self.seed = seed
        self.rule = rule
        self.nodes = nodes
        self.warmup = warmup
        self.rng = random.Random(seed ^ 0x5EED)
        if rule == "default":
            self.cfg = ElectionConfig.scaled(None, heartbeat, bootstrap=4.0 * heartbeat)
        else:
            self.cfg = ElectionConfig.scaled(nodes, heartbeat)
        self.settle = settle
        #: Longest leaderless gap tolerated in a settled majority: a lapsed lease must be
        #: followed by a new leader within follower_wait + back-off + two vote rounds.
        self.gap = self.cfg.follower_wait + 2 * self.cfg.backoff + 2 * self.cfg.vote_timeout
        self.stores: dict[str, VoteStore] = {}
        self.sizes: dict[str, SizeStore] = {}
        self.sim = Simulation(
            seed,
            extensions=self._extensions,
            link=LinkModel(delay=0.002, jitter=0.003),
            record_events=False,
            probe_interval=2.0,
            probe_timeout=1.0,
            gossip_interval=0.5,
        )
        self.result = ChaosResult(seed, 0.0)
        self.last_term: dict[str, int] = {}
        self.term_leader: dict[int, bytes] = {}
        self.led_at: dict[str, float] = {}  # host -> last step at which it held a lease
        self.sim.listeners.append(self._on_event)
        if rule == "default":
            # Real joins: the tracked size grows with the membership each node sees.
            self.hosts: list[SimHost] = []
            for i in range(nodes):
                seeds = [h.name for h in self.hosts]
                self.hosts.append(self.sim.add_node(f"n{i}", join=seeds))
        else:
            self.hosts = self.sim.bootstrap(nodes)
        self.names = [h.name for h in self.hosts]
        self.groups: list[list[str]] | None = None
        self.loss = 0.0
        self.changed_at = 0.0

    def _extensions(self, host: SimHost) -> list[Extension]:
        store = self.stores.setdefault(host.name, VoteStore())
        size = self.sizes.setdefault(host.name, SizeStore())
        return [Election(self.cfg, store, size)]

    # ------------------------------------------------------------ invariants

    def _fail(self, what: str) -> None:
        if len(self.result.violations) < 20:
            self.result.violations.append(f"seed {self.seed} t={self.sim.now:.3f}: {what}")

    @staticmethod
    def ext(host: SimHost) -> Election:
        e = host.node.capability("election")
        assert isinstance(e, Election)
        return e

    def _check_host(self, host: SimHost) -> None:
        now = self.sim.now
        e = self.ext(host)
        term = e.term
        if term < self.last_term.get(host.name, 0):
            self._fail(f"{host.name}: term went back to {term}")
        self.last_term[host.name] = term
        idle = e.role is not Role.LEADER and e._round is None and e._election_at is None
        if idle and host.up and not host.node.left:
            self._fail(f"{host.name}: a follower with no election timer (never stands)")
        if not host.up or not e.is_leader(now):
            return
        self.led_at[host.name] = now
        owner = self.term_leader.setdefault(term, host.config.node_id)
        if owner != host.config.node_id:
            self._fail(f"term {term} has two leaders")
        for other in self.sim.hosts.values():
            if other is not host and other.up and self.ext(other).is_leader(now):
                self._fail(f"two leaders with valid leases: {host.name} and {other.name}")

    def _check_all(self) -> None:
        for h in self.sim.hosts.values():
            self._check_host(h)

    def _on_event(self, host: SimHost, now: float, event: Event) -> None:
        if isinstance(event, FenceDecision):
            self.result.fences += 1
            e = self.ext(host)
            if not e.is_leader(now) or e.term != event.term:
                self._fail(f"{host.name} fenced {event.node} in term {event.term} unleased")
            owner = self.term_leader.setdefault(event.term, host.config.node_id)
            if owner != host.config.node_id:
                self._fail(f"{host.name} fenced in term {event.term} led by another")
            if event.node_id == host.config.node_id:
                self._fail(f"{host.name} fenced itself")
        elif type(event).__name__ == "PanicEntered":
            self.result.panics += 1

    def run_until(self, t: float) -> None:
        """The simulator's loop, checking the touched host after every step."""
        sim = self.sim
        heap = sim._heap
        while heap and heap[0][0] <= t:
            when, _, kind, args = heapq.heappop(heap)
            if when > sim.now:
                sim.now = when
            sim.steps += 1
            sim._dispatch(kind, args)
            if kind == _CALL:
                self._check_all()
            else:
                self._check_host(args[0])
        sim.now = max(sim.now, t)

    def _check_liveness(self) -> None:
        sim = self.sim
        if self.loss > 0.05 or sim.now - self.changed_at < self.settle:
            return
        running = [h for h in sim.hosts.values() if h.state is HostState.RUNNING]
        groups = self.groups or [self.names]
        for g in groups:
            members = [h for h in running if h.name in g]
            if len(members) >= self.nodes // 2 + 1:
                self.result.liveness_checks += 1
                # A lease may lapse under loss and be won back within one election time.
                recent = sim.now - self.gap
                if not any(self.led_at.get(h.name, -1.0) >= recent for h in members):
                    self._fail(f"majority {[h.name for h in members]} settled but leaderless")

    # ------------------------------------------------------------ chaos

    def _act(self) -> None:
        sim, rng = self.sim, self.rng
        name = rng.choice(self.names)
        host = sim.hosts[name]
        roll = rng.random()
        if roll < 0.18:
            k = rng.randint(1, len(self.names) // 2)
            picked = rng.sample(self.names, k)
            self.groups = [picked, [n for n in self.names if n not in picked]]
            sim.network.partition(*self.groups)
        elif roll < 0.36:
            self.groups = None
            sim.network.heal()
        elif roll < 0.46:
            self.loss = rng.choice((0.0, 0.0, 0.01, 0.05, 0.1, 0.2))
            sim.network.set_loss(self.loss)
        elif roll < 0.58:
            if host.state is HostState.RUNNING:
                sim.crash(name)
        elif roll < 0.64:
            if host.state is HostState.RUNNING:
                sim.host_down(name)
        elif roll < 0.84:
            down = [h for h in sim.hosts.values() if h.state in (HostState.CRASHED, HostState.DOWN)]
            if down:
                sim.restart(rng.choice(down).name)
        elif roll < 0.94:
            if host.state is HostState.RUNNING:
                duration = rng.uniform(0.5, 12.0)
                sim.pause(name, duration)
                self.changed_at = sim.now + duration  # resuming is a change too
                self.result.actions += 1
                return
        else:
            sim.clock_jump(name, rng.choice((-1, 1)) * rng.uniform(5.0, 3600.0))
        self.result.actions += 1
        self.changed_at = sim.now

    def _form(self, bound: float) -> None:
        """Run until every node's tracked size is the cluster's (the cluster formed)."""
        sim = self.sim
        while sim.now < bound:
            self.run_until(sim.now + 1.0)
            if all(self.ext(h).expected == self.nodes for h in sim.hosts.values()):
                self.changed_at = sim.now
                return
        self._fail("the cluster did not form (tracked sizes never reached the cluster's)")

    def run(self, hours: float) -> ChaosResult:
        """Run ``hours`` of virtual time; the result lists any violated invariant."""
        sim, rng = self.sim, self.rng
        end = sim.now + hours * 3600.0
        self.result.hours = hours
        if self.rule == "default":
            self._form(sim.now + 120.0)
        else:
            self.run_until(sim.now + self.warmup)
        while sim.now < end:
            self._act()
            self._check_all()
            segment = rng.choice((2.0, 5.0, 20.0, 60.0, 120.0))
            stop = min(end, sim.now + segment)
            if self.changed_at + self.settle < stop:
                self.run_until(self.changed_at + self.settle)
                self._check_liveness()
            self.run_until(stop)
            self._check_liveness()
        self.result.steps = sim.steps
        self.result.terms = max(self.last_term.values(), default=0)
        return self.result


def run_chaos(
    seed: int,
    hours: float,
    *,
    nodes: int = 5,
    heartbeat: float = 1.0,
    settle: float = 30.0,
    rule: str = "expected",
    warmup: float = 10.0,
) -> ChaosResult:
    """Replay one chaos run exactly (the seed, the rule and the warmup decide everything)."""
    run = ChaosRun(seed, nodes=nodes, heartbeat=heartbeat, settle=settle, rule=rule, warmup=warmup)
    return run.run(hours)


def run_many(
    seeds: range,
    hours: float,
    progress: Callable[[ChaosResult], None] | None = None,
    *,
    rule: str = "expected",
    warmup: float = 10.0,
) -> list[ChaosResult]:
    """Run several seeds in this process."""
    out = []
    for s in seeds:
        r = run_chaos(s, hours, rule=rule, warmup=warmup)
        if progress is not None:
            progress(r)
        out.append(r)
    return out


def run_seed(args: tuple[int, float]) -> ChaosResult:
    """``run_chaos(seed, hours)`` of one (seed, hours) pair: what a worker pool maps (a
    function of this module, so a spawned worker finds it by name)."""
    seed, hours = args
    return run_chaos(seed, hours)
