"""Chaos run in the lab: a seeded random schedule of faults over real agents, then invariants.

    .venv/bin/python bench/chaos.py --minutes 10 --seed 1 [--hosts 5] [--keep DIR]

Five hosts (network namespaces on one bridge, see docs/lab.md), one ``covey agent`` each,
``covey monitor --json`` recording every agent's events. Every ``--step`` seconds (random
within bounds) the schedule draws one fault from the seeded RNG and schedules its end:

* a partition into two random groups (lasting 10-40 s),
* loss of 5, 10 or 20 % at one host or at every host (10-60 s),
* kill -9 of an agent (restarted after 5-30 s, same data dir, same node id),
* SIGSTOP of an agent (SIGCONT after 2-30 s),
* a dead network at one host (every packet dropped, back after 5-40 s).

At most two agents are down (killed, paused or cut off) at once. The schedule depends only
on the seed, never on what the agents do, so a seed replays the same faults at the same
times. After ``--minutes`` every fault is healed, every agent restarted or resumed, and the
run waits (bounded) for membership to converge. Then the invariants:

1. **No false failure while healthy**: no agent O reports *member-failed* for M at time t
   if, during the whole window [t - W, t], O and M were both running, unpaused, with their
   networks up, on the same side of any partition, and with at most 10 % loss at either
   end. W is the largest suspicion timeout (suspicion_mult x max_mult x max(1, log10 N)
   probe intervals = 24 s for 5 nodes) plus one probe interval.
2. **Convergence**: within ``--converge-s`` of the last heal, every agent sees all N alive.
3. **One leader at a time** (agents run with ``--expected-votes N``): leader claims polled
   from every reachable agent (``names``, role ``leader`` = valid lease), in time order,
   never go back to a lower term and never show two leaders for one term; and within 60 s
   of the heal every agent names the same leader.
4. **Facts**: at every step a fact ``chaos=<n>`` is set on a random reachable agent; after
   the heal every agent holds the same facts, including each node's last acknowledged
   value (a bounded 60 s settle).
5. **Recording**: no agent's event stream ended while the agent still ran (a gap would
   make invariant 1 vacuous), and at least one leader claim was seen.

Panic events and each agent's final election mode are reported (not judged: panic is
left only by an operator's ``covey recover``, by design).

It prints every action, a verdict line (``PASS``/``FAIL`` with the seed), and writes
``verdict.json`` next to the event logs when ``--keep`` is given. Everything is bounded: the
run ends after ``--minutes`` plus the convergence wait, or after ``--max-actions`` faults.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covey.lab import (
    Faults,
    Lab,
    LabCluster,
    cleanup_run,
    dead_network,
    loss_at,
    partition,
    unavailable_reason,
)
from covey.runtime.control.client import ClientError

#: Core defaults (covey.core.config): the suspicion window of invariant 1 derives from them.
PROBE_INTERVAL = 1.0
SUSPICION_MULT = 4
SUSPICION_MAX_MULT = 6
#: Most loss (percent, at either end) under which a link still counts as healthy.
HEALTHY_LOSS = 10


@dataclass
class Snapshot:
    """What the harness had done at one instant (from ``t`` until the next snapshot)."""

    t: float
    running: frozenset[str]
    paused: frozenset[str]
    netdown: frozenset[str]
    sides: tuple[frozenset[str], frozenset[str]] | None
    loss: dict[str, int]

    def healthy(self, a: str, b: str) -> bool:
        """Both up and connected, with at most HEALTHY_LOSS % loss at either end."""
        for x in (a, b):
            if x not in self.running or x in self.paused or x in self.netdown:
                return False
            if self.loss.get(x, 0) > HEALTHY_LOSS:
                return False
        return self.sides is None or any(a in s and b in s for s in self.sides)


@dataclass
class World:
    """The harness's own record of every fault it injected, as a timeline."""

    hosts: list[str]
    running: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)
    netdown: set[str] = field(default_factory=set)
    sides: tuple[frozenset[str], frozenset[str]] | None = None
    loss: dict[str, int] = field(default_factory=dict)
    timeline: list[Snapshot] = field(default_factory=list)

    def mark(self) -> None:
        self.timeline.append(
            Snapshot(
                time.time(),
                frozenset(self.running),
                frozenset(self.paused),
                frozenset(self.netdown),
                self.sides,
                dict(self.loss),
            )
        )

    def down(self) -> set[str]:
        return (set(self.hosts) - self.running) | self.paused | self.netdown

    def healthy_through(self, a: str, b: str, start: float, end: float) -> bool:
        """True when the pair was healthy at every instant of [start, end]."""
        for i, snap in enumerate(self.timeline):
            until = self.timeline[i + 1].t if i + 1 < len(self.timeline) else math.inf
            if until <= start or snap.t > end:
                continue
            if not snap.healthy(a, b):
                return False
        return bool(self.timeline) and self.timeline[0].t <= start


