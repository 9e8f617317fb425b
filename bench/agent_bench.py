"""Agent benchmark: N real covey agents vs N real HashiCorp Serf agents on loopback.

Reproduce (from the repository root, as root so that ``strace -p`` may attach)::

    apt-get install -y serf strace        # Debian's serf package (0.8.x)
    .venv/bin/pip install -q -e '.[dev]'  # covey + psutil
    .venv/bin/python bench/agent_bench.py --nodes 5 10 --runs 3 --out bench/results/agent.json

For every N and run, each system gets two fresh clusters, started the same way (the seed
first, the N-1 others at once as soon as the seed serves):

* cluster A: join convergence → settle (13 s) → idle CPU % / RSS (psutil) → fan-out (5 samples:
  covey a tag change, Serf a user event) → action fan-out (5 samples: covey a cluster-wide
  action, delivered on every agent; Serf, which has no acknowledged action, a user event
  again) → ``kill -9`` of one non-seed agent (crash detection by the N-1 survivors).
  ``--fanout-only`` stops cluster A after the fan-outs and skips clusters B and P.
* cluster B: join convergence → SIGSTOP of one non-seed agent (host loss: sockets open,
  nothing answers) → detection by the N-1 survivors → SIGKILL of the frozen agent →
  SIGTERM of another (graceful leave, seen by the N-2 survivors).
* cluster P (first run only unless ``--packets-every-run``): join → settle (13 s) → datagrams per
  second per node, counted with ``strace``. It has a cluster of its own because strace
  slows every syscall: acks come late, Lifeguard raises every node's health score and
  stretches its probe interval for tens of seconds, which made the crash detection that
  followed it in cluster A up to 4x slower (both systems use Lifeguard).

Every agent's view is read from an event stream and timestamped when each line is read
(covey: ``covey monitor --json``; Serf: its log lines, see ``agent_serf.py``). Medians over
runs are printed with the covey/Serf ratio and PASS/MISS against the product goals.

Network rule: every agent binds 127.0.0.1; covey runs with ``--interface 127.0.0.1`` (its
discovery multicast stays on loopback); Serf runs without ``-discover`` (no mDNS). The
strace pass checks that every datagram went to 127.0.0.0/8 or a loopback multicast group.
Every wait has a deadline; every process started is stopped by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import psutil
from agent_procs import (
    IDLE_SETTLE_S,
    ProcessRegistry,
    count_datagrams,
    cpu_rss_window,
    git_describe,
    udp_out_datagrams,
)
from agent_serf import SerfCluster, serf_version

SETTLE_S = 3.0  # quiet time after join before the fan-outs and failures (idle: IDLE_SETTLE_S)
DETECT_DEADLINE_S = 40.0  # longest wait for a failure to be seen everywhere
JOIN_DEADLINE_S = 60.0
FANOUT_SAMPLES = 5  # per cluster A, origin rotating


class Cluster(Protocol):
    system: str
    n: int
    names: list[str]
    t_start: float
    hub: Any
    ready_at: list[float | None]
    procs: list[Any]

    def start(self) -> None: ...
    def pids(self) -> list[int]: ...
    def close(self) -> None: ...
    def crash(self, i: int) -> None: ...
    def freeze(self, i: int) -> None: ...
    def leave(self, i: int) -> None: ...
    def counters(self) -> dict[int, int] | None: ...
    def fanout(self, origin: int, k: int) -> dict[str, Any]: ...
    def action_fanout(self, origin: int, k: int) -> dict[str, Any]: ...


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- scenarios


def measure_join(c: Cluster) -> dict[str, Any]:
    """Start the cluster; time until every agent lists all N members alive."""
    c.start()

    def dead() -> list[int]:
        return [i for i, p in enumerate(c.procs) if p.poll() is not None]

    c.hub.wait(
        lambda: all(v.full_at is not None for v in c.hub.views) or bool(dead()),
        time.time() + JOIN_DEADLINE_S,
    )
    ok = all(v.full_at is not None for v in c.hub.views)
    full = [v.full_at for v in c.hub.views]
    ready = [r for r in c.ready_at if r is not None]
    res: dict[str, Any] = {
        "converged": ok,
        "join_s": (max(f for f in full if f is not None) - c.t_start) if ok else None,
        "per_agent_s": [None if f is None else f - c.t_start for f in full],
        "last_ready_s": (max(ready) - c.t_start) if len(ready) == c.n else None,
    }
    if dead() or len(c.procs) < c.n:
        res["exited_early"] = dead()
        log(f"  {c.system}: agents {dead()} exited during start-up (see --keep logs)")
    if ok and res["last_ready_s"] is not None:
        res["after_last_ready_s"] = res["join_s"] - res["last_ready_s"]
    return res


def measure_detection(
    c: Cluster,
    target: int,
    action: Callable[[int], None],
    kinds: Sequence[str],
    survivors: Sequence[int],
) -> dict[str, Any]:
    """Apply ``action`` to ``target``; per survivor, delay until it reports one of ``kinds``."""
    subject = c.names[target]
    t0 = time.time()
    action(target)

    def done() -> bool:
        return all(
            any(t >= t0 and k in kinds and s == subject for t, k, s, _ in c.hub.views[i].events)
            for i in survivors
        )

    ok = c.hub.wait(done, t0 + DETECT_DEADLINE_S)
    delays = []
    for i in survivors:
        t = c.hub.first(i, kinds, subject, t0)
        delays.append(None if t is None else t - t0)
    got = [d for d in delays if d is not None]
    # Which states the survivors passed through on the way (e.g. failed before left).
    seen_kinds: dict[str, int] = {}
    for i in survivors:
        for t, k, s, _ in c.hub.views[i].events:
            if t >= t0 and s == subject and k in ("suspect", "failed", "left", "alive"):
                seen_kinds[k] = seen_kinds.get(k, 0) + 1
    return {
        "t0": t0,
        "complete": ok,
        "delays_s": delays,
        "median_s": statistics.median(got) if got else None,
        "max_s": max(got) if ok and got else None,
        "seen_kinds": seen_kinds,
    }


def measure_idle(c: Cluster, idle_s: float) -> dict[str, Any]:
    pids = c.pids()
    res: dict[str, Any] = {}
    usage = cpu_rss_window(pids, idle_s)
    cpus = [u["cpu_percent"] for u in usage.values()]
    rss = [u["rss_mib"] for u in usage.values()]
    res["cpu_percent_per_agent"] = cpus
    res["cpu_percent_mean"] = statistics.mean(cpus) if cpus else None
    ticks = [u["cpu_percent_ticks"] for u in usage.values()]
    res["cpu_percent_ticks_mean"] = statistics.mean(ticks) if ticks else None
    res["rss_mib_per_agent"] = rss
    res["rss_mib_max"] = max(rss) if rss else None
    res["rss_mib_mean"] = statistics.mean(rss) if rss else None
    uss = [u["uss_mib"] for u in usage.values() if "uss_mib" in u]
    res["uss_mib_max"] = max(uss) if uss else None
    return res


def measure_packets(c: Cluster, packet_s: float, workdir: str) -> dict[str, Any]:
    pids = c.pids()
    res: dict[str, Any] = {}
    if packet_s > 0:
        t_before = time.time()
        before = c.counters()
        pk = count_datagrams(pids, packet_s, workdir)
        after = c.counters()
        t_after = time.time()
        per = [pk["per_pid"].get(pid, 0) / pk["window_s"] for pid in pids]
        res["packets"] = {
            "method": "strace -f -p PID: sendto/sendmsg with an IPv4 destination, per process",
            "window_s": pk["window_s"],
            "per_node_per_s": per,
            "per_node_per_s_mean": statistics.mean(per),
            "destinations": pk["destinations"],
            "outside_loopback": pk["outside_loopback"],
            "snmp_out_datagrams_per_node_per_s": pk["snmp_out_datagrams_delta"]
            / pk["window_s"]
            / len(pids),
        }
        if before is not None and after is not None:
            sent = [after[i] - before[i] for i in before if i in after]
            res["packets"]["own_counters_per_node_per_s"] = statistics.mean(sent) / (
                t_after - t_before
            )
        if pk["outside_loopback"]:
            log(f"WARNING {c.system}: datagrams outside loopback: {pk['outside_loopback']}")
    return res


def run_cluster_packets(
    make: Callable[[str], Cluster], workdir: str, packet_s: float
) -> dict[str, Any]:
    c = make(workdir)
    out: dict[str, Any] = {}
    try:
        out["join"] = measure_join(c)
        if out["join"]["converged"]:
            # The same quiet time as cluster A's CPU window: start-up traffic is over.
            time.sleep(IDLE_SETTLE_S)
            out.update(measure_packets(c, packet_s, workdir))
    finally:
        c.close()
    return out


def run_cluster_a(
    make: Callable[[str], Cluster], workdir: str, idle_s: float, *, fanout_only: bool = False
) -> dict[str, Any]:
    c = make(workdir)
    out: dict[str, Any] = {}
    try:
        out["join"] = measure_join(c)
        log(f"  {c.system} N={c.n} A join {_fmt(out['join']['join_s'])}s")
        if not out["join"]["converged"]:
            return out
        if fanout_only:
            time.sleep(SETTLE_S)
        else:
            time.sleep(IDLE_SETTLE_S)
            out["idle"] = measure_idle(c, idle_s)
        fan = []
        for k in range(FANOUT_SAMPLES):
            fan.append(c.fanout(k % c.n, k))
            time.sleep(0.3)
        out["fanout"] = fan
        acts = []
        for k in range(FANOUT_SAMPLES):
            acts.append(c.action_fanout(k % c.n, k))
            time.sleep(0.3)
        out["action_fanout"] = acts
        got = [_max_or_none(a["delivered_delays"]) for a in acts]
        log(f"  {c.system} N={c.n} A action fan-out to all, ms: {[_fmt(_ms(g), 1) for g in got]}")
        if fanout_only:
            return out
        time.sleep(0.5)
        target = c.n - 1
        out["crash"] = measure_detection(
            c, target, c.crash, ["failed"], [i for i in range(c.n) if i != target]
        )
        log(
            f"  {c.system} N={c.n} A crash median {_fmt(out['crash']['median_s'])}s "
            f"max {_fmt(out['crash']['max_s'])}s"
        )
    finally:
        c.close()
    return out


def run_cluster_b(make: Callable[[str], Cluster], workdir: str) -> dict[str, Any]:
    c = make(workdir)
    out: dict[str, Any] = {}
    try:
        out["join"] = measure_join(c)
        log(f"  {c.system} N={c.n} B join {_fmt(out['join']['join_s'])}s")
        if not out["join"]["converged"]:
            return out
        time.sleep(SETTLE_S)
        frozen = c.n - 1
        survivors = [i for i in range(c.n) if i != frozen]
        out["host_loss"] = measure_detection(c, frozen, c.freeze, ["failed"], survivors)
        log(
            f"  {c.system} N={c.n} B host loss median {_fmt(out['host_loss']['median_s'])}s "
            f"max {_fmt(out['host_loss']['max_s'])}s"
        )
        # Kill the frozen agent while it is still stopped (so it never answers again),
        # then let it run so the kernel can reap it.
        with contextlib.suppress(ProcessLookupError):
            os.kill(c.pids()[frozen], signal.SIGKILL)
            os.kill(c.pids()[frozen], signal.SIGCONT)
        time.sleep(1.0)
        leaver = c.n - 2
        survivors = [i for i in range(c.n) if i not in (frozen, leaver)]
        out["leave"] = measure_detection(c, leaver, c.leave, ["left"], survivors)
        log(
            f"  {c.system} N={c.n} B leave max {_fmt(out['leave']['max_s'])}s "
            f"(kinds {out['leave']['seen_kinds']})"
        )
        if isinstance(c, SerfCluster):
            t0 = out["host_loss"]["t0"]
            out["host_loss"]["handler_delays_s"] = [
                t - t0 for t in c.handler_member_times("member-failed", c.names[frozen], t0)
            ]
    finally:
        c.close()
    return out


# --------------------------------------------------------------------------- summary


def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _med(xs: Sequence[float | None]) -> float | None:
    got = [x for x in xs if x is not None]
    return statistics.median(got) if got else None


def _ms(x: float | None) -> float | None:
    return None if x is None else 1000.0 * x


def _max_or_none(xs: Sequence[float | None] | None) -> float | None:
    """The largest delay, or None when some agent never saw it (not everyone reached)."""
    return None if xs is None or None in xs else max(x for x in xs if x is not None)


def summarize(samples: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median over runs of each headline figure for one (system, N)."""
    joins: list[float | None] = []
    crash_med, crash_max, host_med, host_max, leave_max, fan_max = [], [], [], [], [], []
    cpu, rss_max, pkts, crash_incomplete, host_incomplete = [], [], [], 0, 0
    startup, after_ready, fan_seen, host_handler, uss_max = [], [], [], [], []
    act_max: list[float | None] = []
    act_answered: list[float | None] = []
    for s in samples:
        for cl in ("a", "b"):
            if cl in s and "join" in s[cl]:
                joins.append(s[cl]["join"]["join_s"])
                startup.append(s[cl]["join"].get("last_ready_s"))
                after_ready.append(s[cl]["join"].get("after_last_ready_s"))
        a, b = s.get("a", {}), s.get("b", {})
        if "crash" in a:
            crash_med.append(a["crash"]["median_s"])
            crash_max.append(a["crash"]["max_s"])
            crash_incomplete += 0 if a["crash"]["complete"] else 1
        if "host_loss" in b:
            host_med.append(b["host_loss"]["median_s"])
            host_max.append(b["host_loss"]["max_s"])
            host_incomplete += 0 if b["host_loss"]["complete"] else 1
            hd = b["host_loss"].get("handler_delays_s")
            if hd:
                host_handler.append(max(hd))
        if "leave" in b:
            leave_max.append(b["leave"]["max_s"])
        for f in a.get("fanout", []):
            d = f.get("handler_delays") or f.get("seen_delays")
            fan_max.append(None if d is None or None in d else max(d))
            d = f.get("seen_delays")
            fan_seen.append(None if d is None or None in d else max(d))
        for f in a.get("action_fanout", []):
            act_max.append(_max_or_none(f.get("delivered_delays")))
            act_answered.append(f.get("answered_s"))
        if "idle" in a:
            cpu.append(a["idle"]["cpu_percent_mean"])
            rss_max.append(a["idle"]["rss_mib_max"])
            uss_max.append(a["idle"].get("uss_mib_max"))
        if "packets" in s.get("p", {}):
            pkts.append(s["p"]["packets"]["per_node_per_s_mean"])
    return {
        "join_s": _med(joins),
        "crash_median_s": _med(crash_med),
        "crash_max_s": _med(crash_max),
        "host_loss_median_s": _med(host_med),
        "host_loss_max_s": _med(host_max),
        "leave_max_s": _med(leave_max),
        "fanout_max_ms": _ms(_med(fan_max)),
        "fanout_seen_max_ms": _ms(_med(fan_seen)),
        "action_fanout_max_ms": _ms(_med(act_max)),
        "action_answered_ms": _ms(_med(act_answered)),
        "startup_last_ready_s": _med(startup),
        "join_after_last_ready_s": _med(after_ready),
        "host_loss_handler_max_s": _med(host_handler),
        "cpu_percent": _med(cpu),
        "rss_mib_max": _med(rss_max),
        "uss_mib_max": _med(uss_max),
        "packets_per_node_per_s": _med(pkts),
        "crash_incomplete_runs": crash_incomplete,
        "host_loss_incomplete_runs": host_incomplete,
    }


