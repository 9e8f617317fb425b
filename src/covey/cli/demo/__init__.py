"""``covey demo``: the whole of covey on loopback, step by step, in under a minute.

A collector starts first, then N agent processes that send it their traces; they find
each other, elect a leader, survive its kill -9 (the new leader alone fences it), share
a fact and versions (the lowest rising when the last node is upgraded), complete a
two-stage delivery and one whose paused receiver is replaced, see a graceful leave, and
the collector shows the merged timeline before it stops. Each step says what it shows
before it runs and what it measured after (:mod:`covey.cli.demo.steps`).

Everything stays on 127.0.0.1 (multicast on the loopback interface only); every process
the demo starts is stopped by its PID and its directory removed, whatever happened.
Output fits 80 columns, in colour only on a terminal; ``--json`` prints one document
for scripts and tests.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console

from covey.cli.demo.stage import Stage, StepFailed
from covey.cli.demo.steps import STEPS, plan

#: The widest line the demo prints.
WIDTH = 80


def list_steps(console: Console) -> None:
    """``covey demo --steps``: each step's name and what it shows."""
    for s in STEPS:
        console.print(f"{s.name:<11} {s.title}", markup=False, highlight=False)


def run_demo(
    nodes: int, console: Console, *, only: str | None = None, as_json: bool = False
) -> int:
    """Run the demo (``only``: one step and what it needs); the exit status: 0 when every
    step worked and nothing was left running, else 1."""
    stage = Stage(nodes)
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    ok = True
    say = (lambda *a, **k: None) if as_json else console.print
    say(
        f"[bold]covey demo[/]: {nodes} agents on 127.0.0.1, multicast on loopback only",
        highlight=False,
    )
    try:
        for step, setup in plan(only):
            mark = " [dim](setup)[/]" if setup else ""
            say(f"[bold cyan]{step.name}[/] {step.title}{mark}", highlight=False)
            t0 = time.monotonic()
            try:
                figures = step.run(stage)
            except StepFailed as exc:
                ok = False
                results.append({"step": step.name, "ok": False, "error": str(exc)})
                say(f"  [red]✗ {exc}[/]", markup=True, highlight=False)
                break
            took = round(time.monotonic() - t0, 2)
            results.append(
                {"step": step.name, "ok": True, "setup": setup, "seconds": took, **figures}
            )
            say(f"  [green]✓[/] {figures['summary']}", highlight=False)
            for line in figures.get("highlights", ()):
                say(f"    {line}", markup=False, highlight=False)
    finally:
        leftover = stage.close()
    if leftover:
        ok = False
        say(f"[red]processes still running: {leftover}[/]")
    total = round(time.monotonic() - started, 1)
    if as_json:
        doc = {
            "ok": ok,
            "seconds": total,
            "nodes": nodes,
            "steps": results,
            "pids": stage.pids(),
            "left": leftover,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        verdict = "[green]demo finished[/]" if ok else "[red]demo finished with failures[/]"
        tail = "" if leftover else "; nothing left running"
        say(f"{verdict} in {total:.1f} s{tail}", highlight=False)
    return 0 if ok else 1


__all__ = ["STEPS", "WIDTH", "list_steps", "run_demo"]
