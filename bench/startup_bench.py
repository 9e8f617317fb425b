"""Start-up, CLI speed and idle cost: covey beside Serf and kinship, in the same run.

Reproduce (from the repository root, as root so that strace may attach)::

    apt-get install -y serf strace          # Debian's serf package (0.8.x)
    .venv/bin/pip install -q -e '.[dev]'    # covey + psutil; kinship 0.4.0 from PyPI
    .venv/bin/python bench/startup_bench.py --nodes 5 10 25 --out bench/results/startup.json

What it measures (every figure also as covey/other ratios; wall time and the CPU time
of the process, which a loaded machine disturbs less; the load average of each section):

1. **One agent, exec → serving**, ``--runs`` times each: covey's ``covey agent`` (serving:
   its control socket answers ``members``), the same with ``--http`` (serving: ``GET
   /v1/health`` answers), ``serf agent`` (its RPC port accepts) and a kinship agent
   (``Cluster`` started). covey runs from two copies of its package made for the run:
   one compiled with ``compileall`` (what ``pip install .`` leaves), one left as source
   with ``PYTHONDONTWRITEBYTECODE=1`` (an editable install on a machine that never
   writes bytecode: every start compiles every module).
2. **Where covey's start-up goes**: the interpreter (``python -c pass``), the imports
   (grouped by package from ``-X importtime``), the rest until serving (bind, identity,
   control socket) and the first discovery beacon (heard on the loopback group).
3. **The CLI**: ``covey members --json`` and the other common commands against a running
   agent, ``covey --help``; ``serf members -format=json`` against a running Serf.
4. **Join convergence from launch**, N agents started at once (no seed first), for
   ``--nodes``; then, in the same clusters, idle CPU per agent (scheduler run time over
   ``--idle-seconds``) and datagrams per second per node (strace, as agent_bench.py), and
   covey's event-loop wake-ups per second (``epoll_wait`` calls of one agent).

Network rule: every agent binds 127.0.0.1; covey's beacons stay on the loopback group
(``--interface 127.0.0.1``); Serf runs without mDNS; kinship has only its seed. Every
process started is stopped by its PID; every wait has a deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from agent_covey import CoveyCluster
from agent_kinship import KinshipCluster, kinship_version
from agent_procs import (
    IDLE_SETTLE_S,
    ProcessRegistry,
    _sched_ns,
    count_datagrams,
    cpu_rss_window,
    free_ports,
    git_describe,
)
from agent_serf import SerfCluster, serf_version
from startup_parts import ImportProfile, covey_copies, wakeups_per_s

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
JOIN_DEADLINE_S = 60.0
GROUP = "239.192.77.1"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


# --------------------------------------------------------------------------- one agent


def _answers_control(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(path)
            s.sendall(b'{"op": "members"}\n')
            return b'"ok"' in s.recv(65536)
    except OSError:
        return False


def _answers_http(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1.0) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _accepts_tcp(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _beacon_listener(port: int) -> socket.socket:
    """A socket that hears covey's discovery beacons on the loopback group."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((GROUP, port))
    mreq = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("127.0.0.1"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s.settimeout(0.001)
    return s


def start_once(
    reg: ProcessRegistry,
    argv: list[str],
    ready: Callable[[Any], bool],
    *,
    env: dict[str, str] | None = None,
    beacon_port: int | None = None,
    deadline_s: float = 20.0,
    stderr: Any = subprocess.STDOUT,
) -> dict[str, float | None]:
    """Spawn ``argv``; poll ``ready(proc)`` every ~2 ms; wall and CPU time at serving."""
    beacons = _beacon_listener(beacon_port) if beacon_port else None
    first_beacon = None
    t0 = time.monotonic()
    proc = reg.spawn(argv, env=env, stdout=subprocess.PIPE, stderr=stderr)
    wall = cpu = None
    try:
        while time.monotonic() - t0 < deadline_s and proc.poll() is None:
            if beacons is not None and first_beacon is None:
                with contextlib.suppress(TimeoutError, BlockingIOError):
                    beacons.recv(2048)
                    first_beacon = time.monotonic() - t0
            if ready(proc):
                wall = time.monotonic() - t0
                ns = _sched_ns(proc.pid)
                cpu = None if ns is None else ns / 1e9
                break
            time.sleep(0.002)
        while beacons is not None and first_beacon is None and time.monotonic() - t0 < 5.0:
            with contextlib.suppress(TimeoutError, BlockingIOError):
                beacons.recv(2048)
                first_beacon = time.monotonic() - t0
    finally:
        if beacons is not None:
            beacons.close()
        reg.stop(proc, grace=2.0)
    return {"wall_s": wall, "cpu_s": cpu, "first_beacon_s": first_beacon}


def _line_ready(proc: Any) -> bool:
    import select

    assert proc.stdout is not None
    while select.select([proc.stdout], [], [], 0)[0]:
        line = proc.stdout.readline()
        if not line:
            return False
        if line.strip() == b"ready":
            return True
    return False


def bench_start(reg: ProcessRegistry, work: str, runs: int, covey: dict[str, Any]) -> dict:
    """Section 1: one agent, exec → serving, per system."""
    key = os.path.join(work, "covey.key")
    out: dict[str, Any] = {"load_before": load()}
    for label, (argv0, env) in covey.items():
        for http in (False, True):
            name = f"covey {label}" + (" --http" if http else "")
            samples = []
            for r in range(runs):
                port, mport, hport = free_ports(3)
                sock = os.path.join(work, f"start-{r}.sock")
                argv = [
                    *argv0,
                    "agent",
                    "--name",
                    "s",
                    "--cluster",
                    f"start-{os.getpid()}",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--interface",
                    "127.0.0.1",
                    "--multicast",
                    f"{GROUP}:{mport}",
                    "--key-file",
                    key,
                    "--control",
                    sock,
                    "--data-dir",
                    os.path.join(work, f"start-{label}-{r}"),
                ]
                if http:
                    argv += ["--http", f"127.0.0.1:{hport}"]

                def ready(_p: Any, sock: str = sock, hport: int = hport, http: bool = http) -> bool:
                    return _answers_http(hport) if http else _answers_control(sock)

                samples.append(start_once(reg, argv, ready, env=env, beacon_port=mport))
            out[name] = samples
    samples = []
    for _ in range(runs):
        port, rpc = free_ports(2)
        argv = ["serf", "agent", "-node=s", f"-bind=127.0.0.1:{port}"]
        argv.append(f"-rpc-addr=127.0.0.1:{rpc}")
        samples.append(start_once(reg, argv, lambda _p, rpc=rpc: _accepts_tcp(rpc)))
    out["serf"] = samples
    samples = []
    for _ in range(runs):
        (port,) = free_ports(1)
        here = os.path.dirname(os.path.abspath(__file__))
        argv = [sys.executable, os.path.join(here, "agent_kinship.py"), "k", str(port)]
        argv += [f"127.0.0.1:{port}", _kinship_key()]
        samples.append(start_once(reg, argv, _line_ready))
    out["kinship"] = samples
    out["load_after"] = load()
    return out


def _kinship_key() -> str:
    from kinship import _kinship

    return str(_kinship.generate_key())


# --------------------------------------------------------------------------- the CLI


def time_command(argv: list[str], runs: int, env: dict[str, str] | None = None) -> dict:
    """Wall and CPU (user+sys, os.wait4) of ``argv`` per run; exit statuses."""
    walls, cpus, codes = [], [], []
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        walls.append(time.monotonic() - t0)
        cpus.append(ru.ru_utime + ru.ru_stime)
        codes.append(p.returncode)
    return {"wall_s": med(walls), "cpu_s": med(cpus), "min_wall_s": min(walls), "codes": codes}


def bench_cli(reg: ProcessRegistry, work: str, runs: int, covey: dict[str, Any]) -> dict:
    """Section 3: the common commands against one running covey agent and one Serf."""
    out: dict[str, Any] = {"load_before": load()}
    argv0, env = covey["compiled"]
    c = CoveyCluster(reg, 1, work, covey=argv0, deadline_s=20, env=env)
    s = SerfCluster(reg, 1, work, deadline_s=20)
    try:
        c.start()
        s.start()
        c.hub.wait(lambda: c.monitor_at[0] is not None, time.time() + 20)
        s.hub.wait(lambda: s.ready_at[0] is not None, time.time() + 20)
        for label, (argv0, env) in covey.items():
            target = ["--control", c.socks[0]]
            for cmd in (
                ["members", "--json"],
                ["info", "--json"],
                ["names", "--json"],
                ["versions", "--json"],
                ["facts", "--json"],
                ["set", "bench", "1"],
                ["tags", "--set", "bench=1"],
                ["members"],
                ["--help"],
            ):
                argv = [*argv0, *cmd, *(target if cmd[0] != "--help" else [])]
                out[f"covey {label}: {' '.join(cmd)}"] = time_command(argv, runs, env)
        rpc = f"-rpc-addr=127.0.0.1:{s.rpc_ports[0]}"
        out["serf members -format=json"] = time_command(
            ["serf", "members", "-format=json", rpc], runs
        )
        out["serf --help"] = time_command(["serf", "--help"], runs)
    finally:
        c.close()
        s.close()
    out["load_after"] = load()
    return out


# --------------------------------------------------------------------------- clusters


def bench_cluster(cluster: Any, idle_s: float, packet_s: float, work: str) -> dict[str, Any]:
    """Section 4: join from launch (every agent at once), then idle CPU and datagrams."""
    out: dict[str, Any] = {"load_before": load()}
    try:
        cluster.start(at_once=True)
        hub = cluster.hub
        hub.wait(
            lambda: (
                all(v.full_at is not None for v in hub.views)
                or any(p.poll() is not None for p in cluster.procs)
            ),
            time.time() + JOIN_DEADLINE_S,
        )
        full = [v.full_at for v in hub.views]
        out["converged"] = all(f is not None for f in full)
        out["join_s"] = (
            max(f for f in full if f is not None) - cluster.t_start if out["converged"] else None
        )
        ready = [r for r in cluster.ready_at if r is not None]
        out["last_ready_s"] = max(ready) - cluster.t_start if ready else None
        if not out["converged"]:
            return out
        time.sleep(IDLE_SETTLE_S)
        usage = cpu_rss_window(cluster.pids(), idle_s)
        cpus = [u["cpu_percent"] for u in usage.values()]
        out["idle_cpu_percent_mean"] = statistics.mean(cpus)
        # The busiest agent too: a mean can hide one agent that did not settle.
        out["idle_cpu_percent_max"] = max(cpus)
        out["rss_mib_mean"] = statistics.mean(u["rss_mib"] for u in usage.values())
        if cluster.system.startswith("covey"):
            out["wakeups_per_s"] = wakeups_per_s(cluster.pids()[-1], 5.0)
        if packet_s > 0:
            pk = count_datagrams(cluster.pids(), packet_s, work)
            per = [pk["per_pid"].get(pid, 0) / pk["window_s"] for pid in cluster.pids()]
            out["datagrams_per_node_per_s"] = statistics.mean(per)
            out["outside_loopback"] = pk["outside_loopback"]
    finally:
        cluster.close()
        out["load_after"] = load()
    return out


# --------------------------------------------------------------------------- report


def report(res: dict[str, Any]) -> str:
    lines: list[str] = []
    st = res.get("start")
    if st:
        lines += [
            "",
            f"One agent, exec -> serving (load {st['load_before']} -> {st['load_after']})",
        ]
        lines += [
            "| system | wall median (s) | CPU median (s) | first beacon (s) | covey/Serf "
            "| covey/kinship |",
            "|---|---|---|---|---|---|",
        ]
        serf = med([s["wall_s"] for s in st["serf"] if s["wall_s"] is not None])
        kin = med([s["wall_s"] for s in st["kinship"] if s["wall_s"] is not None])
        for name, samples in st.items():
            if not isinstance(samples, list):
                continue
            w = med([s["wall_s"] for s in samples if s["wall_s"] is not None])
            c = med([s["cpu_s"] for s in samples if s["cpu_s"] is not None])
            b = med([s["first_beacon_s"] for s in samples if s.get("first_beacon_s") is not None])
            rs = ratio(w, serf) if name.startswith("covey") else "-"
            rk = ratio(w, kin) if name.startswith("covey") else "-"
            lines.append(f"| {name} | {fmt(w)} | {fmt(c)} | {fmt(b)} | {rs} | {rk} |")
    prof = res.get("profile")
    if prof:
        lines += ["", "Where covey's start-up goes (compiled copy, medians)"]
        for k, v in prof["phases"].items():
            lines.append(f"  {k:<44} {fmt(v)} s")
        for label in ("agent", "members --json"):
            lines.append(f"  imports of `covey {label}` by package (self time, -X importtime, ms):")
            for pkg, ms in prof["imports"][label][:14]:
                lines.append(f"    {ms:7.1f}  {pkg}")
    cli = res.get("cli")
    if cli:
        lines += ["", f"The CLI (load {cli['load_before']} -> {cli['load_after']})"]
        lines += ["| command | wall median (s) | CPU median (s) | vs serf members |"]
        lines += ["|---|---|---|---|"]
        serf = cli["serf members -format=json"]["wall_s"]
        for name, r in cli.items():
            if isinstance(r, dict):
                w, c = r["wall_s"], r["cpu_s"]
                lines.append(f"| {name} | {fmt(w)} | {fmt(c)} | {ratio(w, serf)} |")
    for n, systems in res.get("clusters", {}).items():
        lines += ["", f"N = {n}, every agent started at once"]
        lines += [
            "| system | join (s) | last serving (s) | idle CPU/agent, mean (max) (% core) "
            "| datagrams/node/s | wake-ups/s | load |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in systems.items():
            cells = [
                name,
                fmt(r.get("join_s")),
                fmt(r.get("last_ready_s")),
                f"{fmt(r.get('idle_cpu_percent_mean'))} ({fmt(r.get('idle_cpu_percent_max'))})",
                fmt(r.get("datagrams_per_node_per_s"), 2),
                fmt(r.get("wakeups_per_s"), 1),
                r["load_before"],
            ]
            lines.append("| " + " | ".join(cells) + " |")
        sf, kn = systems.get("serf", {}), systems.get("kinship", {})
        for variant in ("covey", "covey --no-election"):
            cv = systems.get(variant, {})
            join, cpu = cv.get("join_s"), cv.get("idle_cpu_percent_mean")
            dgrams = cv.get("datagrams_per_node_per_s")
            lines.append(
                f"{variant}: /Serf join {ratio(join, sf.get('join_s'))}, idle CPU "
                f"{ratio(cpu, sf.get('idle_cpu_percent_mean'))}, datagrams "
                f"{ratio(dgrams, sf.get('datagrams_per_node_per_s'))}; /kinship join "
                f"{ratio(join, kn.get('join_s'))}, idle CPU "
                f"{ratio(cpu, kn.get('idle_cpu_percent_mean'))}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[5, 10, 25])
    ap.add_argument("--runs", type=int, default=7, help="runs of each start-up and command")
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--packet-seconds", type=float, default=5.0)
    ap.add_argument("--sections", nargs="+", default=["start", "profile", "cli", "clusters"])
    ap.add_argument("--out", help="write JSON results here")
    ap.add_argument("--src", default=SRC, help="the src/ directory whose covey is measured")
    args = ap.parse_args(argv)
    if shutil.which("serf") is None:
        print("serf not found (apt-get install serf)", file=sys.stderr)
        return 2
    reg = ProcessRegistry()
    res: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPU, Python {platform.python_version()}",
        "commit": git_describe(),
        "src": os.path.abspath(args.src),
        "versions": [serf_version(), kinship_version()],
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "load_at_start": load(),
    }
    with tempfile.TemporaryDirectory(prefix="covey-startup-") as work:
        from cryptography.fernet import Fernet

        with open(os.path.join(work, "covey.key"), "wb") as fh:
            fh.write(Fernet.generate_key() + b"\n")
        os.chmod(os.path.join(work, "covey.key"), 0o600)
        covey = covey_copies(args.src, work)
        try:
            if "start" in args.sections:
                log("one agent, exec -> serving")
                res["start"] = bench_start(reg, work, args.runs, covey)
            if "profile" in args.sections:
                log("where start-up goes")
                res["profile"] = ImportProfile(reg, work, covey["compiled"]).run(args.runs)
            if "cli" in args.sections:
                log("the CLI")
                res["cli"] = bench_cli(reg, work, args.runs, covey)
            if "clusters" in args.sections:
                res["clusters"] = {}
                for n in args.nodes:
                    systems: dict[str, Any] = {}
                    for name in ("covey", "covey --no-election", "serf", "kinship"):
                        log(f"N={n}: {name}")
                        d = tempfile.mkdtemp(dir=work)
                        if name.startswith("covey"):
                            argv0, env = covey["compiled"]
                            extra = tuple(name.split()[1:])
                            cl: Any = CoveyCluster(
                                reg, n, d, covey=argv0, deadline_s=30, env=env, extra=extra
                            )
                        elif name == "serf":
                            cl = SerfCluster(reg, n, d, deadline_s=30)
                        else:
                            cl = KinshipCluster(reg, n, d, deadline_s=30)
                        systems[name] = bench_cluster(cl, args.idle_seconds, args.packet_seconds, d)
                    res["clusters"][str(n)] = systems
        finally:
            reg.stop_all()
    res["load_at_end"] = load()
    text = report(res)
    print(f"{res['machine']}; commit {res['commit']}; {', '.join(res['versions'])}")
    print(f"load average at start {res['load_at_start']}, at end {res['load_at_end']}")
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
