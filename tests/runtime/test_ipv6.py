"""IPv6: a cluster of real agents on ``::1``, IPv6 addresses in the configuration, the
IPv6 interfaces of this host, and an IPv6 discovery plan.

Loopback carries no IPv6 multicast in the caller's namespace, so the ``::1`` agents find
each other through ``--join``; IPv6 multicast discovery is tested in a lab namespace
(``tests/lab/test_discovery.py``).
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from covey.core.crypto.fernet import generate_key
from covey.runtime.config.model import AgentConfig, ConfigError
from covey.runtime.config.sources import parse_address
from covey.runtime.control.client import http_get
from covey.runtime.localcluster import AgentProcess, LocalCluster, free_port, wait_until
from covey.runtime.net.interfaces import Interface, list_interfaces6, plan_discovery

from .collector_helpers import covey
from .dns_server import DNSMASQ, MISSING, SRV_NAME, TARGET_NAME, DnsServer

CONVERGE = 60.0
DETECT = 30.0


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="this host has no ::1")


@pytest.fixture
def cluster6() -> Iterator[LocalCluster]:
    """Agents bound to [::1] (no multicast: pass --join); every agent stopped by PID."""
    c = LocalCluster(cluster="six", host="::1")
    try:
        yield c
    finally:
        c.close()


def _states(agent: AgentProcess) -> dict[str, str]:
    return agent.states()


@needs_ipv6
def test_ipv6_loopback_cluster_converges_detects_a_kill_and_sees_a_leave(
    cluster6: LocalCluster,
) -> None:
    http = free_port("::1")
    seed = cluster6.spawn("v1", extra=["--http", f"[::1]:{http}"])
    join = ["--join", seed.address]
    agents = [seed, cluster6.spawn("v2", extra=join), cluster6.spawn("v3", extra=join)]
    names = [a.name for a in agents]
    wait_until(lambda: cluster6.converged(names), CONVERGE, what="3 agents on ::1")
    addresses = {m["name"]: m["address"] for m in seed.members()}
    assert addresses == {a.name: f"[::1]:{a.port}" for a in agents}
    assert seed.address == f"[::1]:{seed.port}"
    # The HTTP API answers on [::1] too.
    members = http_get(f"[::1]:{http}", "/v1/members")
    assert sorted(m["name"] for m in members) == names

    v1, v2, v3 = agents
    v3.signal(signal.SIGKILL)
    assert v3.wait(10) == -signal.SIGKILL
    wait_until(
        lambda: all(_states(o)["v3"] == "failed" for o in (v1, v2)), DETECT, what="v3 failed"
    )
    assert v2.stop() == 0
    wait_until(lambda: _states(v1)["v2"] == "left", DETECT, what="v2 left")
    assert _states(v1)["v1"] == "alive"


def test_ipv6_addresses_take_brackets_with_a_port() -> None:
    assert parse_address("join", "[::1]:7946") == ("::1", 7946)
    assert parse_address("join", "[fd00::2]", default_port=7946) == ("fd00::2", 7946)
    assert parse_address("join", "fd00::2", default_port=7946) == ("fd00::2", 7946)
    assert parse_address("join", "127.0.0.1:7946") == ("127.0.0.1", 7946)
    with pytest.raises(ConfigError, match=r"join: 'fd00::2:7946': write an IPv6 address"):
        parse_address("join", "fd00::2:7946")
    with pytest.raises(ConfigError, match="no closing"):
        parse_address("join", "[::1:7946")
    with pytest.raises(ConfigError, match="is not"):
        parse_address("join", "[::1]7946")


def test_an_address_of_the_other_family_is_a_configuration_error(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_bytes(generate_key() + b"\n")
    key.chmod(0o600)
    mixed = covey(
        "agent", "--bind", "[::1]:17946", "--join", "127.0.0.1:7946", "--key-file", str(key)
    )
    assert mixed.returncode == 2
    assert "join: 127.0.0.1 is an IPv4 address but bind ::1 is IPv6" in mixed.stderr
    unicast = covey("agent", "--multicast", "[fd00::2]:7947", "--key-file", str(key))
    assert unicast.returncode == 2
    assert "multicast: fd00::2 is not an IPv6 multicast group" in unicast.stderr


def test_this_hosts_ipv6_interfaces_are_listed_with_their_index() -> None:
    found = list_interfaces6()
    if not _has_ipv6_loopback():
        pytest.skip("this host has no ::1")
    [lo] = [i for i in found if i.address == "::1"]
    assert lo.loopback and lo.up and lo.ipv6
    assert lo.index == socket.if_nametoindex(lo.name)
    assert lo.netmask == "128"


def test_an_ipv6_group_plans_one_routable_address_per_interface() -> None:
    available = [
        Interface("eth0", "10.0.0.2", "255.255.255.0", True, False, 2),
        Interface("eth0", "fe80::2", "64", True, False, 2),
        Interface("eth0", "fd00::2", "64", True, False, 2),
        Interface("eth1", "fe80::3", "64", True, False, 3),
        Interface("lo", "::1", "128", True, True, 1),
    ]
    config = AgentConfig(
        name="p",
        bind=("::", 7946),
        multicast=("ff15::c0ee", 7947),
        interfaces=("eth0", "eth1"),
        plaintext=True,
    )
    plan = plan_discovery(config, available)
    assert not plan.broadcast
    assert [(i.name, i.address, i.index) for i in plan.interfaces] == [
        ("eth0", "fd00::2", 2),
        ("eth1", "fe80::3", 3),
    ]
    assert plan.destinations()[0][1] == "ff15::c0ee"
    with pytest.raises(ConfigError, match="no IPv6 interface 'eth9'"):
        plan_discovery(config.with_changes(interfaces=("eth9",)), available)


@needs_ipv6
@pytest.mark.skipif(not DNSMASQ.exists(), reason=MISSING)
def test_agents_on_ipv6_find_each_other_by_srv_through_aaaa_records(
    cluster6: LocalCluster, tmp_path: Path
) -> None:
    """The records name a host with A 127.0.0.1 and AAAA ::1: agents bound to [::1] take
    its AAAA address (their one socket speaks IPv6 only)."""
    dns = DnsServer(tmp_path, target=TARGET_NAME)
    try:
        ports = [free_port("::1") for _ in range(2)]
        dns.start(ports)
        extra = ["--srv", SRV_NAME, "--srv-resolver", dns.address, "--srv-interval", "0.5"]
        for i, port in enumerate(ports, 1):
            cluster6.spawn(f"d{i}", port=port, extra=extra)
        wait_until(lambda: cluster6.converged(["d1", "d2"]), CONVERGE, what="d1, d2 by SRV")
        targets = cluster6.agents["d1"].client().info()["srv"]["targets"]
        assert sorted(targets) == sorted(f"[::1]:{p}" for p in ports)
    finally:
        dns.stop()
