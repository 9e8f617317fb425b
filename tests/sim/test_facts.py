"""Shared state in the simulator: facts, lowest version, settings, actions; loss and churn."""

from __future__ import annotations

from collections import Counter

from cryptography.fernet import Fernet

from covey.core.effects import Effect
from covey.core.events import Event
from covey.core.state.actions import ActionDelivered, Actions, RecordAction
from covey.core.state.facts.capability import VERSION_KEY, Entry, Facts, SaveFact
from covey.core.state.messages import FactDigest
from covey.core.state.settings import ClusterSettings
from covey.core.state.versions import parse_version
from covey.sim import LinkModel, SimHost, Simulation


class MemoryStore:
    """A host's disk for its own facts: outlives the simulated process."""

    def __init__(self) -> None:
        self.seq = 0
        self.entries: dict[str, Entry] = {}

    def restored(self) -> tuple[int, dict[str, Entry]]:
        return self.seq, dict(self.entries)

    def write(self, effect: SaveFact) -> None:
        self.seq = effect.seq
        self.entries[effect.key] = (effect.seq, effect.value)


class MemoryActionLog:
    """A host's disk for the ids of the actions it ran: outlives the simulated process."""

    def __init__(self) -> None:
        self.clock = 0
        self.ids: list[bytes] = []

    def restored(self) -> tuple[int, list[bytes]]:
        return self.clock, list(self.ids)

    def write(self, effect: RecordAction) -> None:
        self.ids.append(effect.action_id)
        self.clock = effect.clock


class World:
    """A simulation whose hosts run facts, settings and actions, with disks and handlers.

    The scenario plays the runtime's part: it writes each host's effects to that host's
    disks (the simulator applies a step's effects before its events), and runs the action
    handler on every ``ActionDelivered``, answering through ``Actions.answer``.
    """

    def __init__(
        self, seed: int, *, loss: float = 0.0, action_logs: bool = True, **kw: object
    ) -> None:
        self.disks: dict[str, MemoryStore] = {}
        self.action_logs: dict[str, MemoryActionLog] | None = {} if action_logs else None
        self.runs: dict[str, Counter[bytes]] = {}
        self.sim = Simulation(
            seed, extensions=self._extensions, link=LinkModel(loss=loss, delay=0.002), **kw
        )
        self.sim.effect_listeners.append(self._write)
        self.sim.listeners.append(self._on_event)

    def _extensions(self, h: SimHost) -> list[Facts | ClusterSettings | Actions]:
        disk = self.disks.setdefault(h.name, MemoryStore())
        self.runs.setdefault(h.name, Counter())
        restored = None
        if self.action_logs is not None:
            restored = self.action_logs.setdefault(h.name, MemoryActionLog()).restored()
        return [Facts(restored=disk.restored()), ClusterSettings(), Actions(restored=restored)]

    def _write(self, h: SimHost, effect: Effect) -> None:
        if isinstance(effect, SaveFact):
            self.disks[h.name].write(effect)
        elif isinstance(effect, RecordAction) and self.action_logs is not None:
            self.action_logs[h.name].write(effect)

    def _on_event(self, h: SimHost, now: float, event: Event) -> None:
        if isinstance(event, ActionDelivered):
            self.runs[h.name][event.action_id] += 1
            self.actions(h).answer(event.action_id, True, f"{event.name} done on {h.name}", now)

    def facts(self, h: SimHost) -> Facts:
        ext = h.node.capability("facts")
        assert isinstance(ext, Facts)
        return ext

    def settings(self, h: SimHost) -> ClusterSettings:
        ext = h.node.capability("settings")
        assert isinstance(ext, ClusterSettings)
        return ext

    def actions(self, h: SimHost) -> Actions:
        ext = h.node.capability("actions")
        assert isinstance(ext, Actions)
        return ext

    def facts_agree(self) -> bool:
        """Every running host holds exactly every running host's own facts."""
        up = self.sim.running()
        truth = {h.config.node_id: self.facts(h).facts_of(h.config.node_id) for h in up}
        return all(self.facts(h).facts_of(nid) == want for h in up for nid, want in truth.items())

    def lowest_agrees(self) -> bool:
        """Every running host computes the true lowest version over the running hosts."""
        up = self.sim.running()
        true = min((self.facts(h).local_version or "0" for h in up), key=lambda v: parse_version(v))
        return all(self.facts(h).lowest_version() == true for h in up)


