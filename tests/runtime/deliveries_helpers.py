"""Shared pieces of the deliveries' real-process tests: backends, handlers, run logs.

Every test that takes the ``backend`` fixture runs twice: on SQLite (each agent's own
``--data-dir``) and on a real ``redis-server`` (``--scheduler redis://...``) started on
a free loopback port with its append-only file in the test's temp directory.

The handler command of each agent appends one line per run to its own log
(``<workdir>/<name>.runs``: ``ID STAGE``), so a test counts handler runs per node
across restarts, and prints ``ok-<name>`` as the receipt's result.
"""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covey.runtime.localcluster import AgentProcess, LocalCluster, wait_until

from .redis_server import RedisServer

#: Generous bound of every wait in these tests (conditions, never fixed sleeps).
TIMEOUT = 60.0
#: Timings that make failure detection take a few seconds, not tens.
FAST = ["--probe-interval", "0.5", "--probe-timeout", "0.25", "--gossip-interval", "0.1"]


@dataclass
class Backend:
    """Where the agents keep their deliveries."""

    name: str
    redis: RedisServer | None = None

    def args(self, workdir: Path, node: str) -> list[str]:
        """The agent flags of this backend for ``node`` (its data dir is kept either way)."""
        out = ["--data-dir", str(workdir / node)]
        if self.redis is not None:
            out += ["--scheduler", self.redis.url]
        return out


def handler(workdir: Path, node: str, *, sleep: float = 0.0, refuse: bool = False) -> str:
    """A ``--delivery-handler`` command that logs each run (see the module docstring)."""
    log = shlex.quote(str(workdir / f"{node}.runs"))
    nap = f"sleep {sleep}; " if sleep else ""
    end = "echo refused-by-test >&2; exit 3" if refuse else f"echo ok-{node}"
    return f'{nap}cat >/dev/null; echo "$COVEY_DELIVERY_ID $COVEY_DELIVERY_STAGE" >> {log}; {end}'


def runs(workdir: Path, node: str) -> Counter[tuple[str, int]]:
    """(delivery id, stage) → handler runs on ``node`` so far."""
    path = workdir / f"{node}.runs"
    out: Counter[tuple[str, int]] = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            item, stage = line.split()
            out[(item, int(stage))] += 1
    return out


def start(
    cluster: LocalCluster,
    backend: Backend,
    names: list[str],
    *,
    extra: dict[str, list[str]] | None = None,
    handlers: dict[str, str] | None = None,
    seen_by: AgentProcess | None = None,
) -> list[AgentProcess]:
    """Start agents ``names`` on ``backend`` with logging handlers.

    Waits until the whole cluster converged, or with ``seen_by`` (agents joining a
    cluster where some member is paused or foreign) until that agent lists every new
    one alive.
    """
    w = cluster.workdir
    agents = []
    for n in names:
        cmd = (handlers or {}).get(n, handler(w, n))
        args = [*FAST, *backend.args(w, n), "--delivery-handler", cmd, *(extra or {}).get(n, [])]
        agents.append(cluster.spawn(n, extra=args, wait=False))
    for a in agents:
        cluster.wait_ready(a)
    if seen_by is None:
        wait_until(lambda: cluster.converged(), TIMEOUT, what="the cluster to converge")
    else:
        wait_until(lambda: alive(seen_by, names), TIMEOUT, what=f"{seen_by.name} to see {names}")
    return agents


def alive(agent: AgentProcess, names: list[str]) -> bool:
    """True when ``agent`` lists every one of ``names`` alive."""
    states = agent.states()
    return all(states.get(n) == "alive" for n in names)


def show(agent: AgentProcess, item: str) -> dict[str, Any]:
    """``covey deliver show --json`` of ``item`` on ``agent``."""
    result: dict[str, Any] = agent.client(timeout=10).request("deliver_show", id=item)
    return result


def ended(agent: AgentProcess, item: str) -> dict[str, Any] | None:
    """The delivery once it ended, else None."""
    d = show(agent, item)
    return d if d["state"] in ("complete", "failed", "cancelled") else None


def counters(agent: AgentProcess) -> dict[str, int]:
    """The deliveries' counters of ``agent`` (``covey info``)."""
    info: dict[str, Any] = agent.client(timeout=10).info()
    return dict(info["deliveries"]["counters"])