class Observer:
    """Polls every reachable agent's election names; records every leader claim.

    A claim is (time, node, term) from an agent whose role is ``leader`` (a leader with a
    valid lease, see covey.core.election.election). Invariant 3 holds when, ordered by time, claims
    never go back to a lower term and one term never has two leaders: a leader still
    claiming after a newer term's leader was seen is two leaders at once.
    """

    def __init__(self, cluster: LabCluster) -> None:
        self.cluster = cluster
        self.claims: list[tuple[float, str, int]] = []
        self.polls = 0

    def poll(self) -> None:
        for agent in self.cluster.agents.values():
            if not agent.running() or agent.paused:
                continue
            try:
                names = agent.client(timeout=0.5).request("names")
            except ClientError:
                continue
            self.polls += 1
            if isinstance(names, dict) and names.get("role") == "leader":
                self.claims.append((time.time(), agent.name, int(names["term"])))

    def violations(self) -> list[str]:
        bad = []
        best: dict[int, str] = {}
        top = (-1, "")
        for _t, node, term in sorted(self.claims):
            if term < top[0]:
                bad.append(f"{node} claimed term {term} after {top[1]} led term {top[0]}")
            if best.setdefault(term, node) != node:
                bad.append(f"two leaders in term {term}: {best[term]} and {node}")
            top = max(top, (term, node))
        return bad


class Chaos:
    """Drives the schedule against a lab cluster."""

    def __init__(self, lab: Lab, cluster: LabCluster, seed: int) -> None:
        self.lab = lab
        self.cluster = cluster
        self.faults = Faults(lab)
        self.rng = random.Random(seed)
        self.world = World([h.name for h in lab.hosts])
        self.pending: list[tuple[float, str, str]] = []  # (due, action, host or label)
        self.actions = 0
        self.t0 = time.time()
        self.observer = Observer(cluster)
        self.acked: dict[str, str] = {}  # node -> last fact value its agent acknowledged
        self.fact_no = 0

    def log(self, msg: str) -> None:
        print(f"[{time.time() - self.t0:7.1f}s] {msg}", flush=True)

    def last_change_before(self, t: float) -> float:
        """When the harness last changed a fault at or before ``t``."""
        return max((s.t for s in self.world.timeline if s.t <= t), default=self.t0)

    def later(self, lo: float, hi: float, action: str, target: str) -> None:
        self.pending.append((time.time() + self.rng.uniform(lo, hi), action, target))

    # ------------------------------------------------------------ faults

    def publish_fact(self) -> None:
        """Set fact ``chaos=<n>`` on a random reachable agent; remember it once acked."""
        up = sorted(set(self.world.hosts) - self.world.down())
        if not up:
            return
        node = self.rng.choice(up)
        self.fact_no += 1
        value = str(self.fact_no)
        try:
            self.cluster.agents[node].client(timeout=2).request(
                "fact_set", key="chaos", value=value
            )
        except ClientError:
            return
        self.acked[node] = value

    def step(self) -> None:
        """Draw and inject one fault (and publish one fact)."""
        rng = self.rng
        self.publish_fact()
        kind = rng.choice(["partition", "loss", "kill", "pause", "netdown"])
        up = sorted(set(self.world.hosts) - self.world.down())
        can_take_down = len(self.world.down()) < 2 and up
        self.actions += 1
        if kind == "partition" and self.world.sides is None:
            names = list(self.world.hosts)
            rng.shuffle(names)
            cut = rng.choice([1, 2])
            a, b = frozenset(names[:cut]), frozenset(names[cut:])
            hosts = {h.name: h for h in self.lab.hosts}
            self.faults.set("partition", partition([hosts[n] for n in a], [hosts[n] for n in b]))
            self.world.sides = (a, b)
            self.log(f"partition {sorted(a)} | {sorted(b)}")
            self.later(10, 40, "heal-partition", "")
        elif kind == "loss" and not self.world.loss:
            pct = rng.choice([5, 10, 20])
            targets = self.world.hosts if rng.random() < 0.5 else [rng.choice(self.world.hosts)]
            rules = [r for n in targets for r in loss_at(self.lab.host(n), pct)]
            self.faults.set("loss", rules)
            self.world.loss = dict.fromkeys(targets, pct)
            self.log(f"loss {pct} % at {targets}")
            self.later(10, 60, "heal-loss", "")
        elif kind == "kill" and can_take_down:
            n = rng.choice(up)
            self.cluster.agents[n].kill()
            self.world.running.discard(n)
            self.log(f"kill -9 {n}")
            self.later(5, 30, "restart", n)
        elif kind == "pause" and can_take_down:
            n = rng.choice(up)
            self.cluster.agents[n].pause()
            self.world.paused.add(n)
            self.log(f"SIGSTOP {n}")
            self.later(2, 30, "resume", n)
        elif kind == "netdown" and can_take_down:
            n = rng.choice(up)
            self.faults.set(f"netdown-{n}", dead_network(self.lab.host(n)))
            self.world.netdown.add(n)
            self.log(f"network of {n} dead")
            self.later(5, 40, "netup", n)
        else:
            self.actions -= 1
            return
        self.world.mark()

    def undo(self, action: str, target: str) -> None:
        """Apply one scheduled end of a fault."""
        if action == "heal-partition":
            self.faults.remove("partition")
            self.world.sides = None
        elif action == "heal-loss":
            self.faults.remove("loss")
            self.world.loss = {}
        elif action == "restart":
            agent = self.cluster.agents[target]
            agent.start()
            self.cluster.wait_ready(agent, 60)
            # Counted as running from the moment it answers.
            self.world.running.add(target)
        elif action == "resume":
            self.cluster.agents[target].resume()
            self.world.paused.discard(target)
        elif action == "netup":
            self.faults.remove(f"netdown-{target}")
            self.world.netdown.discard(target)
        self.log(f"{action} {target}".strip())
        self.world.mark()

    def run(self, seconds: float, step: tuple[float, float], max_actions: int) -> None:
        end = time.time() + seconds
        next_step = time.time() + self.rng.uniform(*step)
        while time.time() < end and self.actions < max_actions:
            now = time.time()
            self.pending.sort()
            if self.pending and self.pending[0][0] <= now:
                _, action, target = self.pending.pop(0)
                self.undo(action, target)
                continue
            if now >= next_step:
                self.step()
                next_step = now + self.rng.uniform(*step)
                continue
            wake = min([next_step, end, *(p[0] for p in self.pending)])
            self.observer.poll()
            time.sleep(max(0.0, min(0.5, wake - time.time())))

    def heal_all(self) -> None:
        """End every fault now, in a fixed order."""
        self.pending.sort()
        for _, action, target in list(self.pending):
            self.undo(action, target)
        self.pending.clear()
        self.faults.heal()
        self.log("everything healed")


