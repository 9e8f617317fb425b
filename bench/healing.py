"""Partition healing and the cost of looking for lost members (simulator, virtual time).

Two parts:

* **Traffic per node of a settled cluster** at each size N (``Simulation.bootstrap``, then
  idle): datagrams/s and bytes/s sent per node, and TCP exchanges/s opened per node
  (push-pull anti-entropy and reconnection attempts). Measured twice: with nobody missing,
  and *searching* — one member lost for good (down, failed, then reaped into the lost
  set), so every node keeps beaconing and retrying for as long as it runs. Multicast is on
  (after the start beacons), so search beacons are counted; a group beacon counts once.
* **Heal times**: 10-node clusters split 5|5, 1|9 (the seed alone), 9|1 (a non-seed alone)
  and 3|3|4 for ten times a 30 s reap, with static seeds only (no multicast), seeds and
  multicast, or beacons only; virtual seconds from the heal until every node holds one
  view, over several seeds.

Reproduce with::

    PYTHONPATH=src .venv/bin/python bench/healing.py --sizes 10 100 1000 --seeds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

from covey.sim import Simulation

REAP = 30.0
SPLITS = {"5|5": (5, 5), "1|9": (1, 9), "9|1": (9, 1), "3|3|4": (3, 3, 4)}
MODES = {
    "seeds only": (True, False),
    "seeds+multicast": (True, True),
    "beacons only": (False, True),
}


def settled_rates(n: int, *, searching: bool, window: float) -> tuple[float, float, float]:
    """(datagrams/s, bytes/s, streams/s) sent per live node of a settled cluster of ``n``."""
    sim = Simulation(1, record_events=False, reap_failed_after=REAP)
    # Multicast off while the bootstrapped nodes send their start beacons (N^2
    # deliveries, and no part of a settled cluster's load), on from then on.
    sim.network.multicast = False
    hosts = sim.bootstrap(n)
    sim.run_for(40.0)
    sim.network.multicast = True
    live = hosts
    if searching:
        sim.host_down(hosts[-1].name)
        live = hosts[:-1]
        sim.run_for(3 * REAP + 60.0)
        assert all(hosts[-1].config.node_id in h.node.table.lost for h in live)
    first = [h.node.statistics() for h in live]
    sim.run_for(window)
    last = [h.node.statistics() for h in live]
    per = window * len(live)
    dgrams = sum(b.datagrams_sent - a.datagrams_sent for a, b in zip(first, last, strict=True))
    octets = sum(b.bytes_sent - a.bytes_sent for a, b in zip(first, last, strict=True))
    streams = sum(b.streams_opened - a.streams_opened for a, b in zip(first, last, strict=True))
    return dgrams / per, octets / per, streams / per


def heal_time(split: tuple[int, ...], seeds: bool, multicast: bool, seed: int) -> float | None:
    """Virtual seconds from the heal of a 10x-reap split to one view (None: not healed)."""
    sim = Simulation(seed, record_events=False, reap_failed_after=REAP)
    sim.network.multicast = multicast
    first = sim.add_node()
    for _ in range(9):
        sim.add_node(join=[first.name] if seeds else [])
    if sim.run_until_true(sim.converged, timeout=60.0) is None:
        raise RuntimeError("did not converge before the split")
    names, groups, start = list(sim.hosts), [], 0
    for size in split:
        groups.append(names[start : start + size])
        start += size
    sim.network.partition(*groups)
    sim.run_for(10 * REAP)
    sim.network.heal()
    healed = sim.now
    t = sim.run_until_true(sim.converged, timeout=300.0, step=0.5)
    return None if t is None else t - healed


def main() -> None:
    """Print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--window", type=float, default=120.0, help="virtual s measured")
    ap.add_argument("--seeds", type=int, default=5, help="runs per split scenario")
    args = ap.parse_args()
    print("settled cluster, per node (virtual time, multicast on):")
    print(f"{'N':>6} {'state':>10} {'dgram/s':>8} {'bytes/s':>9} {'streams/s':>9} {'wall s':>7}")
    for n in args.sizes:
        for searching in (False, True):
            wall = time.perf_counter()
            d, b, s = settled_rates(n, searching=searching, window=args.window)
            state = "searching" if searching else "whole"
            took = time.perf_counter() - wall
            print(f"{n:>6} {state:>10} {d:>8.2f} {b:>9.0f} {s:>9.4f} {took:>7.1f}", flush=True)
    print(f"\nheal after a split of {10 * REAP:.0f} s (reap {REAP:.0f} s), {args.seeds} seeds:")
    print(f"{'split':>6} {'mode':>16} {'median s':>9} {'max s':>6} {'healed':>7}")
    for name, split in SPLITS.items():
        for mode, (seeds, multicast) in MODES.items():
            times = [heal_time(split, seeds, multicast, s) for s in range(args.seeds)]
            ok = [t for t in times if t is not None]
            med = statistics.median(ok) if ok else float("nan")
            top = max(ok) if ok else float("nan")
            print(f"{name:>6} {mode:>16} {med:>9.1f} {top:>6.1f} {len(ok):>4}/{len(times)}")


if __name__ == "__main__":
    main()
