"""Failure detection: probes, TCP pings, indirect probes, suspicion and its refutation."""

from __future__ import annotations

from covey.core import MemberFailed, MemberRecovered, MemberState, MemberSuspect, StreamPurpose
from covey.core.wire.messages import Alive, PingReq, Suspect
from covey.sim.network import Network

from .helpers import PEER, inject, joined, make_node, of_type, seal, state, taken


class CutNetwork(Network):
    """covey.sim's network plus cuts between two hosts, both ways, datagrams and streams.

    Partition groups cannot say "a and c cannot talk, b reaches both"; this can. Only the
    reachability test changes: loss, delay and multicast are the simulator's own.
    """

    def __init__(self, base: Network) -> None:
        super().__init__(base.rng, base.default)
        self.links = base.links
        self.multicast = base.multicast
        self.cuts: set[frozenset[str]] = set()

    def cut(self, a: str, b: str) -> None:
        """Cut the path between hosts ``a`` and ``b``."""
        self.cuts.add(frozenset((a, b)))

    def connected(self, a: str, b: str) -> bool:
        """Reachable unless cut or separated by a partition."""
        return frozenset((a, b)) not in self.cuts and super().connected(a, b)


def test_refused_tcp_ping_marks_the_target_failed_at_once() -> None:
    world = joined(2)
    a, b = world.hosts
    world.sim.crash(b.name)  # the host still answers: connections are refused
    start = world.now
    world.run_for(2.0)
    events = taken(a)
    assert state(a, b) is MemberState.FAILED
    assert not of_type(events, MemberSuspect, b)  # no suspicion period was needed
    [failed] = of_type(events, MemberFailed, b)
    # at the probe timeout (0.5 s after a ping), well before any suspicion could expire
    assert failed.at - start < 1.6
    pings = [
        r for s, r in world.traffic.streams if s == a.address and r.purpose is StreamPurpose.PING
    ]
    assert pings and pings[-1].node_id == b.node.node_id


def test_timed_out_tcp_ping_only_leads_to_suspicion() -> None:
    world = joined(2)
    a, b = world.hosts
    before = a.node.statistics()
    world.sim.host_down(b.name)  # nothing answers, not even a refusal
    start = world.now
    world.run_until(start + 2.5)
    events = taken(a)
    assert state(a, b) is MemberState.SUSPECT
    # Counted for the metrics: the probe that went unanswered, and the suspicion.
    after = a.node.statistics()
    assert after.probes_sent > before.probes_sent
    assert after.probes_failed == before.probes_failed + 1
    assert after.suspicions == before.suspicions + 1
    assert not of_type(events, MemberFailed, b)
    [suspect] = of_type(events, MemberSuspect, b)
    # Two live members: no confirmations to wait for, so the minimum timeout (4 s).
    world.run_until(suspect.at + 3.9)
    assert state(a, b) is MemberState.SUSPECT
    world.run_until(suspect.at + 4.01)
    assert state(a, b) is MemberState.FAILED


def test_indirect_probe_keeps_a_member_alive_across_a_broken_path() -> None:
    world = joined(3)
    a, b, c = world.hosts
    net = CutNetwork(world.sim.network)
    world.sim.network = net
    net.cut(a.name, c.name)  # a and c cannot talk, b reaches both
    mark = len(world.traffic.datagrams)
    world.run_for(10.0)
    for x in (a, b, c):
        for y in (a, b, c):
            assert state(x, y) is MemberState.ALIVE
    msgs = [m for _, _, m in world.traffic.messages(mark)]
    assert any(isinstance(m, PingReq) for m in msgs)
    assert not of_type(taken(a), MemberSuspect)


def test_three_nodes_agree_that_a_crashed_node_failed() -> None:
    world = joined(4)
    dead = world.hosts[3]
    world.sim.host_down(dead.name)  # a silent crash: no refused connections
    world.run_for(40.0)
    for n in world.hosts[:3]:
        assert state(n, dead) is MemberState.FAILED
        for m in world.hosts[:3]:
            assert state(n, m) is MemberState.ALIVE


