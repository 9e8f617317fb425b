"""Found by the lab's chaos run (bench/chaos.py, docs/lab.md), reproduced here exactly.

A node cut off from everyone suspects every peer; with no one to confirm, each suspicion
runs the *longest* timeout (24 s for 5 nodes) and its Suspect messages spend their
retransmit budget into the void. When the network returns before those timers end, the
suspected peers never hear of the suspicion (nothing re-gossips it), so none of them
refutes; the returning node's acks from them do not cancel it either. The timer expires,
the returning node declares a perfectly healthy peer dead and gossips Dead(i), which every
other node accepts (dead(i) beats alive(i)) — a cluster-wide false failure between nodes
that were connected the whole time, until the victim refutes about a second later.

Fixed in the core: a node that hears from a member it suspects sends it the suspicion
directly (at most once per probe interval), so the member refutes before the timer ends.
"""

from __future__ import annotations

from covey.core import MemberFailed

from .helpers import build


def test_returning_node_does_not_fail_healthy_peers() -> None:
    sim = build(5, seed=4)
    sim.network.multicast = False
    assert sim.run_until_true(sim.converged, timeout=60.0) is not None
    hosts = list(sim.hosts.values())
    loner, rest = hosts[4], hosts[:4]
    sim.network.partition([loner.name], [h.name for h in rest])
    sim.run_for(20.0)  # shorter than the loner's 24 s suspicion timeout
    healed_at = sim.now
    sim.network.heal()
    assert sim.run_until_true(sim.converged, timeout=120.0, step=0.5) is not None
    # The four were connected to each other all along: none may call another failed.
    false = [
        (h.name, e.member.name, round(t - healed_at, 2))
        for h in rest
        for t, e in h.events
        if isinstance(e, MemberFailed) and t >= healed_at and e.member.name != loner.name
    ]
    assert not false, f"healthy nodes marked failed after the heal: {false}"
