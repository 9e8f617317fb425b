"""The HTTP side's figures: blocking-query latency, and what being watched costs an idle agent.

``blocking``: one real agent with ``--http``. A client holds ``GET /v1/facts?index=N&wait=30s``
and, once the agent reports the query held, a fact is set over the control socket; the time
from the change to the held answer's arrival is one sample (``--changes`` of them). Then
``--holds`` queries with ``wait=1s`` and no change measure how long a query is held.

``idle``: ``--agents`` real agents in three modes, interleaved round after round so drift hits
them alike, CPU per agent from the scheduler's run time (bench/agent_procs.py) over
``--window`` seconds:

* ``plain`` — no HTTP at all;
* ``http`` — ``--http`` served, nobody asking;
* ``watched`` — ``/metrics`` scraped every 5 s on every agent and the dashboard (``/ui/``)
  open in headless Chromium on the first one (its event stream and queries running).

    .venv/bin/python bench/http_bench.py blocking --changes 200
    .venv/bin/python bench/http_bench.py idle --agents 3 --rounds 3 --window 30

Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# The headless Chromium of the dashboard's test (the same flags and driver paths).
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "runtime"))

from agent_procs import cpu_rss_window
from browser import chromium

from covey.runtime.localcluster import LocalCluster, free_port, wait_until

SETTLE = 5.0
SCRAPE_EVERY = 5.0


def _get(url: str, timeout: float = 60.0) -> tuple[dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return dict(resp.headers), resp.read()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def blocking(changes: int, holds: int) -> dict[str, object]:
    """Change → answer latency of held queries, and hold durations without a change."""
    with LocalCluster(cluster="hb") as c:
        port = free_port()
        agent = c.spawn("b0", extra=["--http", f"127.0.0.1:{port}"])
        control = agent.client()
        url = f"http://127.0.0.1:{port}/v1/facts"
        latencies: list[float] = []
        for i in range(changes):
            headers, _ = _get(url)
            index = int(headers["X-Covey-Index"])
            done: dict[str, float] = {}

            def hold(index: int = index, done: dict[str, float] = done) -> None:
                _get(f"{url}?index={index}&wait=30s")
                done["at"] = time.perf_counter()

            t = threading.Thread(target=hold)
            t.start()
            # Change only once the agent holds the query (it says so in /v1/info).
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                info = json.loads(_get(f"http://127.0.0.1:{port}/v1/info")[1])
                if info["http"]["held_queries"] >= 1:
                    break
            changed = time.perf_counter()
            control.request("fact_set", key="n", value=str(i))
            t.join(35)
            latencies.append((done["at"] - changed) * 1000)
        held: list[float] = []
        for _ in range(holds):
            headers, _ = _get(url)
            start = time.perf_counter()
            _get(f"{url}?index={headers['X-Covey-Index']}&wait=1s")
            held.append(time.perf_counter() - start)
    out = {
        "changes": changes,
        "latency_ms": {
            "p50": round(statistics.median(latencies), 2),
            "p99": round(_pct(latencies, 0.99), 2),
            "max": round(max(latencies), 2),
        },
        "held_s_with_wait_1s": {"min": round(min(held), 3), "max": round(max(held), 3)},
    }
    print(json.dumps(out))
    return out


def idle_mode(mode: str, agents: int, window: float) -> float:
    """Mean CPU % per agent of one idle cluster in ``mode``."""
    with LocalCluster(cluster=f"hi-{mode}") as c:
        token = c.workdir / "http.token"
        token.write_text(secrets.token_urlsafe(24) + "\n")
        ports = [free_port() for _ in range(agents)]
        started = []
        for i in range(agents):
            extra = [] if mode == "plain" else ["--http", f"127.0.0.1:{ports[i]}"]
            started.append(c.spawn(f"n{i}", extra=extra, wait=False))
        for a in started:
            c.wait_ready(a)
        wait_until(lambda: c.converged(), 60, what="convergence")
        stop = threading.Event()
        scraper = None
        browser = contextlib.ExitStack()
        if mode == "watched":
            driver = browser.enter_context(chromium())
            driver.get(f"http://127.0.0.1:{ports[0]}/ui/")

            def scrape() -> None:
                while not stop.wait(SCRAPE_EVERY):
                    for p in ports:
                        _get(f"http://127.0.0.1:{p}/metrics", timeout=5)

            scraper = threading.Thread(target=scrape, daemon=True)
            scraper.start()
        try:
            time.sleep(SETTLE)  # let the join traffic die down: measure the idle agent
            cpu = cpu_rss_window([a.pid for a in started], window)
        finally:
            stop.set()
            if scraper is not None:
                scraper.join(10)
            browser.close()
        return statistics.mean(v["cpu_percent"] for v in cpu.values())


def idle(agents: int, rounds: int, window: float) -> dict[str, object]:
    """CPU per agent in each mode, interleaved over ``rounds``."""
    modes = ("plain", "http", "watched")
    samples: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(rounds):
        for mode in modes:
            value = idle_mode(mode, agents, window)
            samples[mode].append(value)
            print(f"round {r + 1}/{rounds} {mode:8} cpu/agent {value:.3f} %", flush=True)
    means = {m: round(statistics.mean(v), 4) for m, v in samples.items()}
    out = {
        "agents": agents,
        "window_s": window,
        "rounds": rounds,
        "cpu_percent_per_agent": means,
        "watched_over_plain": round(means["watched"] / means["plain"], 2),
    }
    print(json.dumps(out))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    b = sub.add_parser("blocking", help="blocking-query latency")
    b.add_argument("--changes", type=int, default=200)
    b.add_argument("--holds", type=int, default=5)
    i = sub.add_parser("idle", help="idle CPU: no HTTP, HTTP, watched")
    i.add_argument("--agents", type=int, default=3)
    i.add_argument("--rounds", type=int, default=3)
    i.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = ap.parse_args()
    if args.what == "blocking":
        result = blocking(min(args.changes, 5000), min(args.holds, 100))
    else:
        result = idle(min(args.agents, 50), min(args.rounds, 20), min(args.window, 600.0))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
