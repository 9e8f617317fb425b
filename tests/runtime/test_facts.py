"""Shared state with real agent processes on loopback: facts, versions, exporters, actions.

One cluster of ten agents serves the module (starting ten processes on a two-core
machine is the expensive part); each test leaves it as it found it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from covey.runtime.control.client import ClientError, http_get
from covey.runtime.localcluster import AgentProcess, LocalCluster, free_port, wait_until

CONVERGE = 90.0
SPREAD = 20.0
N = 10


@pytest.fixture(scope="module")
def ten() -> Iterator[tuple[LocalCluster, list[AgentProcess], int]]:
    c = LocalCluster(cluster="facts")
    http_port = free_port()
    handler = 'echo "$COVEY_ACTION on $COVEY_SELF_NAME: $(cat)"'
    try:
        agents = []
        for i in range(N):
            extra = ["--local-version", "4.13" if i else "4.12", "--action-handler", handler]
            if i == 0:
                extra += ["--http", f"127.0.0.1:{http_port}", "--data-dir", str(c.workdir / "d0")]
                extra += ["--export-dir", str(c.workdir / "export")]
                extra += ["--export-command", f'echo "$COVEY_EXPORT_PATH" >> {c.workdir}/cmd.log']
                extra += ["--event-handler", f'echo "$COVEY_EVENT" >> {c.workdir}/events.log']
            agents.append(c.spawn(f"f{i}", extra=extra, wait=False))
        for a in agents:
            c.wait_ready(a, 60.0)
        wait_until(lambda: c.converged(), CONVERGE, what="ten agents to converge")
        yield c, agents, http_port
    finally:
        c.close()


def _fact(agent: AgentProcess, node: str, key: str) -> str | None:
    return agent.client().request("facts", node=node).get(node, {}).get(key)


def test_a_fact_set_on_one_agent_reaches_all_ten(
    ten: tuple[LocalCluster, list[AgentProcess], int],
) -> None:
    _, agents, _ = ten
    delays: list[float] = []
    for round_ in range(3):
        origin = agents[round_ * 3]
        value = f"ready-{round_}"
        seen: dict[str, float] = {}
        start = time.monotonic()
        origin.client().request("fact_set", key="state", value=value)
        deadline = start + SPREAD
        while len(seen) < N - 1 and time.monotonic() < deadline:
            for a in agents:
                if (
                    a is not origin
                    and a.name not in seen
                    and _fact(a, origin.name, "state") == value
                ):
                    seen[a.name] = time.monotonic() - start
        assert len(seen) == N - 1, f"only {sorted(seen)} saw the fact within {SPREAD} s"
        delays.extend(seen.values())
    p50, worst = statistics.median(delays), max(delays)
    print(
        f"\nfact propagation to {N - 1} agents, 3 rounds: "
        f"p50 {p50 * 1000:.1f} ms, max {worst * 1000:.1f} ms"
    )
    assert worst < SPREAD


def test_every_agent_holds_every_agents_facts_and_the_same_lowest_version(
    ten: tuple[LocalCluster, list[AgentProcess], int],
) -> None:
    _, agents, http_port = ten

    def agreed() -> bool:
        for a in agents:
            facts = a.client().request("facts")
            if set(facts) != {x.name for x in agents}:
                return False
            if a.client().request("versions")["lowest"] != "4.12":
                return False
        return True

    wait_until(agreed, SPREAD, what="every agent to hold every agent's version")
    versions = http_get(f"127.0.0.1:{http_port}", "/v1/versions")
    assert versions["local"] == "4.12" and versions["lowest"] == "4.12"
    assert versions["nodes"]["f5"] == "4.13"
    facts = http_get(f"127.0.0.1:{http_port}", "/v1/facts")
    assert facts["f3"]["covey.version"] == "4.13"
    # The oldest node upgrades: the lowest version follows everywhere.
    agents[0].client().request("version_set", version="4.13")
    wait_until(
        lambda: all(a.client().request("versions")["lowest"] == "4.13" for a in agents),
        SPREAD,
        what="lowest version 4.13 everywhere",
    )


def test_bad_values_are_refused_and_nothing_else_is_disturbed(
    ten: tuple[LocalCluster, list[AgentProcess], int],
) -> None:
    c, agents, _ = ten
    a = agents[4]
    a.client().request("fact_set", key="keep", value="me")
    cases = [
        ({"key": "big", "value": "x" * 2000}, "value: 2000 octets, limit 1024"),
        ({"key": "k" * 200, "value": "v"}, "key: 200 octets, limit 128"),
        ({"key": "../escape", "value": "v"}, "key: '../escape' must be"),
        ({"key": "k", "value": 7}, '"value" must be text'),
    ]
    for args, message in cases:
        with pytest.raises(ClientError, match=message.replace("(", r"\(").replace(".", r"\.")):
            a.client().request("fact_set", **args)
    with pytest.raises(ClientError, match="version 'four': component 'four' is not a number"):
        a.client().request("version_set", version="four")
    # The CLI refuses before sending, with exit status 2 and the field named.
    cli = [sys.executable, "-m", "covey", "set", "--control", str(a.control)]
    out = subprocess.run([*cli, "big", "x" * 1500], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "value: 1500 octets, limit 1024" in out.stderr
    # Nothing else changed: the good fact is intact everywhere, the bad ones exist nowhere.
    wait_until(lambda: all(_fact(o, a.name, "keep") == "me" for o in agents), SPREAD, what="keep")
    facts = agents[7].client().request("facts", node=a.name)[a.name]
    assert set(facts) >= {"keep", "covey.version"} and "big" not in facts
    assert a.client().request("versions")["local"] == "4.13"
    assert c.converged()


def test_exporter_files_appear_and_are_replaced_atomically(
    ten: tuple[LocalCluster, list[AgentProcess], int],
) -> None:
    c, agents, _ = ten
    root = c.workdir / "export"
    wait_until(lambda: (root / "lowest_version").exists(), SPREAD, what="lowest_version file")
    assert (root / "local_version").read_text() in ("4.12", "4.13")
    wait_until(lambda: len(list((root / "versions").iterdir())) == N, SPREAD, what="versions")
    # Another agent rewrites one fact many times with whole-file-sized values; a reader
    # of the mirrored file must only ever see a complete value.
    writer = agents[2]
    target = root / "nodes" / writer.name / "blob"
    values = [ch * 1000 for ch in "ABCDEFGH"]
    torn: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                text = target.read_text()
            except FileNotFoundError:
                continue
            reads += 1
            if text not in values:
                torn.append(text[:20] + f"...({len(text)})")

    t = threading.Thread(target=reader)
    t.start()
    try:
        client = writer.client()
        for i in range(200):
            client.request("fact_set", key="blob", value=values[i % len(values)])
        wait_until(
            lambda: target.exists() and target.read_text() == values[199 % len(values)],
            SPREAD,
            what="the last value in the export tree",
        )
    finally:
        stop.set()
        t.join()
    assert reads > 0 and not torn, f"{len(torn)} torn reads of {reads}: {torn[:3]}"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")], "temp files left"
    wait_until(lambda: "nodes/f2/blob" in (c.workdir / "cmd.log").read_text(), SPREAD, what="cmd")
    wait_until(lambda: "fact" in (c.workdir / "events.log").read_text(), SPREAD, what="handler")


def test_a_cluster_wide_action_runs_once_everywhere_and_reports(
    ten: tuple[LocalCluster, list[AgentProcess], int],
) -> None:
    _, agents, _ = ten
    cli = [sys.executable, "-m", "covey", "action", "--control", str(agents[6].control)]
    out = subprocess.run(
        [*cli, "zstop", "vm-7", "--timeout", "20", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["missing"] == []
    assert sorted(result["results"]) == sorted(a.name for a in agents)
    for name, r in result["results"].items():
        assert r == {"ok": True, "result": f"zstop on {name}: vm-7"}


def test_registry_and_steward_set_anywhere_read_everywhere(
    ten: tuple[LocalCluster, list[AgentProcess], int],
) -> None:
    _, agents, _ = ten
    agents[1].client().request("registry_set", ip="10.1.2.3", port=5000, key="k1")
    agents[8].client().request("steward_set", ip="10.1.2.4", port=6000)
    want = ({"ip": "10.1.2.3", "port": 5000, "key": "k1"}, {"ip": "10.1.2.4", "port": 6000})
    wait_until(
        lambda: all(
            (a.client().request("registry_get"), a.client().request("steward_get")) == want
            for a in agents
        ),
        SPREAD,
        what="registry and steward everywhere",
    )
    with pytest.raises(ClientError, match="port: 70000"):
        agents[1].client().request("registry_set", ip="10.1.2.3", port=70000, key="k")


def test_a_restarted_agent_keeps_its_own_facts_and_relearns_the_others(
    ten: tuple[LocalCluster, list[AgentProcess], int],
) -> None:
    c, agents, _ = ten
    first = agents[0]
    first.client().request("fact_set", key="admin-state", value="stopped")
    wait_until(lambda: _fact(agents[9], first.name, "admin-state") == "stopped", SPREAD, what="x")
    # Whatever earlier tests did to its version, the restart must keep it.
    version = first.client().request("facts", node=first.name)[first.name]["covey.version"]
    # An action it runs just before the restart is still carried by every push-pull when
    # it comes back (30 s window): its action log must keep it from running it again.
    ran = agents[5].client().request("action", name="zmark", payload="x", timeout=20.0)
    assert first.name in ran["results"]
    assert first.stop() == 0
    wait_until(lambda: first.name not in agents[9].client().request("facts"), SPREAD, what="drop")
    events = c.workdir / "events-again.log"
    extra = ["--data-dir", str(c.workdir / "d0")]
    extra += ["--event-handler", f'echo "$COVEY_EVENT $(cat)" >> {events}']
    again = c.spawn(first.name, extra=extra, timeout=60.0)
    agents[0] = again
    mine = again.client().request("facts", node=first.name)[first.name]
    assert mine["admin-state"] == "stopped" and mine["covey.version"] == version
    wait_until(
        lambda: (
            _fact(agents[9], first.name, "admin-state") == "stopped"
            and len(again.client().request("facts")) == N
        ),
        CONVERGE,
        what="the restarted agent's facts everywhere and everyone's facts on it",
    )
    assert (c.workdir / "d0" / "facts.db").exists()
    wait_until(lambda: events.exists() and "member" in events.read_text(), SPREAD, what="events")
    assert "zmark" not in events.read_text()


def test_bad_shared_state_settings_stop_the_agent_before_it_binds(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=\n")
    sock = tmp_path / "c.sock"
    base = [sys.executable, "-m", "covey", "agent", "--name", "bad", "--bind", "127.0.0.1:1"]
    base += ["--interface", "127.0.0.1", "--key-file", str(key), "--control", str(sock)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    for extra, message in [
        (["--local-version", "4.x"], "local_version: version '4.x'"),
        (["--version-file", str(tmp_path / "none")], "version_file: cannot read"),
        (["--fact", "a/b=1"], "fact: key: 'a/b'"),
    ]:
        out = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 2, out.stderr
        assert message in out.stderr
        assert not sock.exists()
