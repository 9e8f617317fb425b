"""Deliveries on simulated clusters: stages, silent and failed members, owner restarts.

Every host's effects go to a simulated disk (:class:`covey.sim.deliveries_chaos.Disk`)
and a restarted host's capability is rebuilt from it.
"""

from __future__ import annotations

from covey.core.deliveries import DeliveriesConfig, DeliveryState, StageSpec
from covey.sim import HostState
from covey.sim.deliveries_chaos import DeliveryCluster

TIMINGS = {"probe_interval": 1.0, "probe_timeout": 0.5, "gossip_interval": 0.2}


def world(n: int = 6, **kw: object) -> DeliveryCluster:
    return DeliveryCluster(7, nodes=n, **TIMINGS, **kw)  # type: ignore[arg-type]


def ended(w: DeliveryCluster, owner: str, item: bytes) -> bool:
    rec = w.stored(owner, item)
    return rec is not None and rec.state.done


def names_of(w: DeliveryCluster, nodes: object) -> set[str]:
    return {w.names[n] for n in nodes}  # type: ignore[attr-defined]


def test_two_stages_complete_with_one_handler_run_per_receipt() -> None:
    w = world()
    w.sim.run_for(1.0)
    stages = [StageSpec.parse("3:any"), StageSpec.parse("2!:any")]
    rec = w.create("n0", stages, payload=b"x" * 65536)
    assert w.sim.run_until_true(lambda: ended(w, "n0", rec.id), timeout=10.0) is not None
    done = w.stored("n0", rec.id)
    assert done is not None and done.state is DeliveryState.COMPLETE
    first, second = (names_of(w, p.answered()) for p in done.progress)
    assert len(first) == 3 and len(second) == 2 and not first & second
    assert "n0" not in first | second
    assert sorted(w.runs.values()) == [1] * 5
    assert w.completed[rec.id] == 1
    assert w.check_end({rec.id: "n0"}) == (1, 0) and not w.violations


def test_a_paused_member_is_replaced_at_the_deadline_and_discards_the_request() -> None:
    w = world(5)
    w.sim.run_for(1.0)
    rec = w.create("n0", [StageSpec.parse("1:n1,n4", deadline=2.0)])
    (silent,) = names_of(w, rec.current.asked)
    (other,) = {"n1", "n4"} - {silent}
    w.sim.pause(silent, 8.0)  # stalled before the request arrives: it waits in the buffer
    t = w.sim.run_until_true(lambda: ended(w, "n0", rec.id), timeout=20.0)
    assert t is not None and 3.0 <= t < 4.0  # replaced at the 2 s deadline, not before
    done = w.stored("n0", rec.id)
    assert done is not None and done.state is DeliveryState.COMPLETE
    assert names_of(w, done.progress[0].answered()) == {other}
    assert done.progress[0].asked == (rec.current.asked[0], w.sim.hosts[other].config.node_id)
    w.sim.run_for(10.0)  # the stalled one wakes: its request expired long ago
    assert w.cap(silent).counters["receiver.requests_expired"] == 1
    assert (silent, rec.id, 0) not in w.runs
    assert w.check_end({rec.id: "n0"}) == (1, 0) and not w.violations


def test_a_member_crashing_while_asked_is_replaced_without_waiting_for_the_deadline() -> None:
    w = world(6, config=DeliveriesConfig(ask_deadline=60.0))
    w.sim.run_for(1.0)
    rec = w.create("n0", [StageSpec.parse("2:any")])
    victim = sorted(names_of(w, rec.current.asked))[0]
    w.sim.crash(victim)  # before the request arrives: the connection is refused
    t = w.sim.run_until_true(lambda: ended(w, "n0", rec.id), timeout=30.0)
    assert t is not None and t < 5.0  # far before the 60 s ask deadline
    done = w.stored("n0", rec.id)
    assert done is not None and done.state is DeliveryState.COMPLETE
    assert victim not in names_of(w, done.progress[0].answered())
    assert len(done.progress[0].asked) == 3
    assert w.cap("n0").counters["owner.replaced_gone"] == 1


def test_an_owner_restarted_mid_delivery_finishes_it_exactly_once() -> None:
    w = world(6)
    w.sim.run_for(1.0)
    for name in ("n1", "n2", "n3", "n4", "n5"):
        w.sim.pause(name, 2.0)
    items = [w.create("n0", [StageSpec.parse("2:any", deadline=4.0)]).id for _ in range(5)]
    w.sim.crash("n0")  # its requests are queued at the paused receivers; answers bounce
    w.sim.run_for(3.0)
    w.sim.restart("n0")  # rebuilt from its disk
    assert w.sim.hosts["n0"].state is HostState.RUNNING
    assert all(not w.cap("n0").get(i).state.done for i in items)  # type: ignore[union-attr]
    w.sim.run_until_true(lambda: all(ended(w, "n0", i) for i in items), timeout=60.0)
    assert w.check_end(dict.fromkeys(items, "n0")) == (5, 0)
    assert not w.violations
    assert all(n == 1 for n in w.runs.values())


def test_a_repeat_after_both_restart_is_answered_from_the_receivers_disk() -> None:
    w = world(4)
    w.sim.run_for(1.0)
    rec = w.create("n0", [StageSpec.parse("1:n1", deadline=30.0)])
    w.sim.crash("n0")  # the request is on its way; n1's receipt will bounce
    w.sim.run_for(1.0)
    assert w.runs[("n1", rec.id, 0)] == 1
    w.sim.crash("n1")
    w.sim.restart("n1")  # a fresh process, rebuilt from its disk
    w.sim.restart("n0")  # re-sends its outstanding ask once it sees n1 again
    w.sim.run_until_true(lambda: ended(w, "n0", rec.id), timeout=30.0)
    done = w.stored("n0", rec.id)
    assert done is not None and done.state is DeliveryState.COMPLETE
    assert done.progress[0].receipts[0].result == b"n1"
    assert w.runs[("n1", rec.id, 0)] == 1  # answered from the record, not run again
    assert w.cap("n1").counters["receiver.requests_repeated"] == 1
