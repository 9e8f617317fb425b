"""Leaving, crashing and losing the network, seen from the other hosts.

* a graceful stop (SIGTERM) sends the EXIT/leave news: peers see *left* at once;
* kill -9: peers see *failed* after the suspicion timeout;
* a host whose eth0 drops every packet: *failed* too, and *alive* again once its network
  returns (it refutes with a higher incarnation; no operator action).
"""

from __future__ import annotations

from covey.lab import dead_network

from .helpers import converge, wait_state

#: "At once": the leave is announced before the process exits; a loaded CI box gets slack.
LEFT_S = 3.0


def test_graceful_stop_is_seen_as_left_at_once(make_lab):
    lab, cluster, _ = make_lab(4)
    cluster.start_all()
    names = [h.name for h in lab.hosts]
    converge(cluster, names)
    assert cluster.agents["h4"].stop() == 0
    took = wait_state(cluster, names[:3], "h4", "left", timeout=30)
    print(f"graceful stop seen as left by 3 peers in {took:.2f} s")
    assert took < LEFT_S
    for observer in names[:3]:
        assert not cluster.recorder.member_events(observer, "member-failed", "h4")


def test_crash_is_seen_as_failed(make_lab):
    lab, cluster, _ = make_lab(4)
    cluster.start_all()
    names = [h.name for h in lab.hosts]
    converge(cluster, names)
    cluster.agents["h2"].kill()
    took = wait_state(cluster, ["h1", "h3", "h4"], "h2", "failed")
    print(f"kill -9 seen as failed by 3 peers in {took:.1f} s")
    for observer in ("h1", "h3", "h4"):
        assert not cluster.recorder.member_events(observer, "member-left", "h2")


def test_dead_network_is_failed_then_recovers(make_lab):
    lab, cluster, faults = make_lab(4)
    cluster.start_all()
    names = [h.name for h in lab.hosts]
    converge(cluster, names)
    faults.set("h3-down", dead_network(lab.host("h3")))
    took = wait_state(cluster, ["h1", "h2", "h4"], "h3", "failed")
    print(f"dead network of h3 seen as failed by 3 peers in {took:.1f} s")
    assert faults.dropped(lab.host("h3")) > 0
    assert cluster.agents["h3"].running()  # the process never stopped
    faults.heal()
    took = converge(cluster, names)
    print(f"h3 alive again everywhere {took:.1f} s after its network returned")
