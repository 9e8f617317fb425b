"""Lab benchmark: covey beside HashiCorp Serf on the same namespace hosts under 0/5/10 % loss.

    .venv/bin/python bench/lab_bench.py --nodes 5 --loss 0 5 10 --window 60 \\
        --out bench/results/lab_bench.json --plot docs/lab_bench.png

For every loss level and every system, in one run, on a fresh lab of N hosts (network
namespaces on one bridge; see docs/lab.md) whose every host drops ``loss`` % of what
arrives on its eth0 (nft ``numgen random``):

1. **join**: host 1's agent starts; once it serves, the N-1 others start at once, each told
   to join host 1 (covey ``--no-multicast --join``, Serf ``-retry-join``, so both use the
   same mechanism). Figure: seconds from that start until every agent sees all N alive
   (covey: its member list, polled every 0.1 s; Serf: its ``EventMemberJoin`` log lines).
2. **false failures**: for ``--window`` seconds nothing is done; every *failed* verdict
   about a live node is a false failure (covey: ``member-failed`` events; Serf:
   ``EventMemberFailed`` lines). Suspicions are counted too (covey: ``member-suspect``;
   Serf: memberlist's ``Suspect ... has failed`` lines).
3. **crash**: kill -9 of host N's agent. Figure: seconds until each other agent marks it
   failed (median and max over observers). covey treats a refused TCP connection as proof
   of death, which a crashed process on a live host produces; so also:
4. **host loss**: host N-1's network drops every packet (no RST, no ICMP). Figure: seconds
   until each remaining agent marks it failed — the pure SWIM detection path of both.

Serf runs with ``-profile=lan`` (probe 1 s, timeout 0.5 s, suspicion multiplier 4 — the
same timings as covey's defaults), encryption on, no mDNS. covey/Serf ratios are printed
(below 1: covey faster/fewer). Everything stays inside the lab's namespaces; all processes
are stopped by PID and every namespace deleted, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_serf import _KINDS, _MEMBER, serf_version

from covey.lab import (
    PORT,
    Faults,
    Lab,
    LabCluster,
    cleanup_run,
    dead_network,
    loss_at,
    unavailable_reason,
)
from covey.lab.agents import spawn_in

DEADLINE_S = 60.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait(pred: Callable[[], bool], timeout: float, poll: float = 0.1) -> float | None:
    """Seconds until ``pred()`` held, or None at ``timeout``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(poll)
    return None


def _summary(delays: Sequence[float | None]) -> dict[str, Any]:
    got = [d for d in delays if d is not None]
    return {
        "median": statistics.median(got) if got else None,
        "max": max(got) if len(got) == len(delays) and got else None,
        "missed": len(delays) - len(got),
    }


def _crash_and_host_loss(
    lab: Lab,
    faults: Faults,
    names: list[str],
    kill: Callable[[str], None],
    failed_after: Callable[[str, str, float], float | None],
) -> dict[str, Any]:
    """kill -9 the last host's agent, then cut the next host's network; per survivor, the
    seconds until it reported each one failed (``failed_after(observer, victim, t)``)."""

    def detect(victim: str, observers: list[str], t_fault: float) -> list[float | None]:
        wait(
            lambda: all(failed_after(o, victim, t_fault) is not None for o in observers),
            DEADLINE_S,
            0.2,
        )
        return [failed_after(o, victim, t_fault) for o in observers]

    crash_victim, net_victim = names[-1], names[-2]
    t_kill = time.time()
    kill(crash_victim)
    crash = detect(crash_victim, names[:-1], t_kill)
    t_cut = time.time()
    faults.set("netdown", dead_network(lab.host(net_victim)))
    hostloss = detect(net_victim, names[:-2], t_cut)
    return {"crash": _summary(crash), "host_loss": _summary(hostloss)}


# ----------------------------------------------------------------------------- covey


def run_covey(lab: Lab, faults: Faults, window: float, workdir: Path) -> dict[str, Any]:
    names = [h.name for h in lab.hosts]
    cluster = LabCluster(lab, workdir=workdir, record=True, name="bench")
    try:
        seed = lab.hosts[0]
        cluster.start_all(["--no-multicast"], hosts=[seed])
        t0 = time.monotonic()
        others = lab.hosts[1:]
        cluster.start_all(["--no-multicast", "--join", f"{seed.addr}:{PORT}"], hosts=others)
        # start_all returned: every agent answers on its control socket ("serving").
        ok = wait(lambda: cluster.converged(names), DEADLINE_S)
        join = None if ok is None else time.monotonic() - t0
        join_ready = ok
        rec = cluster.recorder
        assert rec is not None
        t_win = time.time()
        time.sleep(window)  # the observation window itself (a benchmark, not a test)
        false_failed = sum(len(rec.member_events(o, "member-failed", since=t_win)) for o in names)
        suspects = sum(len(rec.member_events(o, "member-suspect", since=t_win)) for o in names)

        def failed_after(o: str, victim: str, t_fault: float) -> float | None:
            evs = rec.member_events(o, "member-failed", victim, since=t_fault - 1)
            return float(evs[0]["time"]) - t_fault if evs else None

        return {
            "join_s": join,
            "join_after_serving_s": join_ready,
            "false_failures": false_failed,
            "suspicions": suspects,
            **_crash_and_host_loss(
                lab, faults, names, lambda n: cluster.agents[n].kill(), failed_after
            ),
        }
    finally:
        cluster.close()


