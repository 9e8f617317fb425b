"""The ``covey`` command with real processes: config errors, listings, tags, monitor."""

from __future__ import annotations

import json
import os
import signal
import socket
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
    path.chmod(0o600)  # as a key file should be (the warning for others is tested below)
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
        ([*base, "--zre", "--zre-port", "70000"], {}, "zre_port: must be 1..65535"),
        ([*base, "--zre", "--no-multicast"], {}, "zre: beacons on the discovery interfaces"),
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


def test_tags_merge_across_sources_and_file_paths_are_relative_to_the_file(
    tmp_path: Path, key_file: Path
) -> None:
    from covey.runtime.config.sources import build_config, read_env, read_toml

    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "cluster.key").write_bytes(key_file.read_bytes())
    cfg = conf_dir / "covey.toml"
    cfg.write_text(
        'key_file = "cluster.key"\ndata_dir = "state"\ntags = { role = "web", zone = "a" }\n'
        'facts = { colour = "blue" }\n'
    )
    env = read_env({"COVEY_TAG": "zone=b,rack=7", "COVEY_FACT": "size=xl"})
    c = build_config(read_toml(cfg), env, {"tag": ["role=db"]})
    # Each source changes the tags it names and keeps the others.
    assert c.tags == {"role": "db", "zone": "b", "rack": "7"}
    assert c.facts == {"colour": "blue", "size": "xl"}
    # Relative paths in the file are relative to the file, wherever the agent starts.
    assert c.key_file == conf_dir / "cluster.key" and c.data_dir == conf_dir / "state"
    assert c.keys == (key_file.read_bytes().strip(),)
    # Absolute paths, and relative ones given as flags, are kept as they are.
    c = build_config(read_toml(cfg), {"data_dir": "here"})
    assert c.data_dir == Path("here")


