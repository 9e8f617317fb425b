"""What tracing costs an idle agent: CPU with the trace buffer on and off, side by side.

Starts ``--agents`` real agents on loopback with the election on (the leader traces one
heartbeat in 50, every 10 s, besides what membership traces), lets them settle, and measures
each agent's CPU over ``--window`` seconds from the scheduler's run time
(``/proc/PID/task/*/schedstat``, bench/agent_procs.py). Three modes, interleaved round
after round so drift hits them alike: ``off`` (``--trace-buffer 0``), ``on`` (the default
buffer of 10,000), and, when ``--collector`` gives a running collector's HOST:PORT and
its key file, ``stream`` (every record also sent there).

    .venv/bin/python bench/traces_bench.py --agents 5 --rounds 3 --window 20

Prints one line per round and mode and the mean CPU per agent per mode, with the
increase of ``on`` and ``stream`` over ``off`` in percent (the goal: under 2 %).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from agent_procs import cpu_rss_window

from covey.runtime.localcluster import LocalCluster, wait_until

SETTLE = 5.0


def run_mode(
    mode: str, agents: int, window: float, collector: str | None, key: Path | None
) -> float:
    """Mean CPU % per agent of one idle cluster in ``mode``."""
    extra = ["--expected-votes", str(agents)]
    if mode == "off":
        extra += ["--trace-buffer", "0"]
    elif mode == "stream":
        assert collector is not None
        extra += ["--collector", collector]
    with LocalCluster(cluster=f"tb-{mode}") as c:
        if key is not None:
            c.key_file.write_bytes(key.read_bytes())
        started = [c.spawn(f"n{i}", extra=extra, wait=False) for i in range(agents)]
        for a in started:
            c.wait_ready(a)
        wait_until(lambda: c.converged(), 60, what="convergence")
        wait_until(lambda: started[0].client().request("names").get("leader"), 60, what="a leader")
        time.sleep(SETTLE)  # let the join traffic die down: measure the idle agent
        cpu = cpu_rss_window([a.pid for a in started], window)
        return statistics.mean(v["cpu_percent"] for v in cpu.values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window", type=float, default=20.0, help="seconds of measurement")
    ap.add_argument("--collector", help="HOST:PORT of a running collector (adds 'stream')")
    ap.add_argument("--key-file", type=Path, help="the collector's key file")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    a = ap.parse_args()
    modes = ["off", "on"] + (["stream"] if a.collector else [])
    seen: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(a.rounds):
        for mode in modes if r % 2 == 0 else list(reversed(modes)):
            cpu = run_mode(mode, a.agents, a.window, a.collector, a.key_file)
            seen[mode].append(cpu)
            print(f"round {r + 1}/{a.rounds} {mode:<6} {cpu:6.3f} % CPU per agent", flush=True)
    base = statistics.mean(seen["off"])
    summary = {}
    for mode in modes:
        mean = statistics.mean(seen[mode])
        rise = (mean - base) / base * 100 if base else 0.0
        summary[mode] = {"cpu_percent": mean, "runs": seen[mode], "increase_percent": rise}
        print(f"{mode:<6} mean {mean:6.3f} % CPU per agent  ({rise:+.1f} % against off)")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"agents": a.agents, "window": a.window, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
