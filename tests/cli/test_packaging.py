"""What covey ships for a service: the systemd unit, readiness, the man page, an example
configuration."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from covey.runtime.localcluster import LocalCluster

TIMEOUT = 30.0
COVEY = [sys.executable, "-m", "covey"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    return subprocess.run([*COVEY, *args], capture_output=True, text=True, timeout=TIMEOUT, env=env)


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package systemd; .ci/sysdeps.sh installs it)",
)
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    shown = run("unit")
    assert shown.returncode == 0 and "Type=notify" in shown.stdout
    unit = tmp_path / "covey.service"
    unit.write_text(shown.stdout)
    exec_start = next(ln for ln in shown.stdout.splitlines() if ln.startswith("ExecStart="))
    assert Path(exec_start.split("=", 1)[1].split()[0]).exists()  # this covey, not a guess
    # --man=no: the man page is not installed here (covey man makes it).
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify


def test_readiness_reload_and_stopping_reach_the_notify_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sd:
        sd.bind(str(path))
        sd.settimeout(TIMEOUT)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        with LocalCluster(tmp_path / "c") as cluster:
            agent = cluster.spawn("a", wait=False)
            ready = sd.recv(4096).decode()
            assert ready.startswith("READY=1") and "serving as a" in ready
            agent.client().info()  # READY=1 came when it serves: it answers
            agent.signal(signal.SIGHUP)
            assert sd.recv(4096) == b"RELOADING=1"
            assert sd.recv(4096) == b"READY=1"
            agent.signal(signal.SIGTERM)
            assert sd.recv(4096) == b"STOPPING=1"
            start = time.monotonic()
            assert agent.wait(TIMEOUT) == 0 and time.monotonic() - start < TIMEOUT


def test_the_man_page_covers_every_command() -> None:
    page = run("man")
    assert page.returncode == 0 and page.stdout.startswith(".TH COVEY 1")
    helped = run("--help").stdout.split("Commands:")[1]
    commands = [ln.split()[0] for ln in helped.splitlines() if ln.startswith("  ") and ln.split()]
    assert len(commands) > 20
    for name in commands:
        assert "\\fBcovey " + name.replace("-", "\\-") + "\\fR" in page.stdout, name
    assert "\\-\\-http\\-token\\-file" in page.stdout  # options of each command too


def test_the_example_config_is_valid(tmp_path: Path) -> None:
    from covey.runtime.config.sources import build_config, read_toml

    shown = run("example-config")
    assert shown.returncode == 0
    conf = tmp_path / "covey.toml"
    conf.write_text(shown.stdout.replace('"/var/lib/covey"', f'"{tmp_path / "data"}"'))
    (tmp_path / "cluster.key").write_text(run("keygen").stdout)
    config = build_config(read_toml(conf))
    assert (config.cluster, config.key_file) == ("prod", tmp_path / "cluster.key")
    assert len(config.keys) == 1 and config.data_dir == tmp_path / "data"