def test_usage_errors_are_one_line_with_exit_2() -> None:
    cases = {
        ("members", "--bogus"): "No such option: --bogus",
        ("members", "extra"): "unexpected extra argument",
        ("set",): "Missing argument",
        ("members", "--json", "true"): "unexpected extra argument",
    }
    for args, message in cases.items():
        proc = covey(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "--help" in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr and "╭" not in proc.stderr
    # Flags show no value type in the help (``--json``, not ``--json <bool>``).
    shown = covey("members", "--help").stdout
    assert "--json " in shown and "<bool>" not in shown


def test_shell_completion_completes_commands() -> None:
    env = {"COMP_WORDS": "covey mem", "COMP_CWORD": "1", "_COVEY_COMPLETE": "complete_bash"}
    proc = covey(env=env)
    assert proc.returncode == 0 and proc.stdout.split() == ["members"], proc
    assert "--install-completion" in covey("--help").stdout


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
    # Bad tags are a usage error whether the CLI or the agent finds them.
    for bad in (["--set", "novalue"], ["--set", "big=" + "x" * 9000]):
        refused = covey("tags", *ctl, *bad)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert json.loads(covey("tags", *ctl, "--json").stdout) == {"role": "web"}
    assert covey("leave", *ctl).returncode == 0
    assert a.wait(15) == 0
    gone = covey("members", *ctl)
    assert gone.returncode == 1 and gone.stderr.startswith("covey: cannot reach the agent")


def test_join_reload_filters_and_format_json_as_serf_has_them(cluster: LocalCluster) -> None:
    # Two agents with no beacons and no seeds: alone until `covey join`.
    a = cluster.spawn("a", extra=["--no-multicast", "--tag", "role=web", "--tag", "dc=eu1"])
    b = cluster.spawn("b", extra=["--no-multicast", "--tag", "role=db"])
    ctl = ["--control", str(a.control)]
    assert len(json.loads(covey("members", *ctl, "--json").stdout)) == 1
    joined = covey("join", *ctl, f"127.0.0.1:{b.port}")
    assert joined.returncode == 0 and f"127.0.0.1:{b.port}" in joined.stdout, joined.stderr
    wait_until(lambda: cluster.converged(["a", "b"]), CONVERGE, what="the join")
    bad = covey("join", *ctl, "nowhere")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1

    # Filters, as serf members -status / -tag (a regular expression, anchored).
    def names(*args: str) -> list[str]:
        out = covey("members", *ctl, "--format", "json", *args)
        assert out.returncode == 0, out.stderr
        return sorted(m["name"] for m in json.loads(out.stdout))

    assert names() == ["a", "b"]
    assert names("--status", "alive", "--tag", "role=w.b") == ["a"]
    assert names("--tag", "role=web|db", "--tag", "dc=eu[0-9]") == ["a"]
    assert names("--tag", "role=we") == []
    assert covey("members", *ctl, "--tag", "role=(").returncode == 2
    # `covey reload` does what SIGHUP does, and says so.
    reloaded = json.loads(covey("reload", *ctl, "--json").stdout)
    assert reloaded == {"reloaded": [], "needs_restart": []}
    assert "reloaded: nothing" in covey("reload", *ctl).stdout


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


def test_agent_runs_lean_under_the_same_pid(cluster: LocalCluster) -> None:
    """`covey agent` parses its options without Typer (covey.cli.quick) and runs the agent
    in the same process, without the CLI stack; PID and output stay."""
    a = cluster.spawn("lean")
    cmdline = Path(f"/proc/{a.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"agent" in cmdline and b"covey.agentd" not in cmdline
    # It never speaks TLS: the stdlib OpenSSL binding stays out of its memory, and so
    # does cffi (PyCryptodome runs on ctypes there); Typer's pydantic never came in.
    # Nor does OpenSSL's libcrypto (3.3 MiB resident), which hashlib, hmac or secrets
    # would map: the agent hashes with the built-in SHA-256.
    maps = Path(f"/proc/{a.proc.pid}/maps").read_text()
    assert "/_ssl." not in maps and "_cffi_backend" not in maps
    assert "/_hashlib." not in maps and "libcrypto" not in maps
    assert "pydantic_core" not in maps
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


def test_port_clashes_between_our_own_listeners_exit_2_before_anything_binds(
    key_file: Path, tmp_path: Path
) -> None:
    port = free_port()
    # A peer watching the seed address, on TCP (a join is a push-pull) and UDP.
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(8)
        udp.bind(tcp.getsockname())
        seed = f"127.0.0.1:{tcp.getsockname()[1]}"
        for flag in ("--http", "--rpc"):
            proc = covey(
                *("agent", "--name", "x", "--bind", f"127.0.0.1:{port}", "--key-file"),
                *(str(key_file), flag, f"127.0.0.1:{port}", "--join", seed),
                *("--control", str(tmp_path / "x.sock")),
            )
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.count("\n") == 1 and f"port {port}" in proc.stderr
        # The agent has exited: whatever it had sent would be queued by now.
        tcp.setblocking(False)
        udp.setblocking(False)
        with pytest.raises(BlockingIOError):
            tcp.accept()
        with pytest.raises(BlockingIOError):
            udp.recvfrom(65536)


def test_key_file_readable_by_others_warns_or_is_refused_and_data_files_are_private(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.key_file.chmod(0o644)
    data = tmp_path / "data"
    a = cluster.spawn("a", extra=["--data-dir", str(data), "--local-version", "1.2"])
    wait_until(lambda: "readable by others (mode 644)" in a.log_tail(20), CONVERGE, what="warning")
    wait_until(lambda: (data / "facts.db").exists(), CONVERGE, what="the facts store")
    created = [p for p in data.iterdir() if p.is_file()]
    assert created and all(p.stat().st_mode & 0o077 == 0 for p in created), [
        (p.name, oct(p.stat().st_mode)) for p in created
    ]
    assert data.stat().st_mode & 0o077 == 0
    strict = covey(
        *("agent", "--name", "s", "--bind", f"127.0.0.1:{free_port()}", "--key-file"),
        *(str(cluster.key_file), "--strict-permissions", "--control", str(tmp_path / "s.sock")),
    )
    assert strict.returncode == 2 and "chmod 600" in strict.stderr, strict.stderr
    assert strict.stderr.count("\n") == 1
