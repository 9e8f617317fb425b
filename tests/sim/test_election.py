"""Election behaviour in the simulator: one leader, quorum, fencing, disk, panic, commands."""

from __future__ import annotations

from covey.core.election.election import Election, ElectionConfig, VoteStore
from covey.core.election.events import (
    DiskSlot,
    ElectionInfo,
    FenceDecision,
    NodePartitioned,
    PanicEntered,
    Recovered,
)
from covey.sim import SimHost, Simulation


def ext(h: SimHost) -> Election:
    e = h.node.capability("election")
    assert isinstance(e, Election)
    return e


def make(n: int = 5, seed: int = 1, expected: int | None = None, **kw: object) -> Simulation:
    cfg = ElectionConfig(expected or n, **kw)  # type: ignore[arg-type]
    sim = Simulation(seed, extensions=lambda h: [Election(cfg, VoteStore())])
    sim.bootstrap(n)
    return sim


def leaders(sim: Simulation) -> list[str]:
    return [h.name for h in sim.running() if ext(h).is_leader(sim.now)]


def one_leader(sim: Simulation, hosts: list[SimHost] | None = None) -> str | None:
    hs = hosts or sim.running()
    seen = {ext(h).names(sim.now)["leader"] for h in hs}
    return seen.pop() if len(seen) == 1 and None not in seen else None  # type: ignore[return-value]


def events(sim: Simulation, kind: type) -> list[tuple[str, object]]:
    return [(h.name, e) for h in sim.hosts.values() for _, e in h.events if isinstance(e, kind)]


def test_one_leader_known_to_all_and_stable() -> None:
    sim = make()
    assert sim.run_until_true(lambda: one_leader(sim) is not None, timeout=10) is not None
    sim.run_for(5)
    assert len(leaders(sim)) == 1
    names = ext(sim.hosts["n0"]).names(sim.now)
    assert names["stable"] is True and names["cluster"] == "sim" and names["node"] == "n0"
    assert set(names) >= {"cluster", "leader", "stable", "node", "term"}


def test_minority_has_no_leader_and_heal_reunites() -> None:
    sim = make()
    sim.run_until_true(lambda: one_leader(sim) is not None, timeout=10)
    old = leaders(sim)[0]
    minority = [old, *[n for n in ("n0", "n1", "n2") if n != old][:1]]
    majority = [n for n in sim.hosts if n not in minority]
    sim.network.partition(minority, majority)
    sim.run_for(30)
    assert all(ext(sim.hosts[n]).current_leader(sim.now) is None for n in minority)
    assert len(leaders(sim)) == 1 and leaders(sim)[0] in majority
    sim.network.heal()
    assert sim.run_until_true(lambda: one_leader(sim) is not None, timeout=30) is not None


def test_leader_crash_new_leader_fences_it_once_with_its_term() -> None:
    sim = make()
    sim.run_until_true(lambda: one_leader(sim) is not None, timeout=10)
    old = leaders(sim)[0]
    sim.crash(old)
    sim.run_for(60)
    fences = events(sim, FenceDecision)
    assert len(fences) == 1
    who, d = fences[0]
    assert isinstance(d, FenceDecision)
    assert d.node == old and who == leaders(sim)[0] and d.term == ext(sim.hosts[who]).term


def _disk(sim: Simulation, writing: set[str], stamps: dict[str, float]) -> None:
    """Every host in ``writing`` updates its slot; every running host reads the disk."""
    for name in writing:
        stamps[name] = sim.now
    slots = [DiskSlot(sim.hosts[n].config.node_id, n, stamps[n], 0, 0) for n in sorted(stamps)]
    for h in sim.running():
        ext(h).observe_disk(sim.now, slots)
        sim._flush(h)


def _with_disk(
    sim: Simulation, seconds: float, writing: set[str], stamps: dict[str, float]
) -> None:
    end = sim.now + seconds
    while sim.now < end:
        _disk(sim, writing, stamps)
        sim.run_for(0.2)


