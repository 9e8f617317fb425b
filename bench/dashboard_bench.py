"""The dashboard with many members: how long the page takes to show them, and a change.

Starts ``--members`` real agents on loopback (``LocalCluster``; the first serves HTTP),
waits until the first sees them all alive, then opens ``/ui/`` in headless Chromium and
measures, in the page:

* *first render*: from the start of navigation to the last of the N rows in the table,
  and to the frame after it (two ``requestAnimationFrame``: what the eye gets);
* *table*: the time the members table's first update (every row made) takes, and the
  mean and largest of the later ones (``covey.view.renders``: JavaScript only, layout
  excluded);
* *filter*: one keystroke in the filter box over N rows;
* *a change reflected*: for ``--leaves`` agents that leave gracefully (SIGTERM: the EXIT
  beacon tells everyone at once) and ``--kills`` agents killed (SIGKILL: found by the
  failure detector), the time from the agent's own ``member-left``/``member-failed``
  event (its wall clock, from ``/v1/events``) to the page's row changing (a
  ``MutationObserver``, ``Date.now()``; same machine, same clock). The detection
  itself (signal to event) is printed beside it.

    .venv/bin/python bench/dashboard_bench.py --members 100

Bounded: every wait has a deadline (``--start-timeout`` for the cluster), every agent is
stopped by its PID when the run ends, however it ends. Prints the figures; ``--json``
writes them too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.runtime.browser

from covey.runtime.localcluster import AgentProcess, LocalCluster, free_port, wait_until
from tests.runtime.browser import chromium, missing

# Installed before each change: records when the named row's state becomes ``want``.
WATCH = """
const [name, want] = arguments;
window.benchSeen = null;
const row = () => document.querySelector(`tr[data-member='${name}']`);
const observer = new MutationObserver(() => {
  if (window.benchSeen === null && row() && row().dataset.state === want) {
    window.benchSeen = Date.now();
    observer.disconnect();
  }
});
observer.observe(document.getElementById('member-rows'), {
  subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'],
});
"""
# Installed before the page loads: the time the table first holds ``n`` rows.
FIRST = """
window.benchRows = null; window.benchFrame = null;
const want = %d;
const check = () => {
  const body = document.getElementById('member-rows');
  if (!body || window.benchRows !== null) return;
  if (body.childElementCount >= want) {
    window.benchRows = performance.now();
    const painted = () => { window.benchFrame = performance.now(); };
    requestAnimationFrame(() => requestAnimationFrame(painted));
  }
};
new MutationObserver(check).observe(document, {subtree: true, childList: true});
"""


class EventLog:
    """Reads the agent's /v1/events in a thread: (kind, member name) -> wall time."""

    def __init__(self, url: str, timeout: float) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self.cond = threading.Condition()
        self._url = f"{url}/v1/events?timeout={int(timeout)}s"
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with urllib.request.urlopen(self._url, timeout=60) as stream:
            for raw in stream:
                line = raw.decode(errors="replace").strip()
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                member = event.get("member")
                if member:
                    with self.cond:
                        self.seen.setdefault((event["event"], member["name"]), event["time"])
                        self.cond.notify_all()

    def wait(self, kind: str, name: str, timeout: float) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: (kind, name) in self.seen, timeout):
                raise TimeoutError(f"no {kind} for {name} within {timeout} s")
            return self.seen[(kind, name)]


def alive_count(url: str) -> int:
    with urllib.request.urlopen(f"{url}/v1/members", timeout=10) as answer:
        return sum(1 for m in json.load(answer) if m["state"] == "alive")


def ready_or_respawn(
    cluster: LocalCluster, agent: AgentProcess, extra: list[str], timeout: float
) -> AgentProcess:
    """Wait for ``agent``; start it again on another port if its port was taken meanwhile
    (free_port's choice is only free when made, and other programs share loopback)."""
    for _ in range(3):
        try:
            cluster.wait_ready(agent, timeout)
            return agent
        except RuntimeError:
            if "already in use" not in agent.log_tail():
                raise
            print(f"  {agent.name}: its port was taken, starting it again", flush=True)
            agent = cluster.spawn(agent.name, extra=extra, wait=False)
    raise RuntimeError(f"{agent.name}: no free port after three tries")


def start(
    cluster: LocalCluster, n: int, http: int, timeout: float, batch: int
) -> list[AgentProcess]:
    """N agents, the first serving HTTP, started ``batch`` at a time (so that a start
    storm on two cores does not make the early ones suspect each other); returns once
    the first sees them all alive."""
    t0 = time.monotonic()
    agents: list[AgentProcess] = []
    for first in range(0, n, batch):
        group = []
        for i in range(first, min(n, first + batch)):
            extra = ["--http", f"127.0.0.1:{http}"] if i == 0 else []
            group.append((cluster.spawn(f"m{i:03d}", extra=extra, wait=False), extra))
        agents += [ready_or_respawn(cluster, a, extra, timeout) for a, extra in group]
    print(f"{n} agents answering after {time.monotonic() - t0:.1f} s", flush=True)
    url = f"http://127.0.0.1:{http}"
    wait_until(lambda: alive_count(url) == n, timeout, interval=0.5, what=f"{n} alive")
    print(f"m000 sees {n} alive after {time.monotonic() - t0:.1f} s", flush=True)
    return agents


