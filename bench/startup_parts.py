"""Pieces of ``startup_bench.py``: covey's two copies, where start-up goes, wake-ups.

* :func:`covey_copies` copies ``src/covey`` twice into the run's directory: once compiled
  with ``compileall`` (what a regular ``pip install .`` leaves behind), once as bare source
  run with ``PYTHONDONTWRITEBYTECODE=1`` (an editable install on a machine that never
  writes bytecode). The repository's own tree is never written to.
* :class:`ImportProfile` splits one start into the interpreter, the imports (by package,
  from ``-X importtime``), the rest until serving, and the first beacon.
* :func:`wakeups_per_s` counts an agent's event-loop wake-ups (``epoll_wait`` calls).
"""

from __future__ import annotations

import collections
import compileall
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

from agent_procs import ProcessRegistry, free_ports

#: How the benchmark runs the ``covey`` command from a copy (what the console script does).
COVEY_MAIN = "import sys; sys.argv[0] = 'covey'; from covey.cli import main; main()"
_IMPORT = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def covey_copies(src: str, work: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """``{"compiled": (argv0, env), "source": (argv0, env)}`` running covey from copies."""
    out: dict[str, tuple[list[str], dict[str, str]]] = {}
    for label in ("compiled", "source"):
        root = os.path.join(work, f"covey-{label}")
        shutil.copytree(
            os.path.join(src, "covey"),
            os.path.join(root, "covey"),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        if label == "compiled":
            compileall.compile_dir(os.path.join(root, "covey"), quiet=1)
        env = dict(os.environ, PYTHONPATH=root, PYTHONDONTWRITEBYTECODE="1")
        where = subprocess.run(
            [sys.executable, "-c", "import covey; print(covey.__file__)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not where.startswith(root):
            raise RuntimeError(f"covey imported from {where}, not from the copy {root}")
        out[label] = ([sys.executable, "-c", COVEY_MAIN], env)
    return out


def _median_wall(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    walls = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.monotonic() - t0)
    return statistics.median(walls)


def imports_by_package(text: str) -> list[tuple[str, float]]:
    """``-X importtime`` output → (package, self ms), largest first. covey's modules are
    grouped two levels deep (``covey.core.election``), the others by top-level name."""
    agg: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        m = _IMPORT.match(line)
        if not m:
            continue
        parts = m.group(4).split(".")
        depth = 3 if parts[0] == "covey" and len(parts) > 2 else 1
        agg[".".join(parts[:depth])] += int(m.group(1))
    return [(k, v / 1000) for k, v in agg.most_common()]


class ImportProfile:
    """Where covey's start-up time goes, for the compiled copy."""

    def __init__(self, reg: ProcessRegistry, work: str, covey: tuple[list[str], dict[str, str]]):
        self.reg = reg
        self.work = work
        self.argv0, self.env = covey

    def _agent_argv(self, tag: str) -> tuple[list[str], str, int]:
        port, mport = free_ports(2)
        sock = os.path.join(self.work, f"profile-{tag}.sock")
        argv = [*self.argv0, "agent", "--name", "p", "--cluster", f"profile-{os.getpid()}"]
        argv += ["--bind", f"127.0.0.1:{port}", "--interface", "127.0.0.1"]
        argv += ["--multicast", f"239.192.77.1:{mport}", "--control", sock]
        argv += ["--key-file", os.path.join(self.work, "covey.key")]
        argv += ["--data-dir", os.path.join(self.work, f"profile-{tag}")]
        return argv, sock, mport

    def run(self, runs: int) -> dict[str, Any]:
        """Phases (medians over ``runs``) and the imports of one start, by package."""
        from startup_bench import _answers_control, start_once

        interp = _median_wall([sys.executable, "-c", "pass"], runs)
        lean = (
            "import sys; sys.modules['cffi'] = None; sys.modules['ssl'] = None; "
            "import covey.cli.quick, covey.cli.agent_start, covey.runtime.process"
        )
        imports = _median_wall([sys.executable, "-c", lean], runs, self.env) - interp
        starts = []
        for r in range(runs):
            argv, sock, mport = self._agent_argv(f"s{r}")
            starts.append(
                start_once(
                    self.reg,
                    argv,
                    lambda _p, s=sock: _answers_control(s),
                    env=self.env,
                    beacon_port=mport,
                )
            )
        serving = statistics.median(s["wall_s"] for s in starts if s["wall_s"] is not None)
        beacons = [s["first_beacon_s"] for s in starts if s["first_beacon_s"] is not None]
        phases = {
            "interpreter (python -c pass)": interp,
            "imports of the agent (covey.runtime.process)": imports,
            "the rest until serving (options, bind, ...)": serving - interp - imports,
            "exec -> serving (control socket answers)": serving,
            "exec -> first discovery beacon": statistics.median(beacons) if beacons else None,
        }
        # One start with -X importtime: the agent's imports, grouped by package.
        argv, sock, _ = self._agent_argv("importtime")
        err = os.path.join(self.work, "importtime-agent.txt")
        with open(err, "wb") as fh:
            start_once(
                self.reg,
                argv,
                lambda _p: _answers_control(sock),
                env=dict(self.env, PYTHONPROFILEIMPORTTIME="1"),
                stderr=fh,
            )
        with open(err) as fh:
            agent = imports_by_package(fh.read())
        cli = subprocess.run(
            [*self.argv0, "members", "--json", "--control", sock],
            env=dict(self.env, PYTHONPROFILEIMPORTTIME="1"),
            capture_output=True,
            text=True,
        ).stderr
        return {
            "phases": phases,
            "imports": {"agent": agent, "members --json": imports_by_package(cli)},
        }


def wakeups_per_s(pid: int, seconds: float) -> float | None:
    """``epoll_wait`` calls per second of ``pid`` (all threads) over ``seconds``: each is
    one wake-up of its event loop (strace -c; None without strace)."""
    path = f"/tmp/covey-wakeups-{os.getpid()}-{pid}.txt"
    argv = ["strace", "-f", "-c", "-e", "trace=epoll_wait,epoll_pwait", "-o", path]
    try:
        tr = subprocess.Popen(
            [*argv, "-p", str(pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None
    time.sleep(seconds)
    tr.send_signal(signal.SIGINT)
    tr.wait(timeout=10)
    calls = 0
    try:
        with open(path) as fh:
            for line in fh:
                f = line.split()
                if len(f) >= 5 and f[-1] in ("epoll_wait", "epoll_pwait"):
                    calls += int(f[3])
    finally:
        os.unlink(path)
    return calls / seconds