def test_facts_and_lowest_version_converge_with_100_nodes_under_loss_and_churn() -> None:
    w = World(11, loss=0.10)
    sim = w.sim
    hosts = sim.bootstrap(100)
    for i, h in enumerate(hosts):
        f = w.facts(h)
        f.set(VERSION_KEY, f"4.{12 + i % 5}", sim.now)
        f.set("ready", "yes" if i % 2 else "no", sim.now)
        f.set("admin-state", "started", sim.now)
    assert sim.run_until_true(w.facts_agree, timeout=60.0) is not None
    assert sim.run_until_true(w.lowest_agrees, timeout=10.0) is not None
    assert {w.facts(h).lowest_version() for h in hosts} == {"4.12"}

    # Churn: the only 4.12 nodes leave or crash, newcomers join, facts keep changing.
    oldest = [h for i, h in enumerate(hosts) if i % 5 == 0]
    for h in oldest[:10]:
        sim.leave(h.name)
    for h in oldest[10:]:
        sim.crash(h.name)
    for i in range(5):
        fresh = sim.add_node(f"new{i}", join=[hosts[1].name])
        w.facts(fresh).set(VERSION_KEY, "5.0", sim.now)
        w.facts(fresh).set("ready", "yes", sim.now)
    for h in hosts[1:40:3]:
        if h.up:
            w.facts(h).set("admin-state", "stopped", sim.now)
            w.facts(h).delete("ready", sim.now)
    sim.run_for(5.0)
    # Two crashed nodes come back with their disks; one with its disk lost.
    sim.restart(oldest[10].name)
    sim.restart(oldest[11].name)
    w.disks[oldest[12].name].__init__()  # type: ignore[misc]
    sim.restart(oldest[12].name)
    w.facts(oldest[12]).set(VERSION_KEY, "4.20", sim.now)

    assert sim.run_until_true(w.facts_agree, timeout=120.0) is not None
    assert sim.run_until_true(w.lowest_agrees, timeout=60.0) is not None
    lows = {w.facts(h).lowest_version() for h in sim.running()}
    assert lows == {"4.12"}  # the two restarted 4.12 nodes are back
    # The node that lost its disk re-asserted itself: no stale fact of its past life.
    reborn = oldest[12].config.node_id
    assert all(w.facts(h).facts_of(reborn) == {VERSION_KEY: "4.20"} for h in sim.running())
    # Facts of members that left are gone everywhere (a restarted node may have pulled
    # them from a peer that had not yet heard of the leave; it drops them after a grace).
    gone = {h.config.node_id for h in oldest[:10]}
    assert sim.run_until_true(
        lambda: all(not gone & w.facts(h).origins.keys() for h in sim.running()), timeout=30.0
    )


def test_lowest_version_follows_leaves_and_can_count_failed_members() -> None:
    w = World(12, loss=0.05)
    sim = w.sim
    hosts = sim.bootstrap(20)
    for i, h in enumerate(hosts):
        w.facts(h).set(VERSION_KEY, "9000000" if i else "8999999", sim.now)
    w.facts(hosts[1]).count_failed = True
    assert sim.run_until_true(w.lowest_agrees, timeout=30.0) is not None
    assert w.facts(hosts[5]).lowest_version() == "8999999"
    sim.crash(hosts[0].name)
    assert sim.run_until_true(lambda: w.facts(hosts[5]).lowest_version() == "9000000", timeout=60.0)
    # A node that counts failed-but-not-left members still sees the old version.
    assert w.facts(hosts[1]).lowest_version() == "8999999"


def test_concurrent_setting_writes_converge_to_one_value_everywhere() -> None:
    w = World(13, loss=0.10)
    sim = w.sim
    hosts = sim.bootstrap(100)
    sim.run_for(2.0)
    writers = hosts[::10]
    writes = [  # ten writes at the same instant
        w.settings(h).set("registry", f'{{"ip":"10.0.0.{i}","port":5000,"key":"k"}}', sim.now)
        for i, h in enumerate(writers)
    ]
    w.settings(hosts[3]).set("steward", '{"ip":"10.0.0.99","port":6000}', sim.now)

    def agreed() -> bool:
        values = {(w.settings(h).get("registry"), w.settings(h).get("steward")) for h in hosts}
        return len(values) == 1 and None not in next(iter(values))

    assert sim.run_until_true(agreed, timeout=60.0) is not None
    # The winner is the highest (Lamport time, writer id), the same on every node.
    winner = max(writes, key=lambda u: u.stamp)
    assert all(w.settings(h).values["registry"] == winner for h in hosts)
    # A write made after seeing them all wins over every one of them.
    w.settings(hosts[50]).set("registry", "later", sim.now)
    assert sim.run_until_true(
        lambda: all(w.settings(h).get("registry") == "later" for h in hosts), timeout=60.0
    )


