"""``covey keys``: cluster-wide key rotation on live agents (install, use, remove, list).

The rotation runs on five agent processes on 127.0.0.1 while a writer sets a new fact on
one of them every few tens of milliseconds and a watcher polls every agent's member table:
afterwards every agent holds every fact set during the rotation, no member was ever seen
in a state other than ``alive``, and every agent has the one new key, also after a restart
(``<data_dir>/keyring.json``, mode 0600, wins over the key file, which only seeds).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from covey.core.crypto.fernet import generate_key
from covey.core.crypto.keyring import fingerprint
from covey.runtime.control.client import ClientError
from covey.runtime.localcluster import AgentProcess, LocalCluster, free_port, wait_until

COVEY = [sys.executable, "-m", "covey"]
CONVERGE = 60.0
NAMES = [f"k{i}" for i in range(1, 6)]
#: Fast failure detection, so a member hurt by the rotation would show as suspect.
TIMING = ["--probe-interval", "0.3", "--probe-timeout", "0.15"]


def covey(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    return subprocess.run([*COVEY, *args], capture_output=True, text=True, timeout=timeout, env=env)


class Writer(threading.Thread):
    """Sets fact ``u<i>`` = ``i`` on agent ``i % 5`` until stopped; remembers what it set."""

    def __init__(self, agents: list[AgentProcess]) -> None:
        super().__init__(daemon=True)
        self.agents = agents
        self.done = threading.Event()
        self.written: dict[str, tuple[str, str]] = {}  # key -> (agent name, value)
        self.errors: list[str] = []

    def run(self) -> None:
        i = 0
        deadline = time.monotonic() + 120  # bounded even if the test forgets to stop it
        while not self.done.is_set() and time.monotonic() < deadline:
            agent = self.agents[i % len(self.agents)]
            key = f"u{i}"
            try:
                agent.client().request("fact_set", key=key, value=str(i))
            except ClientError as exc:
                self.errors.append(f"{agent.name} {key}: {exc}")
            else:
                self.written[key] = (agent.name, str(i))
            i += 1
            self.done.wait(0.03)


class Watcher(threading.Thread):
    """Polls every agent's member table; records every (observer, member, state) not alive."""

    def __init__(self, agents: list[AgentProcess]) -> None:
        super().__init__(daemon=True)
        self.agents = agents
        self.done = threading.Event()
        self.bad: list[tuple[str, str, str]] = []
        self.polls = 0

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while not self.done.is_set() and time.monotonic() < deadline:
            for agent in self.agents:
                try:
                    states = agent.states()
                except ClientError as exc:
                    self.bad.append((agent.name, "(control)", str(exc)))
                    continue
                self.bad += [(agent.name, n, s) for n, s in states.items() if s != "alive"]
                self.polls += 1
            self.done.wait(0.05)


def _start(cluster: LocalCluster, name: str) -> AgentProcess:
    data = cluster.workdir / f"{name}.d"
    return cluster.spawn(name, wait=False, extra=[*TIMING, "--data-dir", str(data)])


def _keys(agent: AgentProcess, op: str, *args: str) -> subprocess.CompletedProcess[str]:
    # "--" first: a key may begin with "-" (url-safe base64), which is not an option.
    flags = [a for a in args if a.startswith("--")]
    keys = [a for a in args if not a.startswith("--")]
    return covey("keys", op, "--control", str(agent.control), *flags, "--", *keys)


def _drops(agent: AgentProcess) -> dict[str, int]:
    drops: dict[str, int] = agent.client().request("info")["drops"]
    return {k: v for k, v in drops.items() if v}


