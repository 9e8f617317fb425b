"""kinship side of ``startup_bench.py``: N processes of PyPI ``kinship`` (0.4.0) on loopback.

kinship is a library (SWIM + Lifeguard in Rust, an asyncio API) with no agent of its own,
so each process here is the smallest agent one can write with it: ``Config.lan`` (its LAN
preset, encrypted with one shared key, as covey and Serf are), bound to 127.0.0.1, the
seed (agent 0) as its only seed. Agent 0 lists itself as a seed too, which kinship skips
(its README: "A seed that is down or is the node itself is skipped"). It prints one line
when started and one per membership event::

    ready
    event alive k3
    event failed k3

Run as a script it is that agent (``python agent_kinship.py NAME PORT SEED KEY``);
imported, :class:`KinshipCluster` starts and watches N of them like the covey and Serf
clusters of ``agent_bench.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the agent process itself imports nothing of the benchmark's
    from agent_procs import ProcessRegistry

_STATE = {
    "MemberJoined": "alive",
    "MemberRecovered": "alive",
    "MemberSuspect": "suspect",
    "MemberDead": "failed",
    "MemberLeft": "left",
}


async def _agent(name: str, port: int, seed: str, key: str) -> None:
    import kinship

    cfg = kinship.Config.lan(name=name, bind=f"127.0.0.1:{port}", seeds=[seed], keys=[key])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with kinship.Cluster(cfg) as cluster:
        print("ready", flush=True)
        for m in cluster.members():
            print(f"event alive {m.name}", flush=True)
        events = cluster.events()

        async def watch() -> None:
            async for event in events:
                state = _STATE.get(type(event).__name__)
                member = getattr(event, "member", None)
                if state is not None and member is not None:
                    print(f"event {state} {member.name}", flush=True)

        task = asyncio.create_task(watch())
        await stop.wait()
        task.cancel()


def kinship_version() -> str:
    """The installed kinship distribution's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"kinship {version('kinship')}"
    except PackageNotFoundError:
        return "kinship (not installed)"


class KinshipCluster:
    """N kinship agents; agent 0 is the seed of every agent."""

    system = "kinship"

    def __init__(self, reg: ProcessRegistry, n: int, workdir: str, *, deadline_s: float) -> None:
        import kinship
        from agent_procs import EventHub, free_ports

        self.reg = reg
        self.n = n
        self.dir = workdir
        self.deadline_s = deadline_s
        self.names = [f"k{i}" for i in range(n)]
        self.hub = EventHub(self.names)
        self.ports = free_ports(n)
        self.key = kinship.generate_key() if hasattr(kinship, "generate_key") else _key()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ready_at: list[float | None] = [None] * n
        self.t_start = 0.0
        self.logs = [open(os.path.join(workdir, f"k{i}.log"), "w") for i in range(n)]  # noqa: SIM115

    def _on_line(self, i: int, t: float, line: str) -> None:
        if line == "ready" and self.ready_at[i] is None:
            self.ready_at[i] = t
            self.hub.record(i, t, "ready", self.names[i])
            return
        parts = line.split()
        if len(parts) == 3 and parts[0] == "event":
            self.hub.record(i, t, parts[1], parts[2])

    def _spawn(self, i: int) -> None:
        from agent_procs import start_reader

        argv = [
            sys.executable,
            os.path.abspath(__file__),
            self.names[i],
            str(self.ports[i]),
            f"127.0.0.1:{self.ports[0]}",
            self.key,
        ]
        proc = self.reg.spawn(argv, cwd=self.dir)
        self.procs.append(proc)
        assert proc.stdout is not None
        start_reader(proc.stdout, lambda t, ln, i=i: self._on_line(i, t, ln), log=self.logs[i])

    def start(self, *, at_once: bool = False) -> None:
        """Start every agent at once (``at_once``), or the seed first, then the others."""
        self.t_start = time.time()
        for i in range(self.n):
            self.hub.record(i, self.t_start, "alive", self.names[i])  # an agent knows itself
        if not at_once:
            self._spawn(0)
            self.hub.wait(
                lambda: self.ready_at[0] is not None or self.procs[0].poll() is not None,
                time.time() + self.deadline_s,
            )
        for i in range(0 if at_once else 1, self.n):
            self._spawn(i)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def close(self) -> None:
        for p in self.procs:
            self.reg.stop(p, grace=2.0)
        for fh in self.logs:
            fh.close()


def _key() -> str:
    from kinship import _kinship

    return str(_kinship.generate_key())


if __name__ == "__main__":
    name, port, seed, key = sys.argv[1:5]
    asyncio.run(_agent(name, int(port), seed, key))
