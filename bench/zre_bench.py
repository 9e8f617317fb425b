"""ZRE mode: how fast a real pyre node and a covey agent discover each other.

Reproduce (from the repository root, as root: it makes a network namespace)::

    .venv/bin/pip install -q -e '.[dev]'          # covey + pyzmq + zeromq-pyre
    .venv/bin/python bench/zre_bench.py --rounds 10

One :class:`~covey.lab.LoopbackLab` namespace (only ``lo``, multicast routed on it) holds
one ``covey agent --zre`` and real pyre nodes (``zeromq-pyre``, :mod:`covey.lab.pyre_peer`).
Every time is on the host's wall clock, read by each side when it saw the event.

* **A, pyre joins a running covey** (a fresh pyre node per round): from pyre's READY line
  (``Pyre.start()`` returned: its beacon is about to go out or already went) until covey's
  ``zre-enter`` event for it (it is in ``covey members``, ``kind: zre``, from then on) and
  until pyre hands its application the ENTER of covey. Then pyre stops (port-0 beacon)
  and covey must report it left.
* **B, covey joins a running pyre** (one pyre node, covey restarted per round): from the
  covey process's start (``python -m covey agent``: interpreter and imports included)
  until pyre's ENTER of it — beside the time until the agent answers on its control
  socket, for scale —, and covey's SIGTERM until pyre's EXIT (the port-0 beacon).

Medians, minimum and maximum over the rounds are printed. Network rule: pyre and covey
run only inside the namespace this script creates (deleted at the end, processes stopped
by PID); nothing is sent in the caller's namespace. Bounded: ``--rounds`` (at most 100),
every wait has a deadline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from covey.lab import LabCluster, LoopbackLab, unavailable_reason
from covey.lab.zre import PyreNode

WAIT_S = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    rounds = max(1, min(100, args.rounds))
    reason = unavailable_reason()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    got: dict[str, list[float]] = {
        "A: pyre listed by covey": [],
        "A: covey ENTERed by pyre": [],
        "B: covey process start -> ENTERed by pyre": [],
        "B: covey process start -> control answers": [],
        "B: covey SIGTERM -> pyre EXIT": [],
    }
    with tempfile.TemporaryDirectory(prefix="zre-bench-") as work:
        lab = LoopbackLab()
        cluster = LabCluster(lab, workdir=Path(work) / "lab", record=True)
        nodes: list[PyreNode] = []
        try:
            agent = cluster.add(lab.hosts[0], ["--zre", "--zre-group", "bench", "--no-election"])
            cluster.wait_ready(agent)
            rec = cluster.recorder
            assert rec is not None
            for i in range(rounds):
                name = f"pyre{i}"
                node = PyreNode(lab.hosts[0], name, ["bench"])
                nodes.append(node)
                ready = node.wait_for(lambda e: e["event"] == "READY", 1)
                assert ready is not None
                hit = rec.wait_for(
                    lambda _o, e, n=name: e.get("event") == "zre-enter" and e["name"] == n, WAIT_S
                )
                seen = node.wait_for(lambda e: e["event"] == "ENTER", WAIT_S)
                if hit is None or seen is None:
                    print(f"A{i}: not discovered within {WAIT_S:g} s", file=sys.stderr)
                    return 1
                got["A: pyre listed by covey"].append(hit[1]["time"] - ready["t"])
                got["A: covey ENTERed by pyre"].append(seen["t"] - ready["t"])
                node.stop()
                left = rec.wait_for(
                    lambda _o, e, n=name: e.get("event") == "zre-exit" and e["name"] == n, WAIT_S
                )
                if left is None:
                    print(f"A{i}: covey never saw {name} leave", file=sys.stderr)
                    return 1
            watcher = PyreNode(lab.hosts[0], "watcher", ["bench"])
            nodes.append(watcher)
            for i in range(rounds):
                spawned = time.time()
                if i:
                    cluster.restart(agent)
                    got["B: covey process start -> control answers"].append(time.time() - spawned)
                entered = watcher.wait_for(
                    lambda e, t=spawned: e["event"] == "ENTER" and e["t"] >= t, WAIT_S
                )
                if entered is None:
                    print(f"B{i}: pyre never saw covey", file=sys.stderr)
                    return 1
                if i:  # round 0's covey started before the watcher: no start-up to time
                    got["B: covey process start -> ENTERed by pyre"].append(entered["t"] - spawned)
                sent = time.time()
                agent.stop()
                gone = watcher.wait_for(lambda e, t=sent: e["event"] == "EXIT" and e["t"] >= t, 5)
                if gone is None:
                    print(f"B{i}: pyre never saw covey leave", file=sys.stderr)
                    return 1
                got["B: covey SIGTERM -> pyre EXIT"].append(gone["t"] - sent)
        finally:
            for node in nodes:
                node.kill()
            cluster.close()
            lab.close()
    for what, xs in got.items():
        if xs:
            ms = [x * 1000 for x in xs]
            print(
                f"{what}: median {statistics.median(ms):.0f} ms, min {min(ms):.0f} ms, "
                f"max {max(ms):.0f} ms ({len(ms)} rounds)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