def test_partitioned_node_writing_its_slot_is_not_fenced_until_it_stops() -> None:
    sim = make()
    stamps: dict[str, float] = {}
    _with_disk(sim, 5, set(sim.hosts), stamps)
    leader = leaders(sim)[0]
    victim = next(n for n in sim.hosts if n != leader)
    sim.network.partition([victim], [n for n in sim.hosts if n != victim])
    _with_disk(sim, 40, set(sim.hosts), stamps)
    assert [e.node for _, e in events(sim, NodePartitioned)] == [victim]  # type: ignore[attr-defined]
    assert events(sim, FenceDecision) == []
    _with_disk(sim, 20, set(sim.hosts) - {victim}, stamps)  # it stops writing: dead
    assert [e.node for _, e in events(sim, FenceDecision)] == [victim]  # type: ignore[attr-defined]


def test_all_slots_stale_is_storage_failure_panic_no_fencing_until_recover() -> None:
    sim = make()
    stamps: dict[str, float] = {}
    _with_disk(sim, 5, set(sim.hosts), stamps)
    _with_disk(sim, 10, set(), stamps)  # nobody's writes show up: storage failure
    assert all(ext(h).panic_reason for h in sim.running())
    leader = leaders(sim)[0]
    victim = next(n for n in sim.hosts if n != leader)
    sim.crash(victim)
    _with_disk(sim, 40, set(), stamps)
    assert events(sim, FenceDecision) == []
    assert len(leaders(sim)) == 1  # elections go on in panic
    # recover from a non-leader: forwarded to the leader, spread by heartbeats
    follower = next(h for h in sim.running() if h.name != leader)
    assert "sent to the leader" in ext(follower).recover(sim.now)
    sim._flush(follower)
    stamps.clear()
    _with_disk(sim, 5, {h.name for h in sim.running()}, stamps)
    assert all(ext(h).panic_reason is None for h in sim.running())
    assert len(events(sim, Recovered)) == 4
    assert [e.node for _, e in events(sim, FenceDecision)] == [victim]  # type: ignore[attr-defined]


def test_expected_votes_mismatch_is_panic() -> None:
    sim = Simulation(
        3,
        extensions=lambda h: [Election(ElectionConfig(4 if h.name == "n2" else 3))],
    )
    sim.bootstrap(3)
    sim.run_for(10)
    reasons = [e.reason for _, e in events(sim, PanicEntered)]  # type: ignore[attr-defined]
    assert reasons and all("invalid shared configuration" in r for r in reasons)


def test_ineligible_never_lead_and_priority_stands_first() -> None:
    cfg = ElectionConfig(5)
    sim = Simulation(4, extensions=lambda h: [Election(cfg)])
    for i in range(5):
        tags = {"covey.eligible": "no"} if i < 3 else {}
        if i == 4:
            tags = {"covey.priority": "10"}
        sim.add_node(tags=tags, join=["n0"] if i else [])
    sim.run_until_true(lambda: one_leader(sim) is not None, timeout=30)
    assert leaders(sim) == ["n4"]
    sim.crash("n4")
    sim.run_until_true(lambda: leaders(sim) == ["n3"], timeout=30)
    assert leaders(sim) == ["n3"]
    sim.restart("n4")
    sim.run_for(20)
    ext(sim.hosts["n3"]).reboot(sim.now)  # give the priority node its chance back
    sim._flush(sim.hosts["n3"])
    sim.run_for(10)
    assert leaders(sim) == ["n4"]


def test_reboot_steps_down_and_candidate_sends_info() -> None:
    sim = make()
    sim.run_until_true(lambda: one_leader(sim) is not None, timeout=10)
    old = sim.hosts[leaders(sim)[0]]
    ext(old).reboot(sim.now)
    sim._flush(old)
    assert leaders(sim) == []
    assert sim.run_until_true(lambda: one_leader(sim) is not None, timeout=10) is not None
    other = next(h for h in sim.running() if h is not old)
    ext(other).send_info(old.address, sim.now)
    sim._flush(other)
    sim.run_for(1)
    infos = [e for n, e in events(sim, ElectionInfo) if n == old.name]
    assert infos and infos[0].sender == other.name  # type: ignore[attr-defined]