def test_nacks_arrive_before_the_probe_ends() -> None:
    world = joined(3)  # the simulator's links take about a millisecond each way
    a, _b, c = world.hosts
    world.sim.host_down(c.name)

    def suspected() -> bool:
        return bool(of_type(taken(a), MemberSuspect, c))

    assert world.sim.run_until_true(suspected, timeout=40.0, step=0.001) is not None
    # b is healthy and answered the ping-req with a nack; a must not blame itself.
    assert a.node.statistics().health == 0


# ----------------------------------------------------------------- refutation


def test_suspicion_about_self_is_refuted_with_a_higher_incarnation() -> None:
    world = joined(2)
    a, b = world.hosts
    assert b.node.incarnation == 0
    a_view_before = a.node.member(b.node.node_id)
    assert a_view_before is not None and a_view_before.incarnation == 0
    about_b = Suspect(0, b.node.node_id, a.node.node_id)
    rumour = seal([about_b], sender=a.node.node_id, wall=world.now)
    assert b.node.statistics().refutations == 0
    assert b.node.receive_datagram(rumour, a.address, now=world.now) == a.node.node_id
    assert b.node.incarnation == 1
    assert b.node.statistics().health == 1  # Lifeguard: having to refute is a bad sign
    assert b.node.statistics().refutations == 1
    mark = len(world.traffic.datagrams)
    world.run_for(1.0)
    alive = [m for s, _, m in world.traffic.messages(mark) if isinstance(m, Alive)]
    assert any(m.node_id == b.node.node_id and m.incarnation == 1 for m in alive)
    assert a.node.member(b.node.node_id).incarnation == 1  # type: ignore[union-attr]
    assert state(a, b) is MemberState.ALIVE


def test_suspicion_is_refuted_end_to_end() -> None:
    world = joined(2)
    a, b = world.hosts
    world.sim.network.partition([a.name], [b.name])

    def suspect() -> bool:
        return state(a, b) is MemberState.SUSPECT

    assert world.sim.run_until_true(suspect, timeout=5.0) is not None
    world.sim.network.heal()
    world.run_for(3.0)
    assert state(a, b) is MemberState.ALIVE
    assert b.node.incarnation >= 1
    assert of_type(taken(a), MemberRecovered, b)


def test_old_suspicion_about_self_is_not_refuted() -> None:
    world = joined(2)
    a, b = world.hosts
    b.node.set_tags({"x": "1"}, now=world.now)
    assert b.node.incarnation == 1
    b.node.receive_datagram(
        seal([Suspect(0, b.node.node_id, a.node.node_id)], sender=a.node.node_id, wall=world.now),
        a.address,
        now=world.now,
    )
    assert b.node.incarnation == 1


def test_refuting_the_largest_incarnation_does_not_raise() -> None:
    node = make_node(1)
    frame = seal([Suspect(2**63 - 1, node.node_id, PEER)], sender=PEER)
    node.receive_datagram(frame, ("10.0.0.2", 7946), now=1.0)
    node.handle_timer(now=1.0)
    node.datagrams_to_send(now=1.0)


def test_an_ack_counts_only_from_the_probed_member_or_a_helper() -> None:
    """A sequence number alone is guessable, and sealed acks captured from other pairs can
    be replayed: an ack from anybody but the target (or a member asked to ping it) must
    not vouch for a hung node."""
    from covey.core.wire.messages import Ack

    world = joined(3)
    a, b, c = world.hosts
    world.sim.host_down(b.name)  # hung: b answers nothing
    prober = a.node._prober
    for _ in range(400):  # bounded: a probes b within a few probe intervals
        world.run_for(0.01)
        p = prober._probe
        if p is not None and p.target == b.node.node_id and not p.indirect_sent:
            break
    else:
        raise AssertionError("a never probed b")
    forged = seal([Ack(p.seq)], sender=c.node.node_id, wall=world.now)
    moved = inject(a.node, forged, now=world.now)
    assert moved == {"misdirected": 1} and prober._probe is p  # still waiting for b
    genuine = seal([Ack(p.seq)], sender=b.node.node_id, wall=world.now + 0.001)
    assert inject(a.node, genuine, now=world.now) == {}
    assert prober._probe is None  # b's own ack ends the probe
