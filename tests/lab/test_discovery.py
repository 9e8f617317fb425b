"""Discovery across hosts: multicast, subnet broadcast, static --join when multicast is cut.

Every agent binds its host's own address and sends beacons only through that host's eth0;
the hosts share nothing but the bridge.
"""

from __future__ import annotations

import subprocess

from covey.lab import Lab, block_multicast

from .helpers import converge


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines() if ":" in ln}


def test_lab_is_isolated(make_lab):
    """Lab hosts have only lo + eth0, no default route; the caller's namespace is untouched."""
    before = _root_links()
    lab: Lab
    lab, _, _ = make_lab(3, record=False)
    for h in lab.hosts:
        assert sorted(lab.links(h)) == ["eth0", "lo"]
        routes = lab.routes(h)
        assert not [r for r in routes if r.startswith("default")], routes
        assert sorted(r.split()[0] for r in routes) == ["10.77.0.0/24", "224.0.0.0/4"]
    assert _root_links() == before
    lab.close()
    assert not subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout.count(lab.name)


def test_multicast_discovery_across_hosts(make_lab):
    """Five agents with no --join find each other by multicast beacons over the bridge."""
    lab, cluster, _ = make_lab(5)
    cluster.start_all()
    took = converge(cluster, [h.name for h in lab.hosts])
    print(f"multicast discovery of 5 hosts: {took:.1f} s after all answered")
    for agent in cluster.agents.values():
        info = agent.client().info()
        assert info["discovery"]["mode"] == "multicast"
        assert info["discovery"]["interfaces"] == [f"eth0={agent.host.addr}"]


def test_broadcast_discovery_across_hosts(make_lab):
    """With the subnet broadcast address as the group (and multicast cut), agents still meet."""
    lab, cluster, faults = make_lab(4)
    faults.set("no-multicast", block_multicast(lab.hosts))
    cluster.start_all(["--multicast", f"{lab.broadcast}:7947"])
    converge(cluster, [h.name for h in lab.hosts])
    assert cluster.agents["h1"].client().info()["discovery"]["mode"] == "broadcast"


def test_static_join_when_multicast_is_blocked(make_lab):
    """Multicast dropped on every host: beacons die (nft counts them), --join forms the cluster."""
    lab, cluster, faults = make_lab(4)
    faults.set("no-multicast", block_multicast(lab.hosts))
    seed = lab.hosts[0]
    cluster.start_all(hosts=[seed])
    cluster.start_all(["--join", f"{seed.addr}:7946"], hosts=lab.hosts[1:])
    converge(cluster, [h.name for h in lab.hosts])
    # The beacons were sent and dropped: the cluster did not form by multicast.
    assert all(faults.dropped(h) > 0 for h in lab.hosts)


def test_ipv6_multicast_discovery_across_hosts(make_lab):
    """Three agents bound to IPv6 addresses, no --join, find each other by beacons on an
    IPv6 multicast group (site-local ff15::), the interface chosen by name."""
    lab, cluster, _ = make_lab(3, ipv6=True)
    cluster.start_all(["--multicast", "[ff15::c0ee]:7947"])
    took = converge(cluster, [h.name for h in lab.hosts])
    print(f"IPv6 multicast discovery of 3 hosts: {took:.1f} s after all answered")
    for agent in cluster.agents.values():
        info = agent.client().info()
        assert info["discovery"]["mode"] == "multicast"
        assert info["discovery"]["interfaces"] == [f"eth0={agent.host.addr6}"]
        addresses = {m["name"]: m["address"] for m in agent.client().members()}
        assert addresses == {h.name: f"[{h.addr6}]:7946" for h in lab.hosts}
