"""The per-interface counters on their own: attribution by source, bounds, statuses.

Fed as the driver feeds them (its answer per datagram: the sender's id or a drop reason);
the agents on loopback in test_interfaces.py cover the sockets themselves.
"""

from __future__ import annotations

import time

from covey.core import Address, MemberInfo, MemberState
from covey.runtime.net.interface_stats import PEERS_KEPT, RECENT, NetCounters, Received
from covey.runtime.net.interfaces import DiscoveryPlan, Interface

ETH0 = Interface("eth0", "10.1.0.5", "255.255.0.0", up=True, loopback=False)
ETH1 = Interface("eth1", "192.168.7.2", "255.255.255.0", up=True, loopback=False)
PEER_ID = b"p" * 16


class Answers:
    """What the driver answers for each datagram (set by the test before it arrives)."""

    def __init__(self) -> None:
        self.next: Received = None

    def __call__(self, data: bytes, addr: Address) -> Received:
        return self.next


def make(*interfaces: Interface) -> tuple[NetCounters, Answers]:
    plan = DiscoveryPlan(tuple(interfaces), "239.192.77.1", 7946, broadcast=False)
    peer = MemberInfo(PEER_ID, "peer", ("10.1.0.9", 7946), 0, MemberState.ALIVE, 0.0, {})
    members = {PEER_ID: peer}
    return NetCounters(plan, ("10.1.0.5", 7946), members.get), Answers()


def test_a_group_datagram_goes_to_the_interface_whose_network_holds_its_source() -> None:
    net, answers = make(ETH0, ETH1)
    hear = net.receiver(answers, "discovery")
    answers.next = "bad_key"
    hear(b"x", ("192.168.7.40", 50000))
    answers.next = PEER_ID
    hear(b"x", ("10.1.3.3", 50001))
    answers.next = "from_self"
    hear(b"x", ("10.1.0.5", 50002))
    eth0, eth1 = net.to_json()["interfaces"]  # type: ignore[misc]
    assert eth1["drops"] == {"bad_key": 1, "foreign_cluster": 0}
    assert eth1["peers"][0]["address"] == "192.168.7.40:50000"
    assert eth1["beacons_in"] == 0 and eth1["status"] == "bad_key"
    assert eth0["beacons_in"] == 1 and eth0["status"] == "ok"
    # An opened beacon names its sender, at its advertised address; our own is no peer.
    assert [(p["name"], p["address"]) for p in eth0["peers"]] == [("peer", "10.1.0.9:7946")]
    assert eth0["drops"]["from_self"] == 1
    assert net.status() == "bad_key"


def test_peers_are_bounded_newest_first() -> None:
    net, answers = make(ETH0)
    hear = net.receiver(answers, "discovery")
    answers.next = "stale"
    for port in range(PEERS_KEPT + 10):
        hear(b"x", ("10.1.0.7", 40000 + port))
    hear(b"x", ("10.1.0.7", 40003))  # heard again: moves to the front
    [eth0] = net.to_json()["interfaces"]  # type: ignore[misc]
    peers = eth0["peers"]
    assert len(peers) == PEERS_KEPT
    assert peers[0]["address"] == "10.1.0.7:40003" and peers[0]["count"] == 1
    assert eth0["status"] == "dropping"


def test_statuses_move_with_time_and_closing_is_not_counted() -> None:
    net, answers = make(ETH0)
    iface = net.interfaces[0]
    now = time.monotonic()
    assert iface.status(now) == "silent"
    assert net.unicast.status(now) == "silent"
    hear = net.receiver(answers, "unicast")
    answers.next = None  # the agent is closing: not looked at
    hear(b"x", ("10.1.0.9", 7946))
    assert net.unicast.datagrams_in == 0
    answers.next = "foreign_cluster"
    hear(b"x", ("10.1.0.9", 7946))
    assert net.unicast.datagrams_in == 1
    assert net.unicast.status(time.monotonic()) == "foreign_cluster"
    assert net.unicast.status(time.monotonic() + RECENT) == "ok"  # it did hear something
    assert net.status(time.monotonic() + RECENT) == "silent"  # eth0 never heard a thing