# ----------------------------------------------------------------------------- Serf


class SerfLab:
    """One ``serf agent`` per lab host; member events parsed from each agent's log."""

    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.lab = lab
        self.dir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.events: dict[str, list[tuple[float, str, str]]] = {h.name: [] for h in lab.hosts}
        self.ready: dict[str, float] = {}
        self.lock = threading.Lock()
        self.config = workdir / "serf.json"
        self.config.write_text(json.dumps({"leave_on_terminate": True}))
        self.keyring = workdir / "keyring.json"
        self.keyring.write_text(json.dumps([base64.b64encode(os.urandom(32)).decode()]))

    def start(self, name: str, join: str | None) -> None:
        h = self.lab.host(name)
        argv = [
            "serf",
            "agent",
            f"-node={name}",
            f"-bind={h.addr}:{PORT}",
            "-rpc-addr=127.0.0.1:7373",  # the host namespace's own loopback
            "-profile=lan",
            f"-keyring-file={self.keyring}",
            f"-config-file={self.config}",
            "-log-level=info",
        ]
        if join:
            argv += [f"-retry-join={join}", "-retry-interval=1s"]
        logf = self.dir / f"{name}.log"
        proc = spawn_in(h, argv, subprocess.PIPE)
        self.procs[name] = proc
        threading.Thread(target=self._read, args=(name, proc, logf), daemon=True).start()

    def _read(self, name: str, proc: subprocess.Popen[bytes], logf: Path) -> None:
        assert proc.stdout is not None
        with logf.open("w") as fh:
            for raw in proc.stdout:
                t = time.time()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                fh.write(f"{t:.6f} {line}\n")
                with self.lock:
                    if "Serf agent running!" in line:
                        self.ready[name] = t
                    m = _MEMBER.search(line)
                    if m:
                        self.events[name].append((t, _KINDS[m.group(1)], m.group(2)))
                    elif "memberlist: Suspect" in line:
                        self.events[name].append(
                            (t, "suspect", line.split("Suspect ")[1].split()[0])
                        )

    def alive(self, name: str) -> set[str]:
        state: dict[str, str] = {name: "alive"}
        with self.lock:
            for _, kind, who in self.events[name]:
                if kind in ("alive", "failed", "left"):
                    state[who] = kind
        return {n for n, s in state.items() if s == "alive"}

    def count(self, kind: str, since: float) -> int:
        with self.lock:
            return sum(
                1 for evs in self.events.values() for t, k, _ in evs if k == kind and t >= since
            )

    def first(self, observer: str, kind: str, who: str, since: float) -> float | None:
        with self.lock:
            for t, k, w in self.events[observer]:
                if k == kind and w == who and t >= since:
                    return t
        return None

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def run_serf(lab: Lab, faults: Faults, window: float, workdir: Path) -> dict[str, Any]:
    names = [h.name for h in lab.hosts]
    serf = SerfLab(lab, workdir)
    try:
        seed = lab.hosts[0]
        serf.start(seed.name, None)
        wait(lambda: seed.name in serf.ready, DEADLINE_S)
        t0 = time.monotonic()
        for h in lab.hosts[1:]:
            serf.start(h.name, f"{seed.addr}:{PORT}")
        ok = wait(lambda: all(serf.alive(n) == set(names) for n in names), DEADLINE_S)
        join = None if ok is None else time.monotonic() - t0
        with serf.lock:
            last_ready = max(serf.ready.values(), default=None)
        join_ready = (
            None if ok is None or last_ready is None else max(0.0, time.time() - last_ready)
        )
        t_win = time.time()
        time.sleep(window)  # the observation window itself (a benchmark, not a test)
        false_failed = serf.count("failed", t_win)
        suspects = serf.count("suspect", t_win)

        def failed_after(o: str, victim: str, t_fault: float) -> float | None:
            t = serf.first(o, "failed", victim, t_fault)
            return None if t is None else t - t_fault

        return {
            "join_s": join,
            "join_after_serving_s": join_ready,
            "false_failures": false_failed,
            "suspicions": suspects,
            **_crash_and_host_loss(lab, faults, names, serf.kill, failed_after),
        }
    finally:
        serf.close()