def check_false_failures(chaos: Chaos, window: float) -> list[dict[str, Any]]:
    """Invariant 1: every member-failed event about a pair that was healthy for ``window``."""
    rec = chaos.cluster.recorder
    assert rec is not None
    bad = []
    for observer in chaos.world.hosts:
        for e in rec.member_events(observer, "member-failed"):
            subject = e["member"]["name"]
            t = float(e["time"])
            if chaos.world.healthy_through(observer, subject, t - window, t):
                back = [
                    float(r["time"]) - t
                    for kind in ("member-recovered", "member-joined")
                    for r in rec.member_events(observer, kind, subject)
                    if float(r["time"]) >= t
                ]
                bad.append(
                    {
                        "observer": observer,
                        "subject": subject,
                        "at": round(t - chaos.t0, 1),
                        "incarnation": e["member"].get("incarnation"),
                        "alive_again_after_s": round(min(back), 3) if back else None,
                        "last_fault_change_s": round(chaos.last_change_before(t) - chaos.t0, 1),
                    }
                )
    return bad


def check_facts(chaos: Chaos) -> list[str]:
    """Invariant 4: every agent holds the same facts, including each last acked value."""
    views = {}
    for name, agent in chaos.cluster.agents.items():
        try:
            views[name] = agent.client().request("facts")
        except ClientError as exc:
            return [f"{name} does not answer facts: {exc}"]
    bad = []
    first = next(iter(views.values()))
    for name, view in views.items():
        if view != first:
            bad.append(f"{name} sees facts {view} but h1 sees {first}")
        for node, value in chaos.acked.items():
            got = view.get(node, {}).get("chaos")
            if got != value:
                bad.append(f"{name} has chaos={got!r} of {node}, acknowledged {value!r}")
    return bad


