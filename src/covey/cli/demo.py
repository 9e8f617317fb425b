"""``covey demo``: a local cluster of agent processes that shows discovery, failure and leave.

Everything runs on loopback: each agent binds a free 127.0.0.1 port and multicasts its
beacons only through the loopback interface. The demo starts N agents, shows the member
table as seen by the first one until all see each other, kills one with SIGKILL (failure
detection), stops another with SIGTERM (graceful leave via the EXIT beacon), then stops
the rest by PID and exits. Every wait is bounded.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from covey.cli.render import members_table
from covey.runtime.control.client import ClientError
from covey.runtime.localcluster import AgentProcess, LocalCluster

#: Longest wait for each step of the demo.
STEP_TIMEOUT = 20.0
#: Faster-than-default timings so the whole demo takes seconds.
DEMO_TIMINGS = ("--probe-interval", "0.5", "--probe-timeout", "0.2", "--gossip-interval", "0.1")


def run_demo(nodes: int, console: Console) -> int:
    """Run the demo with ``nodes`` agents; returns the exit status (0 when every step worked)."""
    with LocalCluster(cluster="demo", agent_args=DEMO_TIMINGS) as cluster:
        console.print(
            f"[bold]covey demo[/]: {nodes} agents on 127.0.0.1, multicast group "
            f"239.192.77.1:{cluster.group_port} on the loopback interface only"
        )
        agents = cluster.start(nodes)
        for a in agents:
            console.print(f"  started {a.name} pid {a.pid} on {a.address}")
        observer = agents[0]
        names = [a.name for a in agents]

        def table(title: str) -> Group:
            try:
                rows = observer.members()
            except ClientError as exc:
                return Group(Text(f"({observer.name} unreachable: {exc})"))
            return Group(members_table(rows, title=f"{title} — as seen by {observer.name}"))

        with Live(table("discovering"), console=console, refresh_per_second=8) as live:
            ok = True
            t = _step(live, table, "discovering", lambda: cluster.converged(names))
            ok &= _report(console, t, f"all {nodes} agents see each other alive")

            victim = agents[-1]
            victim.signal(signal.SIGKILL)
            victim.wait(5)
            others = [a for a in agents if a is not victim]
            t = _step(
                live,
                table,
                f"kill -9 {victim.name}",
                lambda: _all_see(others, victim.name, "failed"),
            )
            ok &= _report(console, t, f"{victim.name} killed with SIGKILL, seen failed by all")

            leaver = agents[-2]
            leaver.signal(signal.SIGTERM)
            rest = [a for a in others if a is not leaver]
            t = _step(
                live,
                table,
                f"SIGTERM {leaver.name}",
                lambda: _all_see(rest, leaver.name, "left"),
            )
            ok &= _report(console, t, f"{leaver.name} stopped with SIGTERM, seen left by all")
            ok &= leaver.wait(10) == 0
        console.print("stopping the remaining agents (SIGTERM by PID)")
        cluster.stop_all()
        leftover = [a.pid for a in cluster.agents.values() if a.running()]
        if leftover:
            console.print(f"[red]processes still running: {leftover}[/]")
            return 1
        console.print("[green]demo finished[/]" if ok else "[red]demo finished with failures[/]")
        return 0 if ok else 1


def _all_see(observers: list[AgentProcess], name: str, state: str) -> bool:
    try:
        return all(o.states().get(name) == state for o in observers)
    except ClientError:
        return False


def _step(
    live: Live, table: Callable[[str], Group], title: str, done: Callable[[], bool]
) -> float | None:
    """Refresh the table until ``done()``; seconds it took, or None after the timeout."""
    start = time.monotonic()
    while time.monotonic() - start < STEP_TIMEOUT:
        live.update(table(title))
        if done():
            live.update(table(title))
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def _report(console: Console, seconds: float | None, what: str) -> bool:
    if seconds is None:
        console.print(f"[red]✗[/] {what}: not within {STEP_TIMEOUT:.0f} s")
        return False
    console.print(f"[green]✓[/] {what} ({seconds:.2f} s)")
    return True