def change(driver: Any, log: EventLog, agent: AgentProcess, how: int) -> dict[str, float]:
    """Signal ``agent``; seconds from signal to its event and from event to the page."""
    kind, want = ("member-left", "left") if how == signal.SIGTERM else ("member-failed", "failed")
    driver.execute_script(WATCH, agent.name, want)
    sent = time.time()
    agent.signal(how)
    at = log.wait(kind, agent.name, 90.0)
    wait_until(lambda: driver.execute_script("return window.benchSeen;"), 30.0, what="the page")
    shown = driver.execute_script("return window.benchSeen;") / 1000.0
    return {"detect_s": at - sent, "page_ms": (shown - at) * 1000.0}


def run(args: argparse.Namespace) -> dict[str, Any]:
    http = free_port()
    url = f"http://127.0.0.1:{http}"
    with LocalCluster(cluster="dash") as cluster:
        agents = start(cluster, args.members, http, args.start_timeout, args.batch)
        log = EventLog(url, timeout=600)
        with chromium() as driver:
            driver.execute_cdp_cmd(
                "Page.addScriptToEvaluateOnNewDocument", {"source": FIRST % args.members}
            )
            driver.get(f"{url}/ui/")
            wait_until(
                lambda: driver.execute_script("return window.benchFrame;"),
                60.0,
                what="the first render",
            )
            first = driver.execute_script("return [window.benchRows, window.benchFrame];")
            keystroke = driver.execute_script(
                "const f = document.getElementById('filter'); const t = performance.now();"
                "f.value = 'm0'; f.dispatchEvent(new Event('input'));"
                "const d = performance.now() - t; f.value = '';"
                "f.dispatchEvent(new Event('input')); return d;"
            )
            changes = []
            victims = agents[1:][::-1]
            for how in [signal.SIGTERM] * args.leaves + [signal.SIGKILL] * args.kills:
                victim = victims.pop(0)
                sample = change(driver, log, victim, how)
                sample["how"] = "leave" if how == signal.SIGTERM else "kill"
                changes.append(sample)
                print(
                    f"  {sample['how']:5} {victim.name}: event {sample['detect_s']:.2f} s "
                    f"after the signal, page {sample['page_ms']:.0f} ms after the event",
                    flush=True,
                )
            renders = driver.execute_script("return covey.view.renders;")
            if args.screenshot:
                driver.save_screenshot(str(args.screenshot))
    page = [c["page_ms"] for c in changes]
    return {
        "members": args.members,
        "load_average_1min": os.getloadavg()[0],  # the figures move with it (2 cores)
        "first_rows_ms": first[0],
        "first_frame_ms": first[1],
        "table_first_ms": renders["firstMs"],
        "table_update_mean_ms": renders["laterMs"] / max(1, renders["count"] - 1),
        "table_update_max_ms": renders["maxMs"],
        "table_updates": renders["count"],
        "filter_keystroke_ms": keystroke,
        "changes": changes,
        "page_ms_median": statistics.median(page) if page else None,
        "page_ms_max": max(page) if page else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100)
    ap.add_argument("--leaves", type=int, default=3)
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--start-timeout", type=float, default=300.0)
    ap.add_argument("--batch", type=int, default=10, help="agents started at a time")
    ap.add_argument("--screenshot", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if (why := missing()) is not None:
        print(f"dashboard_bench: {why}", file=sys.stderr)
        return 2
    if args.members < 2 + args.leaves + args.kills:
        ap.error("--members must exceed --leaves + --kills + 1")
    result = run(args)
    r = result
    print(f"\n{r['members']} members (load average {r['load_average_1min']:.1f} at the end)")
    print(f"  first render: rows {r['first_rows_ms']:.0f} ms, painted {r['first_frame_ms']:.0f} ms")
    print(f"  members table: made in {r['table_first_ms']:.1f} ms (JavaScript); updated in")
    print(
        f"    {r['table_update_mean_ms']:.2f} ms on average, {r['table_update_max_ms']:.1f} ms "
        f"at most ({r['table_updates'] - 1} updates)"
    )
    print(f"  filter keystroke: {r['filter_keystroke_ms']:.1f} ms")
    print(f"  a change on the page after the agent's event: median {r['page_ms_median']:.0f} ms,")
    print(f"    max {r['page_ms_max']:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