ROWS = [
    ("join convergence (s)", "join_s", "join"),
    ("crash detect, median survivor (s)", "crash_median_s", "crash"),
    ("crash detect, last survivor (s)", "crash_max_s", "crash"),
    ("host loss detect, median (s)", "host_loss_median_s", "host"),
    ("host loss detect, last (s)", "host_loss_max_s", "host"),
    ("graceful leave seen by all (s)", "leave_max_s", "leave"),
    ("fan-out to all (ms)", "fanout_max_ms", "fanout"),
    ("action fan-out to all (ms)", "action_fanout_max_ms", "action"),
    ("idle CPU per agent (%)", "cpu_percent", "cpu"),
    ("RSS per agent, max (MiB)", "rss_mib_max", "rss"),
    ("datagrams/s per node, idle", "packets_per_node_per_s", "host"),
    ("(info) USS per agent, max (MiB)", "uss_mib_max", "-"),
    ("(info) Serf handler ran, host loss (s)", "host_loss_handler_max_s", "-"),
    ("(info) last agent serving (s)", "startup_last_ready_s", "-"),
    ("(info) join after that (s)", "join_after_last_ready_s", "-"),
    ("(info) fan-out, stream/log seen (ms)", "fanout_seen_max_ms", "-"),
    ("(info) covey action answered by all (ms)", "action_answered_ms", "-"),
]


