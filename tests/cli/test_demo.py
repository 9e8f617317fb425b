"""``covey demo`` as a user runs it: every step's outcome and figure, nothing left behind."""

from __future__ import annotations

import json
import time
from typing import Any

import psutil

from .test_cli import covey


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie awaiting its reaper has exited)."""
    try:  # as tests/runtime/collector_helpers.py's gone(), by pid
        proc = psutil.Process(pid)
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_demo_json_shows_every_step_with_plausible_figures() -> None:
    start = time.monotonic()
    proc = covey("demo", "--json", timeout=180)
    print(f"\ncovey demo took {time.monotonic() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    steps: dict[str, dict[str, Any]] = {s["step"]: s for s in doc["steps"]}
    assert list(steps) == [
        "collector", "discovery", "leader", "failover", "state", "deliveries", "leave", "timeline"
    ]  # fmt: skip
    assert all(s["ok"] and not s["setup"] for s in steps.values())
    assert steps["collector"]["address"].startswith("127.0.0.1:")
    assert steps["discovery"]["agents"] == 5
    fo = steps["failover"]
    assert fo["killed"] == steps["leader"]["leader"] != fo["new_leader"]
    assert fo["failover_seconds"] < 5.0 and fo["term"] > steps["leader"]["term"]
    assert fo["fenced"] == fo["killed"] and fo["fenced_by"] == [fo["new_leader"]]
    st = steps["state"]
    assert (st["lowest_before"], st["lowest_after"]) == ("1.0", "2.0")
    dl = steps["deliveries"]
    assert [len(r) for r in dl["two_stage"]["receipts"]] == [2, 1]
    assert not set(dl["two_stage"]["receipts"][0]) & set(dl["two_stage"]["receipts"][1])
    assert dl["paused"] not in dl["receipts"] and dl["replaced_by"] in dl["receipts"]
    assert steps["leave"]["exit_status"] == 0
    tl = steps["timeline"]
    assert tl["records"] > 0 and tl["nodes"] == 5 and tl["stopped"]
    assert tl["ops"].get("leader_start", 0) >= 2 and tl["ops"].get("fence", 0) >= 1
    # Nothing left: every agent and the collector it started is gone.
    assert doc["left"] == [] and len(doc["pids"]) >= 7  # 5 agents, a restart, the collector
    assert all(_gone(pid) for pid in doc["pids"]), doc["pids"]


def test_demo_lists_its_steps_and_runs_one_with_what_it_needs() -> None:
    listed = covey("demo", "--steps")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()][:3] == [
        "collector", "discovery", "leader"
    ]  # fmt: skip
    bad = covey("demo", "--only", "nosuch")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "steps:" in bad.stderr
    one = covey("demo", "--only", "leader", "--json", timeout=120)
    assert one.returncode == 0, one.stderr[-2000:]
    doc = json.loads(one.stdout)
    assert [(s["step"], s["setup"]) for s in doc["steps"]] == [
        ("collector", True), ("discovery", True), ("leader", False)
    ]  # fmt: skip
    assert all(_gone(pid) for pid in doc["pids"])
