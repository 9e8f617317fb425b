"""The CLI finds the agent as the README starts it, and trusts only its own runtime dir."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from covey.runtime.localcluster import free_port, wait_until

TIMEOUT = 30.0


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    run = tmp_path / "xdg"
    run.mkdir(mode=0o700)
    base = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    return {**base, "XDG_RUNTIME_DIR": str(run)}


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.key"
    path.write_bytes(Fernet.generate_key() + b"\n")
    path.chmod(0o600)
    return path


class Agents:
    """Agent processes started as a user would (no --control), stopped by PID."""

    def __init__(self, tmp_path: Path, env: dict[str, str], key: Path) -> None:
        self.tmp, self.env, self.key = tmp_path, env, key
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, cluster: str, *extra: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{cluster}-{name}.log").open("wb")
        argv = [sys.executable, "-m", "covey", "agent", "--name", name, "--cluster", cluster]
        argv += ["--bind", f"127.0.0.1:{free_port()}", "--interface", "127.0.0.1"]
        argv += ["--multicast", f"239.192.77.3:{free_port()}", "--key-file", str(self.key)]
        proc = subprocess.Popen([*argv, *extra], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(TIMEOUT)


@pytest.fixture
def agents(tmp_path: Path, env: dict[str, str], key: Path) -> Iterator[Agents]:
    a = Agents(tmp_path, env, key)
    yield a
    for proc in a.procs:
        a.stop(proc)


def covey(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "covey", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )


def answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def test_plain_members_finds_an_agent_started_with_a_data_dir(
    agents: Agents, env: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    proc = agents.start("web1", "prod", "--data-dir", str(data))
    wait_until(lambda: answers(data / "covey.sock"), TIMEOUT, what="the agent's socket")
    link = Path(env["XDG_RUNTIME_DIR"]) / "covey" / "prod-web1.sock"
    wait_until(link.exists, TIMEOUT, what="the runtime dir's link")
    for args in ([], ["--data-dir", str(data)], ["--name", "web1"]):
        out = covey(env, "members", "--json", *args)
        assert out.returncode == 0, (args, out.stderr)
        assert [m["name"] for m in json.loads(out.stdout)] == ["web1"]
    log = (tmp_path / "prod-web1.log").read_text()
    assert f"control {data / 'covey.sock'}" in log  # the endpoints are logged at start
    agents.stop(proc)
    assert not link.is_symlink()  # its link goes with it
    gone = covey(env, "members")
    assert gone.returncode == 1 and "no agent found" in gone.stderr


def test_two_clusters_with_the_same_node_names_do_not_collide(
    agents: Agents, env: dict[str, str]
) -> None:
    run = Path(env["XDG_RUNTIME_DIR"]) / "covey"
    agents.start("web1", "blue")
    agents.start("web1", "green")
    for cluster in ("blue", "green"):
        path = run / f"{cluster}-web1.sock"
        wait_until(lambda path=path: answers(path), TIMEOUT, what=f"{cluster}'s socket")
        info = json.loads(covey(env, "info", "--json", "--control", str(path)).stdout)
        assert info["cluster"] == cluster
    # Asked by name alone, the CLI says which two it found rather than guessing.
    both = covey(env, "members", "--name", "web1")
    assert both.returncode == 1 and "several agents" in both.stderr
    assert "blue-web1.sock" in both.stderr and "green-web1.sock" in both.stderr


def test_a_runtime_dir_others_can_write_is_not_trusted(agents: Agents, env: dict[str, str]) -> None:
    run = Path(env["XDG_RUNTIME_DIR"]) / "covey"
    proc = agents.start("web1", "blue")
    wait_until(lambda: answers(run / "blue-web1.sock"), TIMEOUT, what="the socket")
    assert covey(env, "members").returncode == 0
    run.chmod(0o777)  # as if anyone could have planted a socket here
    try:
        refused = covey(env, "members")
        assert refused.returncode == 1 and "no agent found" in refused.stderr
        # An agent will not put its socket there either: one line, exit 2, nothing bound.
        agents.stop(proc)
        late = agents.start("web2", "blue")
        assert late.wait(TIMEOUT) == 2
        log = (agents.tmp / "blue-web2.log").read_text()
        assert "config error: control:" in log and "writable by others" in log, log
    finally:
        run.chmod(0o700)