def test_two_node_waits_for_all_then_tie_breaker_survives_alone() -> None:
    cfg = ElectionConfig(2, two_node=True)
    sim = Simulation(5, extensions=lambda h: [Election(cfg)])
    a = sim.add_node()
    sim.run_for(20)
    assert leaders(sim) == []  # wait_for_all: never quorate before both met
    b = sim.add_node(join=[a.name])
    sim.run_until_true(lambda: one_leader(sim) is not None, timeout=20)
    tie = min((a, b), key=lambda h: h.config.node_id)
    other = b if tie is a else a
    sim.crash(other.name)
    assert sim.run_until_true(lambda: leaders(sim) == [tie.name], timeout=20) is not None
    sim.restart(other.name)
    sim.run_until_true(lambda: one_leader(sim) is not None, timeout=20)
    sim.crash(tie.name)
    sim.run_for(20)
    assert leaders(sim) == []  # without a heartbeat disk the other one may not take over


def test_a_majority_of_three_keeps_a_leader_under_heavy_loss() -> None:
    """3 of 5 connected with 20 % loss: quorum needs every reply. Lost requests and replies
    are asked again within the round, and a leader whose lease lapsed stands again at once
    (its followers still back it), so the majority is led at least 85 % of the time
    (before both: 65-81 %)."""
    for seed in (1, 2, 3):
        sim = make(seed=seed)
        sim.run_until_true(lambda: len(leaders(sim)) == 1, timeout=10)  # noqa: B023
        sim.network.partition(["n0", "n1", "n2"], ["n3", "n4"])
        sim.network.set_loss(0.2)
        led = 0
        for _ in range(1200):
            sim.run_for(0.1)
            led += any(ext(sim.hosts[n]).is_leader(sim.now) for n in ("n0", "n1", "n2"))
        assert led / 1200 >= 0.85, (seed, led / 1200)
        assert not set(leaders(sim)) & {"n3", "n4"}


def test_a_node_cut_off_from_everyone_does_not_panic_the_cluster() -> None:
    """Silence is no inconsistency when the silent node's own probes fail: an isolated
    node must not enter panic (its panic would reach the leader after the heal, and
    every node with it, until an operator's `covey recover`). Slow probing (10 s) keeps
    its peers alive in its table long enough for 20 silent rounds."""
    cfg = ElectionConfig(5)
    sim = Simulation(
        4, extensions=lambda h: [Election(cfg, VoteStore())], probe_interval=10.0, probe_timeout=2.0
    )
    sim.bootstrap(5)
    sim.run_until_true(lambda: one_leader(sim) is not None, timeout=30)
    cut = next(h for h in sim.hosts if h != leaders(sim)[0])
    sim.network.partition([cut], [h for h in sim.hosts if h != cut])
    sim.run_for(60.0)
    sim.network.heal()
    sim.run_until_true(lambda: one_leader(sim) is not None, timeout=60)
    sim.run_for(10.0)
    assert not events(sim, PanicEntered)
    assert all(ext(h).panic_reason is None for h in sim.running())


def test_elections_nobody_answers_while_members_talk_are_panic() -> None:
    """The seed's 'election with no votes': members answer probes but never a vote."""
    sim = make(seed=5)
    sim.run_until_true(lambda: one_leader(sim) is not None, timeout=10)
    leader = leaders(sim)[0]
    asker = next(n for n in sim.hosts if n != leader)
    for h in sim.hosts.values():
        if h.name != asker:
            ext(h).on_message = lambda *a, **k: None  # type: ignore[method-assign]
    sim.crash(leader)
    got = sim.run_until_true(lambda: ext(sim.hosts[asker]).panic_reason is not None, timeout=60)
    assert got is not None
    assert "elections get no answer" in str(ext(sim.hosts[asker]).panic_reason)
