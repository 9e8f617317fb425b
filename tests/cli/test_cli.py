"""The ``covey`` command with real processes: config errors, listings, tags, monitor, demo."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from cryptography.fernet import Fernet

from covey.runtime.localcluster import LocalCluster, free_port, wait_until

COVEY = [sys.executable, "-m", "covey"]
CONVERGE = 60.0


def covey(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    return subprocess.run(
        [*COVEY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, **(env or {})},
    )


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_bytes(Fernet.generate_key() + b"\n")
    return path


def agent_args(key_file: Path, tmp_path: Path) -> list[str]:
    return [
        "agent",
        "--name",
        "x",
        "--cluster",
        "t",
        "--interface",
        "127.0.0.1",
        "--key-file",
        str(key_file),
        "--control",
        str(tmp_path / "x.sock"),
    ]


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('bind = "127.0.0.1:99999"', "bind: port must be 1..65535"),
        ('bind = "127.0.0.1:x"', "bind: port 'x' is not a number"),
        ("probe_interval = -1", "probe-interval: must be a positive number"),
        ('multicast = "10.1.2.3:7946"', "multicast: 10.1.2.3 is neither"),
        ('interface = ["no-such-if0"]', "interface: no IPv4 interface 'no-such-if0'"),
        ("colour = 'blue'", "colour: unknown setting"),
        ("bind = [", "config: "),
        ("tags = { a = 1 }", "tag: keys and values must be text"),
    ],
)
def test_malformed_config_is_one_line_naming_the_field(
    tmp_path: Path, key_file: Path, toml: str, field: str
) -> None:
    cfg = tmp_path / "covey.toml"
    bind = "" if toml.startswith("bind") else f'bind = "127.0.0.1:{free_port()}"\n'
    cfg.write_text(f"{bind}{toml}\n")
    args = agent_args(key_file, tmp_path)
    args.remove("--interface")
    args.remove("127.0.0.1")
    if "interface" not in toml:
        args += ["--interface", "127.0.0.1"]
    proc = covey(*args, "--config", str(cfg))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("covey: config error: ")
    assert field in lines[0]
    assert not (tmp_path / "x.sock").exists()  # nothing half-started


def test_bad_flags_env_and_key_file(tmp_path: Path, key_file: Path) -> None:
    base = agent_args(key_file, tmp_path)
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not-a-key\n")
    cases = [
        ([*base, "--bind", "127.0.0.1:0"], {}, "bind: port must be 1..65535"),
        ([*base[:-4], "--key-file", str(bad_key)], {}, "key_file: "),
        ([*base[:-4], "--key-file", str(tmp_path / "missing")], {}, "key_file: cannot read"),
        ([*base[:-2]], {"COVEY_BIND": "nowhere"}, "bind: 'nowhere' is not HOST:PORT"),
        ([*base, "--probe-timeout", "3"], {}, "probe-timeout: must be shorter"),
        ([*base, "--tag", "novalue"], {}, "tag: 'novalue' is not KEY=VALUE"),
    ]
    for args, env, message in cases:
        proc = covey(*args, env=env)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and message in proc.stderr, (args, proc.stderr)


def test_flags_beat_env_beat_file(tmp_path: Path, key_file: Path) -> None:
    from covey.runtime.config.sources import build_config, read_env, read_toml

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'name = "file"\ncluster = "file"\nbind = "127.0.0.1:1000"\nkey_file = "{key_file}"\n'
        'tags = { a = "1" }\n'
    )
    env = read_env(
        {"COVEY_CLUSTER": "env", "COVEY_BIND": "127.0.0.1:2000", "COVEY_JOIN": "h:1,h:2"}
    )
    c = build_config(read_toml(cfg), env, {"bind": "127.0.0.1:3000", "interface": ["lo"]})
    assert (c.name, c.cluster, c.bind) == ("file", "env", ("127.0.0.1", 3000))
    assert c.join == (("h", 1), ("h", 2))
    assert c.tags == {"a": "1"}
    # The beacon port is the same for every agent, whatever its own port.
    assert c.multicast_group == ("239.192.77.1", 7947)
    assert c.keys == (key_file.read_bytes().strip(),)


def test_version() -> None:
    from covey import __version__

    out = covey("--version")
    assert out.returncode == 0 and out.stdout == f"covey {__version__}\n"


def test_keygen_prints_a_fernet_key() -> None:
    proc = covey("keygen")
    assert proc.returncode == 0
    Fernet(proc.stdout.strip().encode())


def test_members_info_tags_leave(cluster: LocalCluster) -> None:
    a = cluster.spawn("a")
    cluster.spawn("b")
    wait_until(lambda: cluster.converged(["a", "b"]), CONVERGE, what="convergence")
    ctl = ["--control", str(a.control)]
    members = json.loads(covey("members", *ctl, "--json").stdout)
    assert sorted(m["name"] for m in members) == ["a", "b"]
    assert {"name", "id", "address", "state", "incarnation", "tags"} <= members[0].keys()
    table = covey("members", *ctl)
    assert table.returncode == 0 and "alive" in table.stdout and "b" in table.stdout
    info = json.loads(covey("info", *ctl, "--json").stdout)
    assert info["self"]["name"] == "a" and "drops" in info and "stats" in info
    assert "drops" in covey("info", *ctl).stdout
    # A state that does not exist is a usage error, a node that is not there an error:
    # neither is an empty table with exit 0.
    bogus = covey("members", *ctl, "--state", "bogus")
    assert bogus.returncode == 2 and "state: 'bogus'" in bogus.stderr
    nosuch = covey("facts", "nosuch", *ctl)
    assert nosuch.returncode == 1 and "no live node 'nosuch'" in nosuch.stderr
    tags = covey("tags", *ctl, "--set", "role=web", "--set", "dc=x", "--json")
    assert json.loads(tags.stdout) == {"role": "web", "dc": "x"}
    tags = covey("tags", *ctl, "--delete", "dc", "--json")
    assert json.loads(tags.stdout) == {"role": "web"}
    assert covey("leave", *ctl).returncode == 0
    assert a.wait(15) == 0
    gone = covey("members", *ctl)
    assert gone.returncode == 1 and gone.stderr.startswith("covey: cannot reach the agent")


def test_monitor_streams_events(cluster: LocalCluster) -> None:
    a = cluster.spawn("a")
    base = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    mon = subprocess.Popen(
        [*COVEY, "monitor", "--control", str(a.control), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=base,
    )
    try:
        time.sleep(0)  # the monitor subscribes before b starts: wait for its connection
        wait_until(
            lambda: (
                len(psutil.Process(mon.pid).net_connections(kind="unix")) > 0
                or mon.poll() is not None
            ),
            30,
            what="monitor to connect",
        )
        b = cluster.spawn("b")
        assert mon.stdout is not None
        seen = []
        deadline = time.monotonic() + CONVERGE
        while time.monotonic() < deadline:
            line = mon.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            seen.append(event["event"])
            if event["event"] == "member-joined" and event["member"]["name"] == "b":
                break
        assert "member-joined" in seen, seen
        b.signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            event = json.loads(mon.stdout.readline())
            if event["event"] == "member-left":
                assert event["member"]["name"] == "b"
                break
        else:
            pytest.fail("no member-left event")
    finally:
        mon.send_signal(signal.SIGINT)
        try:
            mon.wait(10)
        except subprocess.TimeoutExpired:
            mon.kill()
            mon.wait()


def test_demo_runs_to_completion_and_leaves_no_process() -> None:
    start = time.monotonic()
    proc = covey("demo", "--nodes", "5", timeout=120)
    took = time.monotonic() - start
    print(f"\ncovey demo took {took:.1f} s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo finished" in proc.stdout
    assert "seen failed by all" in proc.stdout and "seen left by all" in proc.stdout
    pids = [int(p) for p in re.findall(r"started node\d+ pid (\d+)", proc.stdout)]
    assert len(pids) == 5
    for pid in pids:
        if psutil.pid_exists(pid):
            p = psutil.Process(pid)
            assert p.status() == psutil.STATUS_ZOMBIE or "covey" not in " ".join(p.cmdline())


def test_agent_runs_as_a_lean_process_under_the_same_pid(cluster: LocalCluster) -> None:
    """`covey agent` re-executes itself without the CLI stack; PID and output stay."""
    a = cluster.spawn("lean")
    cmdline = Path(f"/proc/{a.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"covey.agentd" in cmdline
    # It never speaks TLS: the stdlib OpenSSL binding stays out of its memory, and so
    # does cffi (PyCryptodome runs on ctypes there).
    maps = Path(f"/proc/{a.proc.pid}/maps").read_text()
    assert "/_ssl." not in maps and "_cffi_backend" not in maps
    assert b"lean" in cmdline  # the agent's name stays visible in ps
    # The configuration (with the keys) never travels on the command line.
    key = cluster.key_file.read_bytes().strip()
    assert not any(key in arg for arg in cmdline)
    info = json.loads(covey("info", "--control", str(a.control), "--json").stdout)
    assert info["self"]["name"] == "lean"
    assert "serving on" in a.log.read_text()  # its log still goes where the CLI's went


def test_agent_loads_aiohttp_only_when_it_serves_http(cluster: LocalCluster) -> None:
    """aiohttp costs ~15 MiB and 0.1 s of start-up; agents without --http skip it."""
    plain = cluster.spawn("plain")
    port = free_port()
    served = cluster.spawn("served", extra=("--http", f"127.0.0.1:{port}"))

    def loads_aiohttp(pid: int) -> bool:
        return "/aiohttp/" in Path(f"/proc/{pid}/maps").read_text()

    assert not loads_aiohttp(plain.proc.pid)
    assert loads_aiohttp(served.proc.pid)
    # The lean process serves /metrics too (prometheus_client needs ssl, which only the
    # agents serving HTTP load).
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'covey_members{state="alive"}' in text