# ----------------------------------------------------------------------------- driver


def one(system: str, nodes: int, loss: int, window: float, workdir: Path) -> dict[str, Any]:
    with Lab(nodes) as lab:
        faults = Faults(lab)
        if loss:
            faults.set("loss", [r for h in lab.hosts for r in loss_at(h, loss)])
        d = workdir / f"{system}-loss{loss}"
        d.mkdir(parents=True, exist_ok=True)
        run = run_covey if system == "covey" else run_serf
        result = run(lab, faults, window, d)
        result["dropped_packets"] = sum(faults.dropped(h) for h in lab.hosts)
        return result


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def table(results: dict[str, dict[str, dict[str, Any]]], losses: Sequence[int]) -> str:
    rows = [
        "| loss | figure | covey | Serf | covey/Serf |",
        "| --- | --- | --- | --- | --- |",
    ]
    for loss in losses:
        c, s = results["covey"][str(loss)], results["serf"][str(loss)]
        figs: list[tuple[str, float | None, float | None, int]] = [
            ("join convergence from launch (s)", c["join_s"], s["join_s"], 2),
            (
                "join convergence once all serve (s)",
                c["join_after_serving_s"],
                s["join_after_serving_s"],
                2,
            ),
            ("crash detection, median (s)", c["crash"]["median"], s["crash"]["median"], 2),
            ("crash detection, max (s)", c["crash"]["max"], s["crash"]["max"], 2),
            (
                "host loss detection, median (s)",
                c["host_loss"]["median"],
                s["host_loss"]["median"],
                2,
            ),
            ("host loss detection, max (s)", c["host_loss"]["max"], s["host_loss"]["max"], 2),
            ("false failures in the window", c["false_failures"], s["false_failures"], 0),
            ("suspicions in the window", c["suspicions"], s["suspicions"], 0),
        ]
        for label, cv, sv, digits in figs:
            cells = [f"{loss} %", label, _fmt(cv, digits), _fmt(sv, digits), _ratio(cv, sv)]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot(results: dict[str, dict[str, dict[str, Any]]], losses: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("join convergence from launch (s)", lambda r: r["join_s"]),
        ("crash detection, median (s)", lambda r: r["crash"]["median"]),
        ("host loss detection, median (s)", lambda r: r["host_loss"]["median"]),
        ("false failures", lambda r: r["false_failures"]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 3.8))
    width = 0.38
    for ax, (title, get) in zip(axes, panels, strict=True):
        for k, system in enumerate(("covey", "serf")):
            ys = [get(results[system][str(loss)]) or 0 for loss in losses]
            xs = [i + (k - 0.5) * width for i in range(len(losses))]
            ax.bar(xs, ys, width, label="covey" if system == "covey" else "Serf")
        ax.set_xticks(range(len(losses)), [f"{loss} %" for loss in losses])
        ax.set_xlabel("loss at every host")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0, top=max(1.0, ax.get_ylim()[1]))
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--loss", type=int, nargs="+", default=[0, 5, 10])
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--out", type=Path, default=Path("bench/results/lab_bench.json"))
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--keep", type=Path, default=None, help="keep every agent's log here")
    args = p.parse_args(argv)

    reason = unavailable_reason()
    if reason is not None:
        print(f"lab_bench: cannot run: {reason}", file=sys.stderr)
        return 2
    if shutil.which("serf") is None:
        log("serf missing: apt-get install -y serf")
        subprocess.run(["apt-get", "install", "-y", "-qq", "serf"], check=False)
        if shutil.which("serf") is None:
            print("lab_bench: serf is not installed and could not be", file=sys.stderr)
            return 2

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="cvybench-"))
    results: dict[str, dict[str, dict[str, Any]]] = {"covey": {}, "serf": {}}
    t_start = time.time()
    try:
        for loss in args.loss:
            for system in ("covey", "serf"):
                log(f"{system}, {args.nodes} hosts, {loss} % loss")
                r = one(system, args.nodes, loss, args.window, workdir)
                results[system][str(loss)] = r
                log(f"  {json.dumps(r)}")
    finally:
        cleanup_run()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    text = table(results, args.loss)
    print(text)
    meta = {
        "nodes": args.nodes,
        "window_s": args.window,
        "serf": serf_version(),
        "seconds": round(time.time() - t_start),
        "command": " ".join(sys.argv),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    log(f"results in {args.out}; took {meta['seconds']} s")
    if args.plot is not None:
        plot(results, args.loss, args.plot)
        log(f"plot in {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
