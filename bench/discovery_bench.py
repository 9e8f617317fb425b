"""Discovery benchmark: how long a new agent takes to find its first peer, by DNS SRV,
by a static ``--join`` seed and by multicast beacons, on loopback.

Reproduce (from the repository root; needs Debian's ``dnsmasq-base``)::

    apt-get install -y dnsmasq-base
    .venv/bin/python bench/discovery_bench.py --runs 5

For each method one peer agent runs; then, per run, a new agent is started and the clock
runs from its ``Popen`` until its member list shows the peer alive (polled every 10 ms
over its control socket). The time until its control socket first answers is printed too,
with the difference ("after ready"): a static join and the first beacons go out before
the agent serves its control socket, so for them the peer is often known by then, while
the SRV lookup starts with the features, just before serving. The new agent is stopped
(graceful leave) before the next run.

* ``srv``: ``--no-multicast --srv _covey._udp.test --srv-resolver 127.0.0.1:PORT``
  against a real dnsmasq serving one record (the peer's port);
* ``join``: ``--no-multicast --join 127.0.0.1:PEER``;
* ``beacon``: multicast beacons on loopback (``--interface 127.0.0.1``, a private group
  port), no seed.

Network rule: every agent and dnsmasq bind 127.0.0.1; beacons stay on loopback. Every
wait has a deadline; every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from covey.runtime.control.client import ClientError
from covey.runtime.localcluster import LocalCluster, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.runtime.dns_server import SRV_NAME, DnsServer

#: Most seconds a run may take before it counts as a failure.
DEADLINE = 30.0


def one_run(cluster: LocalCluster, name: str, extra: list[str]) -> tuple[float, float]:
    """(seconds to the control socket answering, seconds to seeing ``peer`` alive)."""
    t0 = time.monotonic()
    agent = cluster.spawn(name, extra=extra, wait=False)
    ready: float | None = None
    try:
        while time.monotonic() - t0 < DEADLINE:
            if not agent.running():
                raise RuntimeError(f"{name} exited:\n{agent.log_tail()}")
            try:
                states = agent.client(timeout=1.0).request("members")
            except ClientError:
                time.sleep(0.01)  # a poll interval, not a wait for an outcome
                continue
            if ready is None:
                ready = time.monotonic() - t0
            if any(m.get("name") == "peer" and m.get("state") == "alive" for m in states):
                return ready, time.monotonic() - t0
            time.sleep(0.01)
        raise TimeoutError(f"{name} did not see the peer within {DEADLINE} s")
    finally:
        agent.stop()
        del cluster.agents[name]


def bench(method: str, runs: int, workdir: Path) -> list[tuple[float, float]]:
    """``runs`` measurements of one method."""
    cluster = LocalCluster(workdir / method, cluster=f"bench-{method}")
    dns = DnsServer(workdir / method)
    try:
        port = free_port()
        extra: list[str]
        if method == "beacon":
            cluster.spawn("peer", port=port)
            extra = []
        else:
            cluster.spawn("peer", port=port, extra=["--no-multicast"])
            if method == "join":
                extra = ["--no-multicast", "--join", f"127.0.0.1:{port}"]
            else:
                dns.start([port])
                extra = ["--no-multicast", "--srv", SRV_NAME, "--srv-resolver", dns.address]
        return [one_run(cluster, f"new{i}", extra) for i in range(runs)]
    finally:
        dns.stop()
        cluster.close()


def main() -> None:
    """Run every method, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=["srv", "join", "beacon"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cdb-") as tmp:
        print(
            f"{'method':8} {'runs':>4} {'ready (median s)':>17} {'first peer':>11} "
            f"{'after ready':>11}"
        )
        for method in args.methods:
            got = bench(method, args.runs, Path(tmp))
            ready = statistics.median(r for r, _ in got)
            seen = statistics.median(s for _, s in got)
            disc = statistics.median(s - r for r, s in got)
            print(f"{method:8} {len(got):>4} {ready:>17.3f} {seen:>11.3f} {disc:>11.3f}")


if __name__ == "__main__":
    main()