def goal_verdicts(cv: dict[str, Any], sf: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """PASS/MISS per goal (None figures are a MISS: not measured is not met)."""

    def ratio_ok(key: str, limit: float) -> bool:
        a, b = cv.get(key), sf.get(key)
        return a is not None and b is not None and b > 0 and a / b <= limit

    def abs_ok(key: str, limit: float) -> bool:
        a = cv.get(key)
        return a is not None and a < limit

    def v(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    # Datagram rates are compared at 0.01/s: one datagram more or less per node in the 10 s
    # window moves a per-node mean by 0.01-0.02/s, and equal counts must compare equal.
    pa, pb = cv.get("packets_per_node_per_s"), sf.get("packets_per_node_per_s")
    pkts_ok = pa is not None and pb is not None and round(pa, 2) <= round(pb, 2)
    return {
        "crash": (
            "<=0.3x Serf (median and last)",
            v(ratio_ok("crash_median_s", 0.3) and ratio_ok("crash_max_s", 0.3)),
        ),
        "host": (
            "<=1x Serf (median and last) at <= Serf's datagram rate",
            v(ratio_ok("host_loss_median_s", 1.0) and ratio_ok("host_loss_max_s", 1.0) and pkts_ok),
        ),
        "join": ("<=0.5x Serf", v(ratio_ok("join_s", 0.5))),
        "leave": ("<0.05 s", v(abs_ok("leave_max_s", 0.05))),
        "fanout": ("<10 ms", v(abs_ok("fanout_max_ms", 10.0))),
        "action": ("<=10 ms", v(abs_ok("action_fanout_max_ms", 10.0 + 1e-9))),
        "cpu": ("<= Serf", v(ratio_ok("cpu_percent", 1.0))),
        "rss": ("<=30 MB", v(abs_ok("rss_mib_max", 30.0 * 1e6 / 2**20))),
    }


def print_table(summary: dict[str, dict[str, dict[str, Any]]], nodes: Sequence[int]) -> str:
    lines = []
    for n in nodes:
        cv = summary.get("covey", {}).get(str(n), {})
        sf = summary.get("serf", {}).get(str(n), {})
        verdicts = goal_verdicts(cv, sf) if cv and sf else {}
        lines.append(f"\nN = {n}")
        lines.append(
            f"| {'figure':38} | {'covey':>8} | {'Serf':>8} | {'covey/Serf':>10} | goal | verdict |"
        )
        lines.append(f"|{'-' * 40}|{'-' * 10}|{'-' * 10}|{'-' * 12}|------|---------|")
        shown: set[str] = set()
        for label, key, goal in ROWS:
            a, b = cv.get(key), sf.get(key)
            ratio = f"{a / b:.2f}" if a is not None and b else "—"
            g, verdict = verdicts.get(goal, ("", ""))
            if goal in shown and goal != "-":
                g, verdict = "〃", ""
            shown.add(goal)
            lines.append(
                f"| {label:38} | {_fmt(a):>8} | {_fmt(b):>8} | {ratio:>10} | {g} | {verdict} |"
            )
    text = "\n".join(lines)
    print(text)
    return text


# --------------------------------------------------------------------------- main


def _no_sockets(directory: str, names: list[str]) -> list[str]:
    """Leave sockets and key material out of a kept log tree."""
    return [
        n for n in names if n.endswith((".sock", ".key")) or n.startswith(("keyring-", "data-"))
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=["covey", "serf"])
    ap.add_argument("--out", help="write JSON results here")
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--packet-seconds", type=float, default=10.0)
    ap.add_argument("--packets-every-run", action="store_true")
    ap.add_argument(
        "--action-handler",
        default="true",
        help="covey agents' --action-handler for the action fan-out ('': none, so each "
        "agent answers 'no handler' and spawns nothing)",
    )
    ap.add_argument(
        "--fanout-only",
        action="store_true",
        help="cluster A only, up to its fan-outs (tags/user event, action): no idle window, "
        "no crash, no clusters B and P",
    )
    ap.add_argument(
        "--covey-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="append ARG to every covey agent's command line (repeatable), "
        "e.g. --covey-arg=--no-election",
    )
    ap.add_argument("--keep", help="copy every agent's logs and event files to this directory")
    ap.add_argument(
        "--covey", default=os.path.join(os.path.dirname(sys.executable), "covey"), help="covey CLI"
    )
    ap.add_argument(
        "--startup",
        action="store_true",
        help="then run bench/startup_bench.py with the same --nodes (start-up, the CLI, "
        "join from launch and idle cost, covey beside Serf and kinship)",
    )
    args = ap.parse_args(argv)
    if min(args.nodes) < 4:
        ap.error("--nodes: need at least 4 agents (seed, leaver, frozen/killed, survivors)")
    if not 1 <= args.runs <= 20:
        ap.error("--runs: 1..20")

    systems = ["covey", "serf"] if args.only is None else [args.only]
    reg = ProcessRegistry()

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)

    makers: dict[str, Callable[[int], Callable[[str], Cluster]]] = {}
    if "serf" in systems:
        makers["serf"] = lambda n: lambda d: SerfCluster(reg, n, d, deadline_s=20.0)
    if "covey" in systems:
        from agent_covey import CoveyCluster, covey_version

        makers["covey"] = lambda n: (
            # An action handler that does nothing heavy, for the action fan-out.
            lambda d: CoveyCluster(
                reg,
                n,
                d,
                covey=args.covey,
                deadline_s=30.0,
                extra=(
                    *(("--action-handler", args.action_handler) if args.action_handler else ()),
                    *args.covey_arg,
                ),
            )
        )

    meta = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_at_start": os.getloadavg(),
            "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
        },
        "serf": serf_version() if "serf" in systems else None,
        "covey": covey_version(args.covey) if "covey" in systems else None,
        "git": git_describe(),
        "nodes": args.nodes,
        "runs": args.runs,
        "idle_seconds": args.idle_seconds,
        "packet_seconds": args.packet_seconds,
        "fanout_only": args.fanout_only,
        "action_handler": args.action_handler,
        "covey_args": args.covey_arg,
    }
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in systems}
    t_begin = time.time()
    try:
        with tempfile.TemporaryDirectory(prefix="covey-agent-bench-") as tmp:
            for run in range(args.runs):
                for n in args.nodes:
                    # Alternate which system goes first so slow drift hits both alike.
                    order = systems if (run + n) % 2 == 0 else list(reversed(systems))
                    for system in order:
                        log(f"run {run + 1}/{args.runs} N={n} {system}")
                        base = os.path.join(tmp, f"{system}-n{n}-r{run}")
                        wa, wb = base + "-a", base + "-b"
                        os.makedirs(wa)
                        os.makedirs(wb)
                        sample: dict[str, Any] = {
                            "run": run,
                            "a": run_cluster_a(
                                makers[system](n),
                                wa,
                                args.idle_seconds,
                                fanout_only=args.fanout_only,
                            ),
                        }
                        if not args.fanout_only:
                            sample["b"] = run_cluster_b(makers[system](n), wb)
                        if not args.fanout_only and (run == 0 or args.packets_every_run):
                            wp = base + "-p"
                            os.makedirs(wp)
                            sample["p"] = run_cluster_packets(
                                makers[system](n), wp, args.packet_seconds
                            )
                        samples[system].setdefault(str(n), []).append(sample)
            if args.keep:
                import shutil

                reg.stop_all()
                shutil.copytree(tmp, args.keep, dirs_exist_ok=True, ignore=_no_sockets)
                log(f"logs kept in {args.keep}")
    except KeyboardInterrupt:
        log("interrupted; stopping every agent")
    finally:
        reg.stop_all()
    meta["elapsed_s"] = round(time.time() - t_begin, 1)
    meta["git_at_end"] = git_describe()  # the tree is shared: say if it moved during the run
    if meta["git_at_end"] != meta["git"]:
        log(f"note: the source tree changed during the run ({meta['git']} -> {meta['git_at_end']})")
    meta["load_avg_at_end"] = os.getloadavg()
    summary = {s: {n: summarize(v) for n, v in per_n.items()} for s, per_n in samples.items()}
    table = print_table(summary, args.nodes)
    for s in summary:
        for n, fig in summary[s].items():
            extra = {k: v for k, v in fig.items() if k.endswith("incomplete_runs") and v}
            if extra:
                print(f"note: {s} N={n}: {extra}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(
                {"meta": meta, "summary": summary, "table": table, "samples": samples},
                fh,
                indent=1,
                default=str,
            )
        log(f"wrote {args.out}")
    log(f"done in {meta['elapsed_s']} s; snmp UDP OutDatagrams now {udp_out_datagrams()}")
    if args.startup:
        import startup_bench

        out = [] if args.out is None else ["--out", args.out.replace(".json", "-startup.json")]
        return startup_bench.main(["--nodes", *map(str, args.nodes), *out])
    return 0


if __name__ == "__main__":
    sys.exit(main())