def count(chaos: Chaos, kind: str) -> int:
    rec = chaos.cluster.recorder
    assert rec is not None
    return sum(len(rec.member_events(o, kind)) for o in chaos.world.hosts)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hosts", type=int, default=5)
    p.add_argument("--step-min", type=float, default=8.0)
    p.add_argument("--step-max", type=float, default=20.0)
    p.add_argument("--max-actions", type=int, default=500)
    p.add_argument("--converge-s", type=float, default=120.0)
    p.add_argument("--keep", type=Path, help="keep logs, event streams and verdict.json here")
    args = p.parse_args(argv)

    reason = unavailable_reason()
    if reason is not None:
        print(f"chaos: cannot run: {reason}", file=sys.stderr)
        return 2
    # SIGTERM ends the run through the same teardown as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="cvychaos-"))
    window = (
        SUSPICION_MULT * SUSPICION_MAX_MULT * max(1.0, math.log10(args.hosts)) * PROBE_INTERVAL
        + PROBE_INTERVAL
    )
    lab = Lab(args.hosts)
    cluster = LabCluster(
        lab,
        workdir=workdir,
        record=True,
        name="chaos",
        agent_args=["--expected-votes", str(args.hosts)],
    )
    try:
        cluster.start_all()
        names = [h.name for h in lab.hosts]
        deadline = time.monotonic() + 60
        while not cluster.converged(names):
            if time.monotonic() > deadline:
                raise TimeoutError("the cluster did not form")
            time.sleep(0.2)
        chaos = Chaos(lab, cluster, args.seed)
        chaos.world.running = set(names)
        chaos.world.mark()
        chaos.log(f"cluster of {args.hosts} formed; chaos for {args.minutes} min, seed {args.seed}")
        chaos.run(args.minutes * 60, (args.step_min, args.step_max), args.max_actions)
        chaos.heal_all()
        t_heal = time.monotonic()
        converged_after = None
        while time.monotonic() - t_heal < args.converge_s:
            chaos.observer.poll()
            if cluster.converged(names):
                converged_after = time.monotonic() - t_heal
                break
            time.sleep(0.5)
        # Facts spread by gossip and a digest pull: give them a bounded while to settle.
        fact_problems = check_facts(chaos)
        settle = time.monotonic() + 60
        while fact_problems and time.monotonic() < settle:
            chaos.observer.poll()
            time.sleep(1.0)
            fact_problems = check_facts(chaos)
        # After the heal: one leader that every agent names (bounded wait), and each mode.
        final_names: dict[str, Any] = {}
        agreed_after = None
        t_agree = time.monotonic()
        while time.monotonic() - t_agree < 60:
            final_names = {}
            for n, a in cluster.agents.items():
                try:
                    final_names[n] = a.client(timeout=2).request("names")
                except ClientError:
                    final_names[n] = None
            leaders = {v["leader"] if v else None for v in final_names.values()}
            if len(leaders) == 1 and None not in leaders:
                agreed_after = time.monotonic() - t_agree
                break
            time.sleep(0.5)
        leader_problems = chaos.observer.violations()
        if agreed_after is None:
            leader_problems.append(f"no single leader 60 s after the heal: {final_names}")
        false_failures = check_false_failures(chaos, window)
        rec = cluster.recorder
        assert rec is not None
        verdict = {
            "seed": args.seed,
            "minutes": args.minutes,
            "hosts": args.hosts,
            "actions": chaos.actions,
            "window_s": window,
            "false_failures": false_failures,
            "converged_after_s": converged_after,
            "failed_events": count(chaos, "member-failed"),
            "suspect_events": count(chaos, "member-suspect"),
            "left_events": count(chaos, "member-left"),
            "recording_gaps": rec.gaps,
            "leader_claims": len(chaos.observer.claims),
            "leader_terms": len({c[2] for c in chaos.observer.claims}),
            "names_polls": chaos.observer.polls,
            "leader_violations": leader_problems,
            "leader_agreed_after_heal_s": agreed_after,
            "final_modes": {n: (v or {}).get("mode") for n, v in final_names.items()},
            "panic_events": sum(
                1 for evs in rec.events.values() for e in evs if e.get("event") == "panic"
            ),
            "facts_acked": chaos.fact_no and len(chaos.acked),
            "fact_problems": fact_problems,
        }
        ok = (
            not false_failures
            and converged_after is not None
            and not rec.gaps
            and not leader_problems
            and not fact_problems
            and bool(chaos.observer.claims)
        )
        verdict["verdict"] = "PASS" if ok else "FAIL"
        for ff in false_failures:
            chaos.log(
                f"FALSE FAILURE: {ff['observer']} marked {ff['subject']} failed at {ff['at']:.1f}s "
                f"(alive again after {ff['alive_again_after_s']} s; last fault change at "
                f"{ff['last_fault_change_s']} s)"
            )
        print(json.dumps(verdict, indent=2))
        conv = "never" if converged_after is None else f"{converged_after:.1f} s"
        print(
            f"chaos {verdict['verdict']}: seed {args.seed}, {args.minutes} min, "
            f"{chaos.actions} faults, {len(false_failures)} false failures, "
            f"{len(leader_problems)} leader violations ({verdict['leader_terms']} terms), "
            f"{len(fact_problems)} fact problems, "
            f"({verdict['failed_events']} failed / {verdict['suspect_events']} suspect events "
            f"in all), converged {conv} after the last heal"
        )
        if args.keep:
            (workdir / "verdict.json").write_text(json.dumps(verdict, indent=2) + "\n")
        return 0 if ok else 1
    finally:
        cluster.close()
        lab.close()
        cleanup_run()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
