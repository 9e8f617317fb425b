"""Real agents and a real collector (issue 12): boot to shutdown, questions from outside,
and records from before the collector was reachable.

The collector is started with the CLI (it forks and prints its address); the agents are
`covey agent` processes on 127.0.0.1 that stream to it with ``--collector``. Everything
is stopped by PID.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

from covey.runtime.localcluster import LocalCluster, free_port, wait_until

from .collector_helpers import CollectorProcess, covey, gone

TIMEOUT = 60.0
FAST = ["--probe-interval", "0.5", "--probe-timeout", "0.25", "--gossip-interval", "0.1"]


def _ask(col: CollectorProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return covey("collector", *args, col.address, "--key-file", str(col.key_file))


def _members(col: CollectorProcess) -> dict[str, str]:
    out = _ask(col, "members", "--json")
    assert out.returncode == 0, out.stderr
    return {m["name"]: m["state"] for m in json.loads(out.stdout)}


def _timeline(col: CollectorProcess, node: str) -> list[dict[str, Any]]:
    out = covey(
        "collector", "timeline", col.address, "--node", node, "--json",
        "--key-file", str(col.key_file),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def _refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return False
    except OSError:
        return True


def test_a_collector_follows_a_cluster_from_boot_to_shutdown(tmp_path: Path) -> None:
    with LocalCluster(cluster="traced") as c:
        col = CollectorProcess.start(tmp_path / "collector", c.key_file)
        try:
            names = [f"n{i}" for i in range(1, 6)]
            args = [*FAST, "--expected-votes", "5", "--collector", col.address]
            agents = {
                n: c.spawn(n, extra=[*args, "--data-dir", str(c.workdir / n)], wait=False)
                for n in names
            }
            for a in agents.values():
                c.wait_ready(a)
            wait_until(lambda: c.converged(), TIMEOUT, what="convergence")
            stable = _ask(col, "stable", "--for", "2s", "--timeout", "60s", "--json")
            assert stable.returncode == 0, stable.stdout + stable.stderr
            shown = json.loads(stable.stdout)
            assert shown["stable"] and shown["size"] == 5 and shown["leader"] in names
            assert _members(col) == dict.fromkeys(names, "alive")

            # One agent killed: the survivors report it, the collector's view follows,
            # and its timeline reads as one story across them.
            victim = next(n for n in names if n != shown["leader"])
            agents[victim].signal(signal.SIGKILL)
            wait_until(lambda: _members(col).get(victim) == "failed", TIMEOUT, what="the failure")
            story = _timeline(col, victim)
            failed = [r for r in story if r["op"] == "failed" and r["subject"] == victim]
            reporters = {r["node"] for r in failed}
            assert len(reporters) >= 2 and victim not in reporters
            # Every survivor that saw it names the same cause: the records join up.
            assert len({r["cause"] for r in failed}) == 1
            corrected = [r["at"] + r["offset"] for r in story]
            assert corrected == sorted(corrected)
            assert {r["op"] for r in story} >= {"alive", "failed"}
            survivors = {n: a for n, a in agents.items() if n != victim}
            assert {m for m, s in _members(col).items() if s == "alive"} == set(survivors)

            for a in survivors.values():
                a.stop()
            stats = json.loads(_ask(col, "stats", "--json").stdout)
            assert stats["stored"] > 0 and stats["unauthenticated"] == 0
            assert stats["malformed"] == 0 and stats["agents"] == 5
        finally:
            stop = _ask(col, "stop")
            col.kill()
        assert stop.returncode == 0, stop.stderr
        wait_until(lambda: gone(col.process), TIMEOUT, what="the collector to exit")
        assert _refused(col.address)


def test_records_from_before_the_collector_was_reachable_reach_it(tmp_path: Path) -> None:
    with LocalCluster(cluster="early") as c:
        port = free_port()
        address = f"127.0.0.1:{port}"
        args = [*FAST, "--collector", address]
        a = c.spawn("a", extra=[*args, "--data-dir", str(c.workdir / "a")])
        b = c.spawn("b", extra=args)
        wait_until(lambda: c.converged(), TIMEOUT, what="convergence")

        def traces(agent: Any) -> dict[str, Any]:
            info: dict[str, Any] = agent.client().info()["traces"]
            return info

        wait_until(lambda: traces(b)["last_error"], TIMEOUT, what="b to find no collector")
        early = traces(b)
        assert early["connected"] is False and early["acked"] == 0 and early["lost"] == 0
        # a exits before any collector is up: its records wait in its data directory.
        a.stop()
        unsent = (c.workdir / "a" / "traces-unsent.jsonl").read_text().splitlines()
        assert unsent and json.loads(unsent[-1])["op"] == "exit"

        col = CollectorProcess.start_at(tmp_path / "collector", c.key_file, address)
        try:
            # b streams what it held all along, oldest first.
            wait_until(
                lambda: traces(b)["acked"] >= early["seq"], TIMEOUT, what="b's early records"
            )
            # a, started again, sends the records of its earlier run first.
            a2 = c.spawn("a", extra=[*args, "--data-dir", str(c.workdir / "a")])
            wait_until(lambda: traces(a2)["backlog"] == 0 and traces(a2)["connected"], TIMEOUT)
            story = _timeline(col, "a")
            boots = {r["boot"] for r in story if r["node"] == "a"}
            assert len(boots) == 2, "the records of both runs of a are there"
            assert any(r["op"] == "exit" and r["node"] == "a" for r in story)
            assert traces(b)["lost"] == 0
        finally:
            _ask(col, "stop")
            col.kill()


def test_covey_trace_reads_the_buffer_and_trace_send_ships_it(tmp_path: Path) -> None:
    with LocalCluster(cluster="ship") as c:
        a, _ = c.start(2)
        wait_until(lambda: c.converged(), TIMEOUT, what="convergence")
        local = covey("trace", "--json", "--last", "5", "--control", str(a.control))
        assert local.returncode == 0, local.stderr
        lines = [json.loads(x) for x in local.stdout.splitlines()]
        assert 0 < len(lines) <= 5 and lines[-1]["node"] == a.name
        assert [r["seq"] for r in lines] == sorted(r["seq"] for r in lines)
        col = CollectorProcess.start(tmp_path / "collector", c.key_file)
        try:
            sent = covey("trace", "send", col.address, "--json", "--control", str(a.control))
            assert sent.returncode == 0, sent.stderr
            result = json.loads(sent.stdout)
            assert result["stored"] == result["records"] > 0
            assert {r["node"] for r in _timeline(col, a.name)} == {a.name}
            elsewhere = f"127.0.0.1:{free_port()}"
            nowhere = covey("trace", "send", elsewhere, "--control", str(a.control))
            assert nowhere.returncode == 1 and "collector" in nowhere.stderr
        finally:
            _ask(col, "stop")
            col.kill()
