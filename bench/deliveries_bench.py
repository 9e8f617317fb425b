"""Deliveries benchmark (issue 11): real covey agents on loopback, SQLite and Redis stores.

Reproduce from the repository root (serf is installed with apt-get when missing)::

    apt-get install -y serf redis-server
    .venv/bin/python bench/deliveries_bench.py --out bench/results/deliveries.json
    # --count 1000 for a quick run

For each store (SQLite in each agent's data directory; one shared redis-server, AOF with
``appendfsync always``) and each owner layout (``one``: every delivery created on agent
d0, the seed's shape; ``spread``: round-robin over the 10 agents), a fresh cluster of 10
agents runs ``--count`` deliveries of two stages, ``3:any`` then ``2:any``:

* **creates** are pipelined on one control connection per owner, at most ``--window``
  deliveries in flight (created, not yet ended) over the whole cluster;
* **completion** is read from each owner's ``{"op": "monitor"}`` event stream: the
  ``delivery_complete`` line is timestamped when read. Latency = that time - the time
  just before the create request was written; throughput = deliveries completed ÷ (last
  completion - first create);
* **due → dispatched**: healthy deliveries never become due (every receipt arrives before
  the 30 s ask deadline), so alongside them ``--probe-rate`` probe deliveries per second
  are created that can never be satisfied (``1:bench=never``, ``expire`` 2.5 s): each is
  due twice, at its 1 s back-off and at its overall deadline. The figure is the owner's
  own ``info`` (``due_to_dispatch_ms``, measured in the core: when the timer acted - the
  score), cross-checked from outside: when the probe's ``delivery_failed`` line was read,
  minus its record's ``deadline``.

Then an 11th agent joins the last cluster of each store and owns the rest (an owner never
asks itself, and its ``info`` then holds its own figures only):

* **light**: ``--light-count`` of the same deliveries one at a time, with the probes:
  latency and due → dispatched on a cluster that is not saturated;
* **K=10**: one delivery of one stage ``10:any``, against 10 Serf agents answering one
  ``serf query`` (from agent s0, which answers its own query too) — both ways Serf can
  answer, a handler script (``echo ok``) and RPC responders — interleaved, ``--repeats``
  times each: time from the request until the 10th answer is read (see
  deliveries_serf.py).

Network rule: every process binds 127.0.0.1; covey's discovery multicast stays on the
loopback interface; Serf runs without ``-discover``. Every wait is bounded; every process
is stopped by its PID (also on Ctrl-C, from ``finally`` and atexit).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import psutil
from agent_covey import control_request
from agent_procs import ProcessRegistry, git_describe
from agent_serf import serf_version
from deliveries_covey import CONTROL_TIMEOUT, CoveyAgents, OwnerLink, RedisProcess
from deliveries_serf import HANDLER_QUERY, RPC_QUERY, SerfAgents

PROBE_EXPIRE = 2.5  # seconds: a probe is due at +1 s (back-off) and at +2.5 s (it fails)
K10_TIMEOUT = 10.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(xs: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (as the core's ``lateness``), None when empty."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else None


def dist_ms(xs: Sequence[float]) -> dict[str, Any]:
    """count, p50, p99, max of seconds, in ms."""
    out: dict[str, Any] = {"count": len(xs)}
    for name, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
        v = pct(xs, q)
        out[name] = None if v is None else round(v * 1000, 3)
    return out


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


CREATE = _line({"op": "deliver_create", "payload": "bench", "stages": ["3:any", "2:any"]})
PROBE = _line(
    {
        "op": "deliver_create",
        "payload": "probe",
        "stages": ["1:bench=never"],
        "expire": PROBE_EXPIRE,
    }
)


class Drive:
    """Pipelined creates over some owners, completions from their monitor streams."""

    def __init__(self, agents: CoveyAgents, owners: Sequence[int]) -> None:
        self.cond = threading.Condition()
        self.sent: dict[str, float] = {}  # id -> time just before its create was written
        self.ended: dict[str, tuple[str, float]] = {}  # id -> (kind, time read)
        self.probes: set[str] = set()
        self.inflight = 0
        self.main_ended = 0
        self.errors: list[str] = []
        self.owner_of: dict[str, int] = {}  # id -> index of its owner agent
        self.owners = list(owners)
        self.links = [
            OwnerLink(agents.socks[i], self._on_end, functools.partial(self._on_answer, i))
            for i in owners
        ]

    def _on_end(self, kind: str, item: str, t: float) -> None:
        with self.cond:
            if item in self.ended:
                return
            self.ended[item] = (kind, t)
            if item not in self.probes:
                self.inflight -= 1
                self.main_ended += 1
                self.cond.notify_all()

    def _on_answer(
        self, owner: int, kind: Any, t_sent: float, answer: dict[str, Any], t_read: float
    ) -> None:
        with self.cond:
            if not answer.get("ok"):
                self.errors.append(str(answer.get("error")))
                if kind == "main":
                    self.inflight -= 1
                    self.main_ended += 1
                self.cond.notify_all()
                return
            item = answer["result"]["id"]
            self.sent[item] = t_sent
            self.owner_of[item] = owner
            if kind == "probe":
                self.probes.add(item)

    def send(self, link: OwnerLink, request: bytes, kind: str) -> None:
        link.send(request, kind)

    def close(self) -> None:
        for link in self.links:
            link.close()


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            c = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += c.user + c.system
    return total


def rss_mib(pid: int) -> float | None:
    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except psutil.Error:
        return None


def run_throughput(
    agents: CoveyAgents,
    owners: Sequence[int],
    *,
    count: int,
    window: int,
    probe_rate: float,
    timeout: float,
    extra_pids: Sequence[int] = (),
) -> dict[str, Any]:
    """``count`` two-stage deliveries, ``window`` in flight at most (see the module
    docstring), with ``probe_rate`` probes per second meanwhile."""
    d = Drive(agents, owners)
    pids = [p.pid for p in agents.procs]
    cpu0 = [cpu_seconds([p]) for p in pids]
    cpu_x0, me0 = cpu_seconds(extra_pids), os.times()
    t_begin = time.time()
    deadline = t_begin + timeout
    stop_probes = threading.Event()

    def prober() -> None:
        n = 0
        next_at = time.time()
        while not stop_probes.is_set() and time.time() < deadline and n < 100_000:
            try:
                d.send(d.links[n % len(d.links)], PROBE, "probe")
            except OSError:  # the agent went away (the run is being stopped)
                return
            n += 1
            next_at += 1.0 / probe_rate
            stop_probes.wait(max(0.0, next_at - time.time()))

    probe_thread = threading.Thread(target=prober, daemon=True)
    if probe_rate > 0:
        probe_thread.start()
    k = 0
    last_log = time.time()
    while k < count and time.time() < deadline:
        with d.cond:
            while d.inflight >= window and time.time() < deadline:
                d.cond.wait(0.1)
            d.inflight += 1
        d.send(d.links[k % len(d.links)], CREATE, "main")
        k += 1
        if time.time() - last_log >= 5.0:
            last_log = time.time()
            rate = d.main_ended / (last_log - t_begin)
            log(f"    sent {k}/{count}, ended {d.main_ended} ({rate:.0f}/s)")
    with d.cond:
        while d.main_ended < k and time.time() < deadline:
            d.cond.wait(0.5)
            if time.time() - last_log >= 5.0:
                last_log = time.time()
                log(f"    sent {k}/{count}, ended {d.main_ended}")
    t_main_end = time.time()
    stop_probes.set()
    if probe_thread.is_alive():
        probe_thread.join(timeout=5.0)
    cpu1 = [cpu_seconds([p]) for p in pids]
    cpu_x1, me1 = cpu_seconds(extra_pids), os.times()
    # Every probe fails PROBE_EXPIRE s after it was created: wait for the last ones.
    end = time.time() + PROBE_EXPIRE + 10.0
    with d.cond:
        while time.time() < end and any(p not in d.ended for p in d.probes):
            d.cond.wait(0.2)
    time.sleep(0.2)  # the last answers on the create connections
    d.close()

    main = {i: t for i, t in d.sent.items() if i not in d.probes}
    lat = [d.ended[i][1] - t for i, t in main.items() if d.ended.get(i, ("", 0))[0] == "complete"]
    done_t = [d.ended[i][1] for i in main if d.ended.get(i, ("", 0))[0] == "complete"]
    first = min(main.values()) if main else t_begin
    not_seen = [i for i in main if i not in d.ended]
    states: dict[str, int] = {}
    for item in not_seen[:200]:  # ended unseen (a dropped event) or never ended?
        shown = control_request(agents.socks[d.owner_of[item]], show(item), CONTROL_TIMEOUT)
        states[shown["state"]] = states.get(shown["state"], 0) + 1
    res: dict[str, Any] = {
        "owners": [agents.names[i] for i in owners],
        "requested": count,
        "window": window,
        "created": len(main),
        "create_errors": len(d.errors),
        "create_error_sample": d.errors[:3],
        "complete": len(lat),
        "failed": sum(1 for i in main if d.ended.get(i, ("", 0))[0] == "failed"),
        "end_not_seen": len(not_seen),
        "end_not_seen_states": states,
        "timed_out": t_main_end >= deadline,
        "elapsed_s": (max(done_t) - first) if done_t else None,
        "per_s": (len(lat) / (max(done_t) - first)) if len(done_t) > 1 else None,
        "latency_ms": dist_ms(lat),
        "latency_mean_ms": round(statistics.mean(lat) * 1000, 3) if lat else None,
        "agents_cpu_s": round(sum(cpu1) - sum(cpu0), 2),
        "agent_cpu_s": {
            agents.names[i]: round(b - a, 2)
            for i, (a, b) in enumerate(zip(cpu0, cpu1, strict=True))
        },
        "store_cpu_s": round(cpu_x1 - cpu_x0, 2),
        "driver_cpu_s": round((me1.user + me1.system) - (me0.user + me0.system), 2),
        "monitor_lines": sum(link.monitor_lines for link in d.links),
        "rss_mib": {agents.names[i]: rss_mib(p) for i, p in enumerate(pids)},
    }
    res["due"] = due_figures(agents, owners, d)
    return res


def show(item: str) -> dict[str, Any]:
    return {"op": "deliver_show", "id": item}


def due_figures(agents: CoveyAgents, owners: Sequence[int], d: Drive) -> dict[str, Any]:
    """The owners' own due → dispatched figures, and the probes' lateness seen outside."""
    per_owner = {}
    counters: dict[str, int] = {}
    for i in owners:
        info = agents.info(i).get("deliveries", {})
        per_owner[agents.names[i]] = info.get("due_to_dispatch_ms", {})
        for key, v in info.get("counters", {}).items():
            counters[key] = counters.get(key, 0) + int(v)
    late = []
    for item in sorted(d.probes)[:2000]:
        kind, t = d.ended.get(item, ("", 0.0))
        if kind != "failed":
            continue
        rec = control_request(agents.socks[d.owner_of[item]], show(item), CONTROL_TIMEOUT)
        if rec.get("deadline") is not None:
            late.append(t - float(rec["deadline"]))
    p99s = [v["p99"] for v in per_owner.values() if v.get("count")]
    return {
        "probes": len(d.probes),
        "probes_failed_as_planned": sum(
            1 for p in d.probes if d.ended.get(p, ("",))[0] == "failed"
        ),
        "owner_due_to_dispatch_ms": per_owner,
        "owner_samples": sum(int(v.get("count", 0)) for v in per_owner.values()),
        "owner_p99_max_ms": max(p99s) if p99s else None,
        "owner_p50_median_ms": round(
            statistics.median([v["p50"] for v in per_owner.values() if v.get("count")]), 3
        )
        if p99s
        else None,
        "owner_max_ms": max((v["max"] for v in per_owner.values() if v.get("count")), default=None),
        "seen_outside_ms": dist_ms(late),
        "counters": counters,
    }


def run_k10(agents: CoveyAgents, owner: int, serf: SerfAgents, repeats: int) -> dict[str, Any]:
    """One ``N:any`` delivery from ``owner`` (N others) vs one Serf query answered by all N
    Serf agents, interleaved."""
    k = len(agents.procs) - 1
    request = _line({"op": "deliver_create", "payload": "k10", "stages": [f"{k}:any"]})
    d = Drive(agents, [owner])
    samples: dict[str, list[float | None]] = {"covey": [], "serf_handler": [], "serf_rpc": []}
    try:
        for r in range(repeats):
            order = ["covey", "serf_handler", "serf_rpc"]
            order = order[r % 3 :] + order[: r % 3]  # rotate who goes first
            for who in order:
                if who == "covey":
                    samples["covey"].append(_k10_covey(d, request))
                else:
                    q = serf.query(HANDLER_QUERY if who == "serf_handler" else RPC_QUERY)
                    samples[who].append(q["all_s"])
                time.sleep(0.3)  # let the last answers and acks settle
    finally:
        d.close()
    out: dict[str, Any] = {"owner": agents.names[owner], "k": k, "repeats": repeats}
    for who, xs in samples.items():
        got = [x for x in xs if x is not None]
        out[who] = {
            "missing": len(xs) - len(got),
            "median_ms": round(statistics.median(got) * 1000, 3) if got else None,
            "p99_ms": dist_ms(got)["p99"],
            "min_ms": round(min(got) * 1000, 3) if got else None,
            "samples_ms": [None if x is None else round(x * 1000, 3) for x in xs],
        }
    cv = out["covey"]["median_ms"]
    for who in ("serf_handler", "serf_rpc"):
        sm = out[who]["median_ms"]
        out[f"ratio_vs_{who}"] = round(cv / sm, 3) if cv and sm else None
    return out


def _k10_covey(d: Drive, request: bytes) -> float | None:
    with d.cond:
        before = set(d.sent)
        ended = d.main_ended
        d.inflight += 1
    d.send(d.links[0], request, "main")
    end = time.time() + K10_TIMEOUT
    with d.cond:
        while time.time() < end and (d.main_ended == ended or len(d.sent) == len(before)):
            d.cond.wait(0.05)
        new = [i for i in d.sent if i not in before]
        if not new or d.ended.get(new[0], ("",))[0] != "complete":
            return None
        return d.ended[new[0]][1] - d.sent[new[0]]


# --------------------------------------------------------------------------- the run


def run_store(
    reg: ProcessRegistry, tmp: str, store: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Every owner layout on fresh clusters of one store, then the K=10 comparison."""
    out: dict[str, Any] = {}
    for n, layout in enumerate(args.owners):
        last = n == len(args.owners) - 1
        work = tempfile.mkdtemp(prefix=f"{store[:2]}{layout[:2]}-", dir=tmp)
        redis = None
        agents = None
        serf = None
        try:
            if store == "redis":
                redis = RedisProcess(reg, work, fsync=args.redis_fsync)
                redis.wait_ready(time.time() + 15.0)
            t0 = time.time()
            agents = CoveyAgents(
                reg,
                work,
                args.agents,
                scheduler=redis.url if redis else None,
                python=sys.executable,
            )
            agents.wait_converged(time.time() + 90.0)
            log(f"  {store}/{layout}: {args.agents} agents converged in {time.time() - t0:.1f} s")
            owners = [0] if layout == "one" else list(range(args.agents))
            extra = [redis.proc.pid] if redis else []
            res = run_throughput(
                agents,
                owners,
                count=args.count,
                window=args.window,
                probe_rate=args.probe_rate,
                timeout=args.timeout,
                extra_pids=extra,
            )
            out[layout] = res
            log(
                f"  {store}/{layout}: {res['complete']}/{res['requested']} complete, "
                f"{_f(res['per_s'], 0)}/s, latency p50 {res['latency_ms']['p50']} ms "
                f"p99 {res['latency_ms']['p99']} ms; due→dispatched p99 "
                f"{res['due']['owner_p99_max_ms']} ms"
            )
            if not last or (args.light_count == 0 and args.repeats == 0):
                continue
            # An 11th agent, fresh (its due → dispatched figures are its own), owns the
            # rest: an owner never asks itself, so K=10 needs 10 others.
            extra_owner = agents.spawn()
            agents.wait_converged(time.time() + 60.0)
            if args.light_count > 0:
                # The same deliveries one at a time, probes as before: an unloaded cluster.
                light = run_throughput(
                    agents, [extra_owner], count=args.light_count, window=1,
                    probe_rate=args.probe_rate, timeout=args.timeout,
                )  # fmt: skip
                out["light"] = light
                log(
                    f"  {store}/light: one at a time, latency p50 {light['latency_ms']['p50']} "
                    f"ms p99 {light['latency_ms']['p99']} ms; due→dispatched p99 "
                    f"{light['due']['owner_p99_max_ms']} ms"
                )
            if args.repeats > 0:
                serf_dir = os.path.join(work, "serf")
                os.makedirs(serf_dir)
                serf = SerfAgents(reg, serf_dir, args.agents)
                serf.wait_converged(time.time() + 30.0)
                out["k10"] = run_k10(agents, extra_owner, serf, args.repeats)
                k = out["k10"]
                log(
                    f"  {store}: K=10 covey {k['covey']['median_ms']} ms, Serf handler "
                    f"{k['serf_handler']['median_ms']} ms, Serf RPC {k['serf_rpc']['median_ms']} ms"
                )
        finally:
            if serf is not None:
                serf.close()
            if agents is not None:
                agents.close()
            if redis is not None:
                redis.close()
    return out


