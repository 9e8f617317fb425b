"""Evidence that a member is gone, and evidence that it is not.

The kernel's: a datagram to a port nothing listens on comes back refused (ICMP port
unreachable), and the member's TCP port is checked at once. The probe's own: without an
ack after ``tcp_check_after`` the TCP port is tried, long before the probe timeout. And the
counter-evidence: a failed verdict from another node about a member we heard from lately
is checked by a ping before it is taken.
"""

from __future__ import annotations

from covey.core import MemberFailed, MemberState, StreamPurpose
from covey.core.effects import Datagram
from covey.core.wire.messages import Dead, Ping
from covey.sim.hosts import SimHost

from .helpers import joined, of_type, open_frame, seal, state, taken


def _record_sends(host: SimHost, out: list[tuple[float, Datagram]]) -> None:
    """Record (virtual time, datagram) of everything ``host`` sends from now on."""
    send = host.node.datagrams_to_send

    def datagrams_to_send(*, now: float) -> list[Datagram]:
        got = send(now=now)
        out.extend((now, d) for d in got)
        return got

    vars(host.node)["datagrams_to_send"] = datagrams_to_send


def test_a_refused_datagram_fails_a_crashed_member_within_a_few_round_trips() -> None:
    world = joined(2)
    a, b = world.hosts
    sent: list[tuple[float, Datagram]] = []
    _record_sends(a, sent)
    world.sim.crash(b.name)  # the host still answers: ICMP port unreachable, TCP refused
    start = world.now
    while state(a, b) is not MemberState.FAILED and world.now < start + 5.0:
        world.run_for(0.001)
    [failed] = of_type(taken(a), MemberFailed, b)
    first = min(t for t, d in sent if d.address == b.address and t >= start)
    # ICMP back (one round trip), then a refused TCP connect (another): 1 ms links, so
    # well under the 0.1 s after which the probe would have tried TCP by itself.
    assert failed.at - first < 0.02, (failed.at, first)
    assert a.node.statistics().unreachable >= 1


def test_a_silent_target_gets_its_tcp_port_tried_after_tcp_check_after() -> None:
    world = joined(2)
    a, b = world.hosts
    world.sim.host_down(b.name)  # nothing answers, nothing refuses
    sent: list[tuple[float, Datagram]] = []
    _record_sends(a, sent)
    mark = len(world.traffic.streams)
    start = world.now
    opened_at = None
    while opened_at is None and world.now < start + 3.0:
        world.run_for(0.005)
        streams = world.traffic.streams[mark:]
        if any(r.purpose is StreamPurpose.PING and s == a.address for s, r in streams):
            opened_at = world.now
    assert opened_at is not None
    pings = [
        t
        for t, d in sent
        if d.address == b.address and any(isinstance(m, Ping) for m in open_frame(d.data)[2])
    ]
    ping_at = max(t for t in pings if t <= opened_at)
    # tcp_check_after (0.1 s) after the ping, not the probe timeout (0.5 s)
    assert 0.09 <= opened_at - ping_at <= 0.12, (ping_at, opened_at)


def test_an_unknown_refused_address_is_counted_and_changes_nothing() -> None:
    world = joined(2)
    a, _ = world.hosts
    mark = len(world.traffic.streams)
    a.node.unreachable(("192.0.2.7", 9), now=world.now)
    assert a.node.statistics().unreachable == 1
    assert a.node.streams_to_open(now=world.now) == []
    assert len(world.traffic.streams) == mark


def test_refusals_for_one_member_are_checked_once_per_probe_interval() -> None:
    world = joined(3)
    a, b, _ = world.hosts
    prober = a.node._prober
    for _ in range(3):
        if prober._probe is not None and prober._probe.target == b.node.node_id:
            world.run_for(1.0)  # not while b is the target of the probe under way
    opened = []
    for _ in range(5):
        a.node.unreachable(b.address, now=world.now)
        opened += [r for r in a.node.streams_to_open(now=world.now) if r.node_id == b.node.node_id]
    assert len(opened) == 1 and opened[0].purpose is StreamPurpose.PING


def _dead_from(world_now: float, accused: SimHost, accuser: SimHost) -> bytes:
    inc = accused.node.incarnation
    msg = Dead(inc, accused.node.node_id, accuser.node.node_id, left=False)
    return seal([msg], sender=accuser.node.node_id, wall=world_now)


def test_a_verdict_about_a_member_heard_lately_is_refuted_by_its_ack() -> None:
    world = joined(3)
    a, b, c = world.hosts
    world.sim.network.partition([a.name, b.name], [c.name])  # c cannot tell b
    a.node.receive_datagram(_dead_from(world.now, b, c), c.address, now=world.now)
    assert state(a, b) is MemberState.ALIVE  # not taken: a heard b within 4 s
    assert a.node.statistics().verdicts_checked == 1
    world.run_for(1.5)
    assert state(a, b) is MemberState.ALIVE
    assert a.node.statistics().verdicts_refuted == 1
    assert not of_type(taken(a), MemberFailed, b)


def test_a_checked_verdict_is_taken_when_the_member_stays_silent() -> None:
    world = joined(3)
    a, b, c = world.hosts
    world.sim.host_down(b.name)  # b answers nothing from now on
    a.node.receive_datagram(_dead_from(world.now, b, c), c.address, now=world.now)
    start = world.now
    assert state(a, b) is not MemberState.FAILED
    while state(a, b) is not MemberState.FAILED and world.now < start + 3.0:
        world.run_for(0.01)
    # one probe interval (1 s) of silence, then the verdict is ours
    assert 0.99 <= world.now - start <= 1.05
    assert a.node.statistics().verdicts_refuted == 0


def test_a_verdict_about_a_member_not_heard_lately_is_taken_at_once() -> None:
    world = joined(3)
    a, b, c = world.hosts
    a.node.table.members[b.node.node_id].heard_at = world.now - 4.0
    a.node.receive_datagram(_dead_from(world.now, b, c), c.address, now=world.now)
    assert state(a, b) is MemberState.FAILED
    assert a.node.statistics().verdicts_checked == 0