def test_an_action_runs_exactly_once_on_each_live_node_and_reports_back() -> None:
    w = World(14, loss=0.10)
    sim = w.sim
    hosts = sim.bootstrap(100)
    for h in hosts[90:]:
        sim.crash(h.name)
    sim.run_for(30.0)  # the crashed ones are declared failed
    origin = hosts[0]
    first = w.actions(origin).start("zstop", "vm-7", sim.now)
    second = w.actions(hosts[7]).start("zstart", "vm-7", sim.now)
    live = [h for h in hosts if h.up]
    assert sim.run_until_true(
        lambda: not w.actions(origin).pending(first) and not w.actions(hosts[7]).pending(second),
        timeout=60.0,
    )
    sim.run_for(40.0)  # more push-pulls, which carry recent actions: no second run
    for h in live:
        assert w.runs[h.name][first] == 1 and w.runs[h.name][second] == 1, h.name
    for h in hosts[90:]:
        assert first not in w.runs[h.name]
    results = w.actions(origin).outstanding[first].results
    assert len(results) == len(live)
    assert all(ok for ok, _ in results.values())


def test_an_action_reaches_every_node_of_a_small_cluster_in_one_hop_unheld() -> None:
    """The origin pushes its action to every member at once (as its own tags), and each
    delivers it on arrival: all ten have run it one datagram delay (2-2.5 ms) later."""
    w = World(15)
    sim = w.sim
    hosts = sim.bootstrap(10)
    sim.run_for(1.0)
    t0 = sim.now
    action = w.actions(hosts[3]).start("zstop", "vm-7", t0)
    sim._flush(hosts[3])
    sim.run_for(0.0026)  # LinkModel(delay=0.002) plus at most 0.5 ms of jitter
    assert all(w.runs[h.name][action] == 1 for h in hosts), [w.runs[h.name] for h in hosts]


def test_facts_too_big_for_a_datagram_travel_by_pull() -> None:
    w = World(15, keys=[Fernet.generate_key()])
    sim = w.sim
    hosts = sim.bootstrap(8)
    big = "x" * 1024
    w.facts(hosts[0]).set("blob", big, sim.now)
    assert sim.run_until_true(
        lambda: all(w.facts(h).facts_of(hosts[0].config.node_id).get("blob") == big for h in hosts),
        timeout=10.0,
    )


def test_digests_run_only_after_changes_and_still_close_a_hole() -> None:
    """An idle cluster exchanges no digests; a change starts them for a few rounds, and
    they bring the change to a node that missed it."""
    w = World(21)
    sim = w.sim
    hosts = sim.bootstrap(8)
    digests: Counter[str] = Counter()
    for h in hosts:
        node, real = h.node, h.node.open_stream

        def counting(addr, msgs, *, now, real=real, name=h.name):  # type: ignore[no-untyped-def]
            digests[name] += sum(isinstance(m, FactDigest) for m in msgs)
            return real(addr, msgs, now=now)

        node.open_stream = counting  # type: ignore[method-assign]
    sim.run_for(30.0)  # joins settle; their busy rounds end
    digests.clear()
    sim.run_for(60.0)
    assert sum(digests.values()) == 0

    # n7 is cut off while n0 publishes, and back before n0's busy rounds end.
    sim.network.partition([h.name for h in hosts[:7]], [hosts[7].name])
    w.facts(hosts[0]).set("admin-state", "stopped", sim.now)
    sim.run_for(1.0)
    sim.network.heal()
    origin = hosts[0].config.node_id
    got = sim.run_until_true(
        lambda: w.facts(hosts[7]).facts_of(origin).get("admin-state") == "stopped", timeout=10.0
    )
    assert got is not None and sum(digests.values()) > 0


def test_a_restarted_node_does_not_run_an_action_twice() -> None:
    """n3 runs the action, crashes and restarts while push-pulls still carry it: with its
    action log it refuses the id it ran; without one (memory only) it runs it again."""
    for logs, want in ((True, 1), (False, 2)):
        w = World(23, action_logs=logs)
        sim = w.sim
        hosts = sim.bootstrap(5)
        sim.run_for(5.0)
        action = w.actions(hosts[0]).start("zstop", "vm-7", sim.now)
        n3 = hosts[3]
        assert sim.run_until_true(lambda: w.runs[n3.name][action] == 1, timeout=10.0)  # noqa: B023
        sim.crash(n3.name)
        sim.run_for(1.0)
        sim.restart(n3.name)
        sim.run_for(25.0)  # within the 30 s sync window: every push-pull carries it
        assert w.runs[n3.name][action] == want, logs
        assert all(w.runs[h.name][action] == 1 for h in hosts if h is not n3)
