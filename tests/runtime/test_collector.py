"""The collector as a real process: started with ``covey collector``, fed sealed batches
over real sockets on 127.0.0.1, asked with the CLI, stopped by ``stop`` or by PID."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from covey.runtime.collector.client import CollectorError
from covey.runtime.collector.daemon import PIDFILE

from .collector_helpers import (
    NODES,
    CollectorProcess,
    covey,
    gone,
    make_key,
    node_id,
    record,
    story,
    wait_for,
)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return make_key(tmp_path / "key")


@pytest.fixture
def other_key(tmp_path: Path) -> Path:
    return make_key(tmp_path / "other-key")


@pytest.fixture
def collector(tmp_path: Path, key_file: Path) -> Iterator[CollectorProcess]:
    proc = CollectorProcess.start(tmp_path / "data", key_file)
    try:
        yield proc
    finally:
        proc.kill()


def ask(c: CollectorProcess, command: str, *args: str) -> list[str]:
    out = covey("collector", command, c.address, "--key-file", str(c.key_file), *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_start_prints_the_address_once_it_listens_and_names_its_pid(
    tmp_path: Path, key_file: Path
) -> None:
    data = tmp_path / "data"
    out = covey("collector", "--key-file", str(key_file), "--data", str(data))
    assert out.returncode == 0, out.stderr
    host, _, port = out.stdout.strip().rpartition(":")
    assert out.stdout == f"{host}:{port}\n" and host == "127.0.0.1"
    pid = int((data / PIDFILE).read_text())
    import psutil

    c = CollectorProcess(out.stdout.strip(), pid, data, key_file, psutil.Process(pid))
    try:
        # It listened before the foreground returned: the first connection is answered.
        stats = c.client().request("stats")
        assert stats["pid"] == pid and stats["data"] == str(data)
        assert stats["address"] == out.stdout.strip()
        assert stats["stored"] == 0 and stats["agents"] == 0
        assert c.process.ppid() != os.getpid()  # in the background: not our child
        assert "listening on" in (data / "collector.log").read_text()
    finally:
        c.kill()


def test_members_timeline_and_stable_tell_the_story_of_a_failed_node(
    collector: CollectorProcess,
) -> None:
    s = story(time.time() - 30)
    for node in NODES:
        result = collector.send(node, s.records[node])
        assert result == {"stored": len(s.records[node]), "duplicates": 0}

    members = json.loads("\n".join(ask(collector, "members", "--json")))
    by_name = {m["name"]: m for m in members}
    assert sorted(by_name) == list(NODES)
    for name in "abcd":
        assert by_name[name]["state"] == "alive", by_name[name]
        assert by_name[name]["node_id"] == node_id(name)
    e = by_name["e"]
    assert e["state"] == "failed" and e["reported_by"] == ["a", "b", "c", "d"]
    assert e["incarnation"] == 0
    assert abs(e["since"] - (s.t0 + 13.1)) < 1.0  # when a, the first, said so
    assert any("failed" in line and line.startswith("e ") for line in ask(collector, "members"))

    # e's story, in true order although c's clock runs 3 s ahead.
    lines = ask(collector, "timeline", "--node", "e", "--json")
    got = [json.loads(line) for line in lines]
    expected = [
        r for _, r in sorted(s.truth, key=lambda tr: tr[0]) if "e" in (r["node"], r["subject"])
    ]
    assert [(r["node"], r["seq"]) for r in got] == [(r["node"], r["seq"]) for r in expected]
    offsets = {r["node"]: r["offset"] for r in got}
    assert abs(offsets["c"] + 3.0) < 0.5 and abs(offsets["a"]) < 0.5
    times = [r["at"] + r["offset"] for r in got]
    assert times == sorted(times)
    assert [r["op"] for r in got][-4:] == ["failed"] * 4
    text = ask(collector, "timeline", "--node", "e")
    assert len(text) == len(got) and "failed" in text[-1] and "[inc:" in text[-1]

    # a's heartbeats after the failure: one leader, four members, for 16 s now.
    stable = json.loads("\n".join(ask(collector, "stable", "--for", "5s", "--json")))
    assert stable["stable"] and stable["leader"] == "a" and stable["size"] == 4
    assert {v["node"] for v in stable["views"]} == {"a", "b", "c", "d"}

    # Every node's records resent (an agent that lost the answers): nothing stored twice.
    total = sum(len(r) for r in s.records.values())
    for node in NODES:
        again = collector.send(node, s.records[node])
        assert again == {"stored": 0, "duplicates": len(s.records[node])}
    stats = collector.client().request("stats")
    assert stats["stored"] == total and stats["duplicates"] == total
    assert stats["received"] == 2 * total and stats["agents"] == 5
    assert len(json.loads("\n".join(ask(collector, "members", "--json")))) == 5
    assert len(ask(collector, "timeline", "--json")) == total


def test_stable_waits_until_the_sizes_agree_for_long_enough(collector: CollectorProcess) -> None:
    now = time.time()
    for i, node in enumerate("xyz"):
        size = 2 if node == "z" else 3
        collector.send(
            node, [record(node, 1, now - 20 + i, "join", leader="x", term=1, members=size)]
        )
    out = covey("collector", "stable", collector.address, "--key-file", str(collector.key_file),
                "--for", "1s", "--timeout", "1s")  # fmt: skip
    assert out.returncode == 1
    assert "sizes differ: 2 (z); 3 (x, y)" in out.stderr and len(out.stderr.splitlines()) == 1

    collector.send("z", [record("z", 2, time.time(), "alive", subject="y", leader="x", members=3)])
    answer = collector.client().request("stable", **{"for": 2.0})
    assert not answer["stable"] and "last change" in answer["why"]
    assert answer["leader"] == "x" and answer["size"] == 3
    began = time.monotonic()
    lines = ask(collector, "stable", "--for", "2s", "--timeout", "30s")
    assert time.monotonic() - began > 1.5  # it waited for the agreement to last
    assert lines[0].startswith("stable: leader x, 3 members")


def test_a_sender_with_the_wrong_key_stores_nothing_and_is_counted(
    collector: CollectorProcess, other_key: Path
) -> None:
    foreign = collector.client(other_key)
    batch = [record("a", 1, time.time(), "join")]
    with pytest.raises(CollectorError, match="unauthenticated"), foreign.connect() as conn:
        conn.send_traces(node_id=node_id("a"), node="a", cluster="test", boot=1000.0,
                         records=batch)  # fmt: skip
    out = covey("collector", "members", collector.address, "--key-file", str(other_key))
    assert out.returncode == 1 and "unauthenticated" in out.stderr and out.stdout == ""
    stats = collector.client().request("stats")
    assert stats["unauthenticated"] == 2
    assert stats["stored"] == 0 and stats["received"] == 0 and stats["agents"] == 0
    assert ask(collector, "timeline", "--json") == []


def test_stop_sealed_with_another_key_is_refused_and_with_the_key_it_exits(
    collector: CollectorProcess, other_key: Path
) -> None:
    out = covey("collector", "stop", collector.address, "--key-file", str(other_key))
    assert out.returncode == 1 and "unauthenticated" in out.stderr
    assert not gone(collector.process)
    assert collector.client().request("stats")["unauthenticated"] == 1

    lines = ask(collector, "stop")
    assert lines == [f"stopped the collector at {collector.address}"]
    wait_for(lambda: gone(collector.process), 10, "the collector to exit")
    host, _, port = collector.address.rpartition(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=2).close()
    assert not (collector.data / PIDFILE).exists()
    left = [p.name for p in collector.data.iterdir()]
    assert not [n for n in left if stat.S_ISSOCK((collector.data / n).stat().st_mode)]
    assert (
        "traces.db" in left
        and "collector stopped" in (collector.data / "collector.log").read_text()
    )


def test_an_address_in_use_or_a_busy_data_directory_exits_2_with_one_line(
    tmp_path: Path, key_file: Path, collector: CollectorProcess
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = covey("collector", "--key-file", str(key_file), "--data", str(tmp_path / "d2"),
                    "--bind", f"127.0.0.1:{port}")  # fmt: skip
    assert out.returncode == 2 and out.stdout == ""
    assert (
        out.stderr
        == f"covey: collector: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )
    assert not (tmp_path / "d2" / PIDFILE).exists()  # the background one is gone

    out = covey("collector", "--key-file", str(key_file), "--data", str(collector.data))
    assert out.returncode == 2 and out.stdout == ""
    assert (
        out.stderr
        == f"covey: collector: another collector (pid {collector.pid}) uses {collector.data}\n"
    )
    assert collector.client().request("stats")["pid"] == collector.pid

    out = covey("collector", "--key-file", str(tmp_path / "missing"))
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1
    assert "config error: key_file" in out.stderr