def test_rotation_under_fact_updates_loses_nothing_and_nobody_leaves_alive(
    cluster: LocalCluster,
) -> None:
    agents = [_start(cluster, n) for n in NAMES]
    for a in agents:
        cluster.wait_ready(a)
    wait_until(lambda: cluster.converged(NAMES), CONVERGE, what="five agents alive")
    old = cluster.key_file.read_text().strip()
    new = generate_key().decode()
    first = agents[0]

    # Refusals first: nothing is sent, exit status 2, one clear line.
    bad = _keys(first, "install", "not-a-key")
    assert bad.returncode == 2 and "key: not a Fernet key" in bad.stderr, bad.stderr
    primary = _keys(first, "remove", old)
    assert primary.returncode == 2 and "is the primary key" in primary.stderr, primary.stderr
    absent = _keys(first, "use", new)
    assert absent.returncode == 2 and "not installed here" in absent.stderr, absent.stderr

    writer, watcher = Writer(agents), Watcher(agents)
    watcher.start()
    writer.start()
    try:
        time.sleep(0.5)  # some updates under the old key before the rotation begins
        steps = [("install", new, "installed"), ("use", new, "in use"), ("remove", old, "removed")]
        for op, key, word in steps:
            done = _keys(agents[NAMES.index("k3")], op, key)
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"{word} {fingerprint(key.encode())} on 5 of 5 members" in done.stdout
            assert done.stdout.count(" ok ") == 5, done.stdout
            time.sleep(0.5)  # updates between the steps
    finally:
        writer.done.set()
        writer.join(10)
    assert not writer.errors and len(writer.written) > 50, (writer.errors, len(writer.written))

    # Every fact set during the rotation reaches every agent.
    def everyone_has_everything() -> bool:
        for a in agents:
            facts: dict[str, dict[str, str]] = a.client().request("facts")
            for key, (node, value) in writer.written.items():
                if facts.get(node, {}).get(key) != value:
                    return False
        return True

    wait_until(everyone_has_everything, 60, what="every fact update on every agent")
    watcher.done.set()
    watcher.join(10)
    assert watcher.polls > 50 and watcher.bad == [], watcher.bad[:10]
    print(f"rotation: {len(writer.written)} fact updates, all on 5 agents; {watcher.polls} polls")
    for a in agents:  # no frame was refused for its key while the keys changed
        assert "bad_key" not in _drops(a), (a.name, _drops(a))

    listed = _keys(first, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    result: dict[str, Any] = json.loads(listed.stdout)
    assert result["ok"] == result["total"] == 5
    assert result["keys"] == {
        new: {"fingerprint": fingerprint(new.encode()), "members": 5, "primary": 5}
    }
    text = _keys(first, "list")
    assert (
        text.returncode == 0 and f"{new}  {fingerprint(new.encode())}  5/5 members" in text.stdout
    )

    # The keyring is stored (0600) and wins over the key file at restart.
    ring = cluster.workdir / "k5.d" / "keyring.json"
    assert stat.S_IMODE(ring.stat().st_mode) == 0o600
    assert json.loads(ring.read_text())["keys"] == [new]
    k5 = cluster.agents["k5"]
    assert k5.stop() == 0
    restarted = _start(cluster, "k5")
    cluster.wait_ready(restarted)
    wait_until(lambda: cluster.converged(NAMES), CONVERGE, what="k5 back under the new key")
    local = json.loads(_keys(restarted, "local", "--json").stdout)
    assert local == {"keys": [new], "stored": True}


def test_without_a_data_dir_the_change_lives_until_restart(cluster: LocalCluster) -> None:
    port = free_port()
    a = cluster.spawn("m1", extra=["--http", f"127.0.0.1:{port}"])
    cluster.spawn("m2")
    wait_until(lambda: cluster.converged(["m1", "m2"]), CONVERGE, what="two agents alive")
    new = generate_key().decode()
    done = _keys(a, "install", new)
    assert done.returncode == 0, done.stderr
    assert "in memory only: lost at restart" in done.stdout
    assert f"installed {fingerprint(new.encode())} on 2 of 2 members" in done.stdout
    again = _keys(a, "install", new)  # installing twice changes nothing and succeeds
    assert again.returncode == 0 and again.stdout.count("installed already") == 2
    listed = json.loads(_keys(a, "list", "--json").stdout)
    assert listed["keys"][new]["members"] == 2 and listed["keys"][new]["primary"] == 0
    # Over HTTP (no token): this member's fingerprints, never a key.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/keys", timeout=20) as r:
        text = r.read().decode()
    shown = json.loads(text)
    old = cluster.key_file.read_text().strip()
    fps = [fingerprint(k.encode()) for k in (old, new)]
    assert shown == {"fingerprints": fps, "stored": False}
    assert new not in text and old not in text


def test_a_member_that_fails_makes_the_command_exit_1(cluster: LocalCluster) -> None:
    # m1 holds an extra key that m2 does not: "use" it from m1 and m2 refuses (not
    # installed there): 1 of 2 members, exit status 1, m2's refusal shown.
    old = cluster.key_file.read_text().strip()
    extra = generate_key().decode()
    both = cluster.workdir / "both.key"
    both.write_text(f"{old}\n{extra}\n")
    both.chmod(0o600)
    a = cluster.spawn("m1", key_file=both)
    cluster.spawn("m2")
    wait_until(lambda: cluster.converged(["m1", "m2"]), CONVERGE, what="two agents alive")
    used = _keys(a, "use", extra)
    assert used.returncode == 1, used.stdout + used.stderr
    assert f"in use {fingerprint(extra.encode())} on 1 of 2 members" in used.stdout
    assert "FAILED" in used.stdout and "not installed" in used.stdout
