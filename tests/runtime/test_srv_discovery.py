"""Discovery by DNS SRV against a real dnsmasq on 127.0.0.1 (beacons off, no --join)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from covey.runtime.config.model import AgentConfig, ConfigError
from covey.runtime.localcluster import AgentProcess, LocalCluster, free_port, wait_until

from .dns_server import DNSMASQ, MISSING, SRV_NAME, DnsServer

pytestmark = pytest.mark.skipif(not DNSMASQ.exists(), reason=MISSING)

#: Fast re-resolution for tests (the default is 30 s).
INTERVAL = "0.5"


@pytest.fixture
def dns(tmp_path: Path) -> Iterator[DnsServer]:
    """A dnsmasq on a free 127.0.0.1 UDP port, not started yet; stopped by PID."""
    server = DnsServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def srv_args(dns: DnsServer) -> list[str]:
    """Flags of an agent that discovers only by SRV."""
    return [
        "--no-multicast",
        "--srv", SRV_NAME,
        "--srv-resolver", dns.address,
        "--srv-interval", INTERVAL,
    ]  # fmt: skip


def srv_info(agent: AgentProcess) -> dict[str, Any]:
    """The ``srv`` part of ``covey info``."""
    info: dict[str, Any] = agent.client().info()
    return dict(info["srv"])


def test_five_agents_form_one_cluster_by_srv_alone(cluster: LocalCluster, dns: DnsServer) -> None:
    ports = [free_port() for _ in range(5)]
    dns.start(ports)
    names = [f"s{i + 1}" for i in range(5)]
    for name, port in zip(names, ports, strict=True):
        cluster.spawn(name, port=port, extra=srv_args(dns), wait=False)
    for agent in cluster.agents.values():
        cluster.wait_ready(agent)
    wait_until(lambda: cluster.converged(names), 60.0, what="five agents in one cluster")
    shown = srv_info(cluster.agents["s1"])
    assert shown["name"] == SRV_NAME
    assert shown["resolver"] == dns.address
    assert shown["last_error"] is None and shown["last_ok"] is not None
    assert sorted(shown["targets"]) == sorted(f"127.0.0.1:{p}" for p in ports)


def test_added_record_brings_in_agent_and_removed_one_evicts_nobody(
    cluster: LocalCluster, dns: DnsServer
) -> None:
    pa, pb, pc = (free_port() for _ in range(3))
    dns.start([pa, pb])
    a = cluster.spawn("a", port=pa, extra=srv_args(dns))
    cluster.spawn("b", port=pb, extra=srv_args(dns))
    # c has no discovery of its own: only the others, through its record, can find it.
    cluster.spawn("c", port=pc, extra=["--no-multicast"])
    wait_until(lambda: cluster.converged(["a", "b"]), 60.0, what="a and b by SRV")
    assert cluster.agents["c"].states().keys() == {"c"}

    dns.set_records([pa, pb, pc])
    wait_until(lambda: cluster.converged(["a", "b", "c"]), 60.0, what="c brought in by its record")

    dns.set_records([pa, pb])
    wait_until(lambda: len(srv_info(a)["targets"]) == 2, 30.0, what="a to see c's record gone")
    seen = srv_info(a)["resolutions"]
    wait_until(lambda: srv_info(a)["resolutions"] >= seen + 4, 30.0, what="a few more resolutions")
    assert cluster.converged(["a", "b", "c"]), "a removed record evicted a live member"


def test_resolver_down_at_start_is_shown_then_discovery_succeeds(
    cluster: LocalCluster, dns: DnsServer
) -> None:
    pa, pb = free_port(), free_port()
    a = cluster.spawn("a", port=pa, extra=srv_args(dns))  # dnsmasq not started: down
    cluster.spawn("b", port=pb, extra=srv_args(dns))
    shown = wait_until(
        lambda: (s := srv_info(a))["failures"] >= 3 and s, 30.0, what="failed resolutions"
    )
    assert shown["last_ok"] is None and shown["targets"] == []
    assert "no answer" in shown["last_error"] and dns.address in shown["last_error"]
    lines = [ln for ln in a.log.read_text().splitlines() if "srv: no answer" in ln]
    assert len(lines) == 1, f"logged once per change, not per attempt: {lines}"

    dns.start([pa, pb])
    wait_until(lambda: cluster.converged(["a", "b"]), 60.0, what="a and b once the resolver is up")
    # b may have found a first (a learns of b by b's join): a's own next lookup clears
    # its error within one interval.
    shown = wait_until(
        lambda: (s := srv_info(a))["last_error"] is None and s, 30.0, what="a's lookup to succeed"
    )
    assert shown["last_ok"] is not None
    assert any("gives 127.0.0.1" in ln for ln in a.log.read_text().splitlines())


def test_nxdomain_is_shown(cluster: LocalCluster, dns: DnsServer) -> None:
    dns.start([])  # no record at all: dnsmasq refuses a name it does not know
    a = cluster.spawn(
        "a",
        extra=[
            "--no-multicast", "--srv", "_nothing._udp.test",
            "--srv-resolver", dns.address, "--srv-interval", INTERVAL,
        ],
    )  # fmt: skip
    shown = wait_until(lambda: (s := srv_info(a))["last_error"] and s, 30.0, what="an error")
    assert "_nothing._udp.test" in shown["last_error"] or "REFUSED" in shown["last_error"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"srv_interval": 0.0}, "srv-interval"),
        ({"srv_interval": float("nan")}, "srv-interval"),
        ({"srv": "bad..name"}, "srv"),
        ({"srv": "ok.example", "srv_resolver": ("dns.example", 53)}, "srv-resolver"),
        ({"srv_resolver": ("127.0.0.1", 53)}, "srv-resolver"),
    ],
)
def test_bad_srv_settings_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        AgentConfig(plaintext=True, **changes)
    assert err.value.field == field


def test_bad_srv_flag_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "covey", "agent", "--plaintext", "--srv-interval", "0",
         "--srv", SRV_NAME],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "srv-interval" in done.stderr