def _f(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| store | owners | complete | deliveries/s | latency p50 (ms) | latency p99 (ms) "
        "| due→dispatched p50 / p99 / max (ms, owners' info) | probe's end seen late, p99 (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for store, per in results.items():
        for layout, r in per.items():
            if layout == "k10":
                continue
            due = r["due"]
            if due["probes"]:
                late = (
                    f"{due['owner_p50_median_ms']} / {due['owner_p99_max_ms']} / "
                    f"{due['owner_max_ms']} ({due['owner_samples']} due)"
                )
                seen = str(due["seen_outside_ms"]["p99"])
            else:
                late = seen = "(no probes)"
            lines.append(
                f"| {store} | {layout} ({len(r['owners'])}), window {r['window']} "
                f"| {r['complete']}/{r['requested']} | {_f(r['per_s'])} "
                f"| {r['latency_ms']['p50']} | {r['latency_ms']['p99']} | {late} | {seen} |"
            )
    lines += [
        "",
        "| K=10, all answered | median (ms) | p99 = max (ms) | covey/Serf (median) |",
        "|---|---|---|---|",
    ]
    for store, per in results.items():
        k = per.get("k10")
        if not k:
            continue
        for who, label in (
            ("covey", f"covey ({store}), 1 stage {k['k']}:any"),
            ("serf_handler", "Serf query, handler `echo ok`"),
            ("serf_rpc", "Serf query, RPC responders"),
        ):
            ratio = "" if who == "covey" else _f(k.get(f"ratio_vs_{who}"), 3)
            miss = f" ({k[who]['missing']} incomplete)" if k[who]["missing"] else ""
            lines.append(
                f"| {label}{miss} | {k[who]['median_ms']} | {k[who]['p99_ms']} | {ratio} |"
            )
    lines += ["", *verdicts(results)]
    return "\n".join(lines)


def verdicts(results: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's two goals, as measured: PASS or MISS with the figure."""
    out = []
    for store, per in results.items():
        for layout, r in per.items():
            due = r.get("due", {})
            if layout == "k10" or not due.get("probes"):
                continue
            p99 = due.get("owner_p99_max_ms")
            ok = p99 is not None and p99 <= 100.0
            out.append(
                f"due→dispatched p99 ≤ 100 ms, {store}/{layout}: {p99} ms "
                f"{'PASS' if ok else 'MISS'}"
            )
        k = per.get("k10")
        if k:
            ratios = [k.get(f"ratio_vs_{w}") for w in ("serf_handler", "serf_rpc")]
            worst = max((x for x in ratios if x is not None), default=None)
            ok = worst is not None and worst <= 0.5
            out.append(
                f"K=10 all answered ≤ 0.5x Serf (median, vs the faster Serf), {store}: "
                f"{worst} {'PASS' if ok else 'MISS'}"
            )
    return out


def ensure_serf() -> bool:
    if shutil.which("serf") is None:
        log("serf missing: apt-get install -y serf")
        subprocess.run(["apt-get", "install", "-y", "-qq", "serf"], check=False, timeout=600)
    return shutil.which("serf") is not None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=10)
    ap.add_argument("--count", type=int, default=10_000, help="deliveries per store and layout")
    ap.add_argument("--window", type=int, default=100, help="deliveries in flight at most")
    ap.add_argument("--probe-rate", type=float, default=20.0, help="probe deliveries per second")
    ap.add_argument("--stores", nargs="+", choices=["sqlite", "redis"], default=["sqlite", "redis"])
    ap.add_argument("--owners", nargs="+", choices=["one", "spread"], default=["one", "spread"])
    ap.add_argument("--repeats", type=int, default=20, help="K=10 samples per system and store")
    ap.add_argument(
        "--light-count", type=int, default=200, help="deliveries one at a time (unloaded latency)"
    )
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per throughput phase")
    ap.add_argument("--redis-fsync", choices=["always", "everysec"], default="always")
    ap.add_argument("--out", default="bench/results/deliveries.json")
    ap.add_argument("--keep", help="copy every agent's log to this directory")
    args = ap.parse_args(argv)
    if not 6 <= args.agents <= 63:
        ap.error("--agents: 6..63")
    if not 1 <= args.count <= 1_000_000 or not 1 <= args.window <= 10_000:
        ap.error("--count 1..1000000, --window 1..10000")
    if not 0 <= args.probe_rate <= 1000 or not 0 <= args.repeats <= 1000:
        ap.error("--probe-rate 0..1000, --repeats 0..1000")
    if not 0 <= args.light_count <= 100_000:
        ap.error("--light-count 0..100000")
    if args.repeats and not ensure_serf():
        print("deliveries_bench: serf is not installed and could not be", file=sys.stderr)
        return 2
    if "redis" in args.stores and shutil.which("redis-server") is None:
        print("deliveries_bench: redis-server is not installed", file=sys.stderr)
        return 2

    reg = ProcessRegistry()

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    meta: dict[str, Any] = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_at_start": os.getloadavg(),
        },
        "git": git_describe(),
        "serf": serf_version() if args.repeats else None,
        "args": vars(args),
    }
    results: dict[str, dict[str, Any]] = {}
    t_begin = time.time()
    tmp = tempfile.mkdtemp(prefix="cvydel-")
    code = 0
    try:
        for store in args.stores:
            log(f"{store}: {args.count} deliveries (3:any, then 2:any) per layout {args.owners}")
            results[store] = run_store(reg, tmp, store, args)
    except KeyboardInterrupt:
        log("interrupted; stopping every process")
        code = 130
    finally:
        reg.stop_all()
        if args.keep:
            shutil.copytree(
                tmp, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.sock", "*.key")
            )
            log(f"logs kept in {args.keep}")
        shutil.rmtree(tmp, ignore_errors=True)
    meta["elapsed_s"] = round(time.time() - t_begin, 1)
    meta["load_avg_at_end"] = os.getloadavg()
    text = table(results)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"meta": meta, "results": results, "table": text}, fh, indent=1)
    log(f"wrote {args.out}; done in {meta['elapsed_s']} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
