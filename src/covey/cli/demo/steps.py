"""The demo's steps, in order: each says what it shows, does it, and measures it.

A step is a function of the :class:`~covey.cli.demo.stage.Stage` that returns its
figures (a dict, shown after the step and in ``--json``) or raises
:class:`~covey.cli.demo.stage.StepFailed`. ``needs`` names the steps that must have run
first (``covey demo --only STEP`` runs those before it, as setup).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from covey.cli.demo.stage import NEW_VERSION, OLD_VERSION, Stage, StepFailed, wait_for
from covey.runtime.localcluster import AgentProcess

Figures = dict[str, Any]


@dataclass(frozen=True)
class Step:
    """One step of the demo.

    Attributes:
        name: what ``--only`` takes.
        title: one line said before the step runs.
        run: does it; returns the figures.
        needs: steps run first when this one runs alone.
    """

    name: str
    title: str
    run: Callable[[Stage], Figures]
    needs: tuple[str, ...] = ()


def _elapsed(start: float) -> float:
    return round(time.monotonic() - start, 2)


def collector(stage: Stage) -> Figures:
    start = time.monotonic()
    addr = stage.start_collector()
    took = _elapsed(start)
    return {
        "address": addr,
        "seconds": took,
        "summary": f"addr=$(covey collector): {addr}, up in {took:.2f} s",
    }


def discovery(stage: Stage) -> Figures:
    start = time.monotonic()
    agents = stage.start_agents()
    names = [a.name for a in agents]
    wait_for(lambda: stage.cluster.converged(names), f"all {len(names)} agents alive everywhere")
    took = _elapsed(start)
    return {
        "agents": len(agents),
        "seconds": took,
        "summary": f"{len(agents)} agents launched; all see all alive after {took:.2f} s",
    }


def _agreed_leader(observers: list[AgentProcess], stage: Stage) -> dict[str, Any] | None:
    """The names answer when every observer sees the same stable leader, else None."""
    answers = [stage.request(o, "names") for o in observers]
    leaders = {a["leader"] for a in answers}
    if len(leaders) == 1 and None not in leaders and all(a["stable"] for a in answers):
        return dict(answers[0])
    return None


def leader(stage: Stage) -> Figures:
    start = time.monotonic()
    agreed = wait_for(lambda: _agreed_leader(stage.live(), stage), "one stable leader")
    took = _elapsed(start)
    return {
        "leader": agreed["leader"],
        "term": agreed["term"],
        "seconds": took,
        "summary": f"leader {agreed['leader']} (term {agreed['term']}), "
        f"stable on every node after {took:.2f} s",
    }


def failover(stage: Stage) -> Figures:
    old = wait_for(lambda: _agreed_leader(stage.live(), stage), "one stable leader")["leader"]
    victim = stage.by_name(old)
    fenced_before = len(stage.fences())
    victim.signal(signal.SIGKILL)
    start = time.monotonic()
    victim.wait(5.0)
    rest = stage.live()

    def new_leader() -> dict[str, Any] | None:
        agreed = _agreed_leader(rest, stage)
        return agreed if agreed is not None and agreed["leader"] != old else None

    agreed = wait_for(new_leader, "a new leader after the kill")
    took = _elapsed(start)
    lines = wait_for(lambda: stage.fences()[fenced_before:], f"{old} fenced")
    wait_for(lambda: stage.all_see(rest, {old: "failed"}), f"{old} failed everywhere")
    fenced_by = {line.split()[0] for line in lines}
    if fenced_by != {agreed["leader"]} or any(old not in line for line in lines):
        raise StepFailed(f"fencing: expected only {agreed['leader']} to fence {old}: {lines}")
    return {
        "killed": old,
        "new_leader": agreed["leader"],
        "term": agreed["term"],
        "failover_seconds": took,
        "fenced": old,
        "fenced_by": sorted(fenced_by),
        "fence_seconds": _elapsed(start),
        "summary": f"{old} killed; {agreed['leader']} leads after {took:.2f} s, alone fenced {old}",
    }


def state(stage: Stage) -> Figures:
    live = stage.live()
    first = live[0]
    start = time.monotonic()
    stage.request(first, "fact_set", key="color", value="blue")

    def seen_everywhere() -> bool:
        return all(
            stage.request(o, "facts").get(first.name, {}).get("color") == "blue" for o in live
        )

    wait_for(seen_everywhere, "the fact on every node")
    fact_seconds = _elapsed(start)

    def lowest_is(version: str) -> bool:
        return all(stage.request(o, "versions")["lowest"] == version for o in live)

    wait_for(lambda: lowest_is(OLD_VERSION), f"lowest version {OLD_VERSION}")
    last, others = live[-1], live[:-1]
    for a in [*others, *(a for a in stage.agents if not a.running())]:
        stage.set_version(a, NEW_VERSION)  # a node that is down is upgraded too
    wait_for(
        lambda: all(stage.request(o, "versions")["local"] == NEW_VERSION for o in others),
        f"{len(others)} nodes at {NEW_VERSION}",
    )
    lowest_before = stage.request(first, "versions")["lowest"]
    start = time.monotonic()
    stage.set_version(last, NEW_VERSION)
    wait_for(lambda: lowest_is(NEW_VERSION), f"lowest version {NEW_VERSION}")
    return {
        "fact": f"color=blue from {first.name}",
        "fact_seconds": fact_seconds,
        "lowest_before": lowest_before,
        "lowest_after": NEW_VERSION,
        "upgraded_last": last.name,
        "lowest_seconds": _elapsed(start),
        "summary": f"fact on all in {fact_seconds:.2f} s; lowest {lowest_before}, "
        f"{NEW_VERSION} once {last.name} upgraded",
    }


def _ended(stage: Stage, owner: AgentProcess, item: str) -> dict[str, Any] | None:
    d: dict[str, Any] = stage.request(owner, "deliver_show", id=item)
    return d if d["state"] in ("complete", "failed", "cancelled") else None


def _receipts(stage: Stage, d: dict[str, Any], owner: AgentProcess) -> list[list[str]]:
    names = {m["id"]: m["name"] for m in owner.members()}
    return [sorted(names.get(r["node"], r["node"]) for r in s["receipts"]) for s in d["stages"]]


def deliveries(stage: Stage) -> Figures:
    live = stage.live()
    # Neither the owner nor the paused receiver is the leader: pausing the leader would
    # start an election, a story of its own (the failover step tells it).
    chief = _agreed_leader(live, stage)
    followers = [a for a in live if chief is None or a.name != chief["leader"]]
    owner, paused = followers[0], followers[-1]
    start = time.monotonic()
    item = stage.request(owner, "deliver_create", payload="hello", stages=["2:any", "1!:any"])
    done = wait_for(lambda: _ended(stage, owner, item["id"]), "the two-stage delivery")
    if done["state"] != "complete":
        raise StepFailed(f"the two-stage delivery ended {done['state']}")
    two_receipts = _receipts(stage, done, owner)
    two_seconds = _elapsed(start)
    two_stage = {"seconds": two_seconds, "receipts": two_receipts}

    # A paused receiver (SIGSTOP: sockets open, nothing answers) among every other live
    # member; a node that joins after the delivery was made takes its place.
    others = len(live) - 1
    paused.signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        item = stage.request(owner, "deliver_create", payload="again", stages=[f"{others}:any@1s"])
        down = [a for a in stage.agents if not a.running()]
        joiner = stage.restart(down[0]) if down else stage.restart_new()
        done = wait_for(lambda: _ended(stage, owner, item["id"]), "the delivery with a pause")
    finally:
        paused.signal(signal.SIGCONT)
    if done["state"] != "complete":
        raise StepFailed(f"the delivery with a paused receiver ended {done['state']}")
    got = _receipts(stage, done, owner)[0]
    if paused.name in got or joiner.name not in got:
        raise StepFailed(f"{paused.name} should have been replaced by {joiner.name}: {got}")
    stage.cluster.wait_ready(joiner)
    names = [a.name for a in stage.agents]
    wait_for(lambda: stage.cluster.converged(names), "every agent alive again")
    return {
        "two_stage": two_stage,
        "paused": paused.name,
        "replaced_by": joiner.name,
        "replaced_seconds": _elapsed(start),
        "receipts": got,
        "summary": f"2 stages in {two_seconds:.2f} s; paused {paused.name} replaced "
        f"by {joiner.name}, done in {_elapsed(start):.2f} s",
    }


def leave(stage: Stage) -> Figures:
    names = wait_for(lambda: _agreed_leader(stage.live(), stage), "one stable leader")
    leaver = next(a for a in reversed(stage.live()) if a.name != names["leader"])
    start = time.monotonic()
    leaver.signal(signal.SIGTERM)
    rest = [a for a in stage.live() if a is not leaver]
    wait_for(lambda: stage.all_see(rest, {leaver.name: "left"}), f"{leaver.name} left everywhere")
    took = _elapsed(start)
    code = leaver.wait(10.0)
    if code != 0:
        raise StepFailed(f"{leaver.name} exited with status {code}")
    return {
        "left": leaver.name,
        "seconds": took,
        "exit_status": code,
        "summary": f"{leaver.name} seen left by all in {took:.2f} s, exit status {code}",
    }


def timeline(stage: Stage) -> Figures:
    out = stage.ask_collector("timeline", "--json")
    if out.returncode != 0:
        raise StepFailed(f"covey collector timeline: {out.stderr.strip()}")
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    if not records:
        raise StepFailed("the collector's timeline is empty")
    ops: dict[str, int] = {}
    for r in records:
        ops[r["op"]] = ops.get(r["op"], 0) + 1
    shown = _highlights(records)
    stage.stop_collector()
    nodes = len({r["node"] for r in records})
    return {
        "records": len(records),
        "nodes": nodes,
        "ops": dict(sorted(ops.items())),
        "highlights": shown,
        "stopped": True,
        "summary": f"{len(records)} records from {nodes} nodes, merged; collector stopped",
    }


def _highlights(records: list[dict[str, Any]]) -> list[str]:
    """The lines worth showing: elections won, fencing, and the first sighting of each
    failure and leave (every other node's sighting of it follows within milliseconds)."""
    t0 = records[0]["at"] + records[0]["offset"]
    seen: set[tuple[str, str]] = set()
    out = []
    for r in records:
        op, subject = r["op"], r["subject"] or ""
        if op in ("failed", "left"):
            if (op, subject) in seen:
                continue
            seen.add((op, subject))
            what = f"{subject} {op} (first seen by {r['node']})"
        elif op == "leader_start":
            what = f"{r['node']} elected leader, term {r['n']}"
        elif op == "fence" and r["detail"].startswith("fence "):
            what = f"{r['node']} fences {r['detail'].removeprefix('fence ')}"
        elif op == "delivery_end":
            words = (r["detail"] or "delivery ? ended").split()
            ident = words[1][:8] if len(words) > 1 else "?"
            what = f"{r['node']}: delivery {ident} {' '.join(words[2:])}"
        else:
            continue
        out.append(f"+{r['at'] + r['offset'] - t0:5.2f} s  {what}"[:74])
    return out[-12:]


_C, _D, _L = ("collector",), ("discovery",), ("leader",)
STEPS: tuple[Step, ...] = (
    Step("collector", "A collector outside the cluster; agents send it traces.", collector),
    Step("discovery", "Agents start on 127.0.0.1, find each other by beacons.", discovery, _C),
    Step("leader", "They elect one leader: only it fences and fails over.", leader, _D),
    Step("failover", "kill -9 of the leader: a new one takes over, fences it.", failover, _L),
    Step("state", "A fact and versions, shared; the lowest gates features.", state, _D),
    Step("deliveries", "Receipts collected stage by stage; the silent replaced.", deliveries, _D),
    Step("leave", "SIGTERM: a graceful leave, seen at once by every node.", leave, _L),
    Step("timeline", "The collector's merged timeline of it all; then it stops.", timeline, _D),
)


def plan(only: str | None) -> list[tuple[Step, bool]]:
    """The steps to run, each with True when it runs only as setup for ``only``."""
    by_name = {s.name: s for s in STEPS}
    if only is None:
        return [(s, False) for s in STEPS]
    wanted: list[str] = []

    def add(name: str) -> None:
        for need in by_name[name].needs:
            add(need)
        if name not in wanted:
            wanted.append(name)

    add(only)
    return [(by_name[n], n != only) for n in wanted]
