"""Scaling of covey's membership protocol in the simulator (virtual time).

For each cluster size N this starts from a converged cluster (``Simulation.bootstrap``),
lets it idle, and measures:

* datagrams sent per node per second while idle (the protocol's steady load);
* join convergence: a new node joins through one static seed; time until all N+1 list
  it alive, with eager push (the default: news travels in network delays), and without it
  (classic SWIM dissemination), counted in gossip rounds of 0.2 s;
* crash detection: one host is lost (no answer at all, the hard case); time until every
  survivor lists it failed; and a killed process on a live host (connection refused);
* false failures: failed verdicts about live nodes during a run with 5 % loss on every link.

Everything runs in virtual time with plain-text frames (encryption changes no decision).
Reproduce with::

    .venv/bin/python bench/sim_scaling.py --sizes 10 100 1000 10000 --plot docs/bench-scaling.png

N = 10,000 holds 10^8 member records (about 16 GB) and takes tens of minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, replace

from covey.core import Event, MemberFailed, MemberState
from covey.sim import SimHost, Simulation


@dataclass
class Result:
    n: int
    idle_datagrams_per_node_s: float
    join_s: float | None
    join_classic_rounds: float | None
    host_loss_detect_s: float | None
    crash_detect_s: float | None
    false_failures: int
    loss_run_s: float
    wall_s: float
    peak_rss_mb: float


def _first_all(
    sim: Simulation, subject: SimHost, state: MemberState, timeout: float, step: float
) -> float | None:
    """Virtual seconds until every other up host sees ``subject`` in ``state``."""
    nid = subject.config.node_id
    pending = {h.name for h in sim.running() if h is not subject}
    start = sim.now

    def done() -> bool:
        for name in list(pending):
            m = sim.hosts[name].node.table.members.get(nid)
            if m is not None and m.state is state:
                pending.discard(name)
        return not pending

    t = sim.run_until_true(done, timeout=timeout, step=step)
    return None if t is None else t - start


def run(n: int, seed: int, loss_run: float) -> Result:
    wall = time.time()
    sim = Simulation(seed, record_events=False)
    sim.network.multicast = False  # static seeds: beacons to N hosts would be O(N^2)
    step = 0.05 if n <= 1000 else 0.25
    hosts = sim.bootstrap(n)
    sim.run_for(5.0)  # let probing settle

    # Idle load.
    sent0 = sum(h.sent for h in hosts)
    idle = 10.0
    sim.run_for(idle)
    rate = (sum(h.sent for h in hosts) - sent0) / n / idle
    print(f"  N={n}: idle {rate:.2f} datagrams/node/s", flush=True)

    # Join through one seed, with eager push (the default) ...
    newcomer = sim.add_node(join=[hosts[0].name])
    join = _first_all(sim, newcomer, MemberState.ALIVE, timeout=120.0, step=0.002)
    print(f"  N={n}: join seen by all in {join} s", flush=True)
    sim.run_for(10.0)
    # ... and with gossip rounds only (classic SWIM dissemination), counted in rounds.
    for h in sim.running():
        h.node.config = replace(h.node.config, eager_gossip=False)
    classic = sim.add_node(join=[hosts[1].name], eager_gossip=False)
    classic_s = _first_all(sim, classic, MemberState.ALIVE, timeout=120.0, step=0.02)
    rounds = None if classic_s is None else classic_s / classic.config.gossip_interval
    print(f"  N={n}: join without eager push seen by all in {rounds} rounds", flush=True)
    for h in sim.running():
        h.node.config = replace(h.node.config, eager_gossip=True)
    sim.run_for(10.0)

    # Host loss: no answer at all.
    lost = hosts[n // 2]
    sim.host_down(lost.name)
    host_loss = _first_all(sim, lost, MemberState.FAILED, timeout=300.0, step=step)
    print(f"  N={n}: host loss seen by all in {host_loss} s", flush=True)
    sim.run_for(10.0)

    # Killed process on a live host: the TCP fallback is refused.
    killed = hosts[n // 3]
    sim.crash(killed.name)
    crash = _first_all(sim, killed, MemberState.FAILED, timeout=300.0, step=step)
    print(f"  N={n}: crash seen by all in {crash} s", flush=True)
    sim.run_for(30.0)

    # False failures under 5 % loss.
    live = {h.config.node_id for h in sim.running()}
    false: list[tuple[str, str]] = []

    def watch(host: SimHost, now: float, e: Event) -> None:
        if isinstance(e, MemberFailed) and e.member.node_id in live:
            false.append((host.name, e.member.name))

    sim.listeners.append(watch)
    sim.network.set_loss(0.05)
    sim.run_for(loss_run)
    print(f"  N={n}: {len(false)} false failures in {loss_run:.0f} s at 5% loss", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Result(
        n, rate, join, rounds, host_loss, crash, len(false), loss_run, time.time() - wall, rss
    )


def plot(results: list[Result], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r.n for r in results]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ns, [r.join_s for r in results], "o-", label="join seen by all (eager push)")
    a.plot(
        ns,
        [None if r.join_classic_rounds is None else r.join_classic_rounds * 0.2 for r in results],
        "o--",
        label="join seen by all (gossip rounds only)",
    )
    a.plot(ns, [r.host_loss_detect_s for r in results], "s-", label="host loss seen by all")
    a.plot(ns, [r.crash_detect_s for r in results], "^-", label="killed process seen by all")
    a.set_xscale("log")
    a.set_xlabel("cluster size N")
    a.set_ylabel("virtual seconds")
    a.legend()
    a.grid(True, alpha=0.3)
    b.plot(ns, [r.idle_datagrams_per_node_s for r in results], "o-")
    b.set_xscale("log")
    b.set_ylim(bottom=0)
    b.set_xlabel("cluster size N")
    b.set_ylabel("datagrams sent per node per second (idle)")
    b.grid(True, alpha=0.3)
    fig.suptitle("covey membership scaling (simulator)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--loss-run",
        type=float,
        default=120.0,
        help="virtual seconds of the 5%% loss run (shortened above 1000 nodes)",
    )
    ap.add_argument("--out", help="write results as JSON here")
    ap.add_argument("--plot", help="write a PNG plot here")
    args = ap.parse_args(argv)
    results = []
    for n in args.sizes:
        print(f"N={n} ...", flush=True)
        loss_run = args.loss_run if n <= 1000 else min(args.loss_run, 60.0)
        results.append(run(n, args.seed, loss_run))
    print()
    hdr = (
        f"{'N':>6} {'dgrams/node/s':>13} {'join s':>7} {'rounds':>6} {'host loss s':>11} "
        f"{'crash s':>7} {'false fail':>10} {'wall s':>7} {'RSS MB':>7}"
    )
    print(hdr)

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    for r in results:
        print(
            f"{r.n:>6} {r.idle_datagrams_per_node_s:>13.2f} {f(r.join_s):>7} "
            f"{f(r.join_classic_rounds):>6} {f(r.host_loss_detect_s):>11} "
            f"{f(r.crash_detect_s):>7} {r.false_failures:>10} {r.wall_s:>7.0f} "
            f"{r.peak_rss_mb:>7.0f}"
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump([asdict(r) for r in results], fh, indent=2)
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
