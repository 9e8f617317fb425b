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


def test_resumed_node_does_not_fail_healthy_peers() -> None:
    """Found by the lab chaos run, seed 1, after the fix above (bench/chaos.py, 73.4 s).

    A node cut off, then frozen (SIGSTOP, a VM pause, a long GC) before its suspicions
    ended, resumes after the network healed: every suspicion timer is long overdue, it
    declares each peer dead at once — before it can hear from them — and the others, in
    contact with each other all along, accept Dead(i). Fix belongs in the core: a
    suspicion timer handled much later than due (the node itself was not running) should
    restart the suspicion (or count as local ill health, Lifeguard-style), not conclude.
    """
    sim = build(5, seed=0)
    sim.network.multicast = False
    assert sim.run_until_true(sim.converged, timeout=60.0) is not None
    hosts = list(sim.hosts.values())
    loner, rest = hosts[4], hosts[:4]
    sim.network.partition([loner.name], [h.name for h in rest])
    sim.run_for(15.0)  # suspicions open, none concluded yet (24 s unconfirmed timeout)
    sim.pause(loner.name)
    sim.run_for(20.0)
    sim.network.heal()
    sim.run_for(1.0)
    resumed_at = sim.now
    sim.resume(loner.name)
    assert sim.run_until_true(sim.converged, timeout=120.0, step=0.5) is not None
    false = [
        (h.name, e.member.name, round(t - resumed_at, 2))
        for h in rest
        for t, e in h.events
        if isinstance(e, MemberFailed) and t >= resumed_at and e.member.name != loner.name
    ]
    assert not false, f"healthy nodes marked failed after the resume: {false}"
