"""Deliveries survive crashes: real ``covey agent`` processes and a real Redis, killed -9.

Issue 11's "Must show", each on 127.0.0.1 only:

1. the owner is killed with SIGKILL while it creates 100 deliveries and restarted with
   its name and data directory (both backends): every delivery it acknowledged ends
   complete, once;
2. (Redis) the owner is killed and *not* restarted: a live node takes its deliveries
   over and completes them;
3. (Redis) two owners create at once on one Redis while one of them dies: no stage is
   dispatched twice by two schedulers;
4. (Redis) Redis itself is killed -9 and restarted from its append-only file mid-run: the
   deliveries wait while it is down (``covey info`` says why), then resume, and nothing
   acknowledged is lost;
5. a bad or unreachable ``--scheduler`` stops the agent at start with exit status 2 and
   one line naming the field.

"Exactly once" is checked on what the nodes did, not only on what the owner says: each
receiver's handler appends ``ID STAGE`` to its own run log (deliveries_helpers.handler)
and answers ``ok-<name>``. Every acknowledged delivery must end ``complete`` with exactly
K receipts per stage, from distinct nodes, each of which ran the handler for that stage
exactly once; no node ran any handler twice for one (delivery, stage); and every node
that ran a handler was asked by the final record (so no second scheduler dispatched the
stage behind the record's back).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from covey.core.deliveries.codec import record_from_plain
from covey.runtime.control.client import ClientError
from covey.runtime.localcluster import AgentProcess, LocalCluster, wait_until
from covey.runtime.localcluster import free_port as agent_port

from .deliveries_helpers import FAST, Backend, counters, handler, runs, show
from .redis_server import RedisServer, free_port

#: Two stages: two receipts, then one from a member that did not answer the first.
STAGES = ["2:any", "1!:any"]
#: Deliveries the owner sets out to create; it is killed part-way.
COUNT = 100
#: The owner is killed once this many creates were acknowledged.
KILL_AT = 40
#: Seconds each handler run takes, so that deliveries are in flight at the kill.
SLOW = 0.1
#: Seconds an asked member has to answer before it is replaced (``--delivery-deadline``):
#: longer than WAIT, so that a delivery that would finish only by waiting out an ask
#: (something in flight at the crash not asked again) fails the test instead of passing
#: slowly. Every delivery here finishes in a few seconds when all is well.
ASK_DEADLINE = 120
#: Generous bound of every wait on a condition (a failure, not a flake, when passed).
WAIT = 60.0
DONE = ("complete", "failed", "cancelled")


# ---------------------------------------------------------------------- agents


def agent_args(cluster: LocalCluster, backend: Backend, name: str) -> list[str]:
    """Everything ``name`` is started with, the same again at a restart."""
    w = cluster.workdir
    cmd = handler(w, name, sleep=SLOW)
    deadline = ["--delivery-deadline", str(ASK_DEADLINE)]
    return [*FAST, *backend.args(w, name), "--delivery-handler", cmd, *deadline]


def launch(cluster: LocalCluster, backend: Backend, names: list[str]) -> list[AgentProcess]:
    """Start ``names`` on ``backend`` and wait until every one sees all of them alive."""
    agents = [cluster.spawn(n, extra=agent_args(cluster, backend, n), wait=False) for n in names]
    for a in agents:
        cluster.wait_ready(a)
    wait_until(lambda: cluster.converged(names), WAIT, what="the cluster to converge")
    return agents


def kill9(agent: AgentProcess) -> None:
    """SIGKILL ``agent`` by its PID and reap it."""
    agent.signal(signal.SIGKILL)
    assert agent.wait(10) is not None, f"{agent.name} survived SIGKILL"


def node_id(agent: AgentProcess) -> str:
    """The agent's node id (hex)."""
    me: dict[str, Any] = agent.client(timeout=10).self_member()
    return str(me["id"])


class Creator(threading.Thread):
    """Creates deliveries on ``agent`` one after another, until ``count`` or a failure.

    ``ids`` are the acknowledged ones (their create returned an id); ``reached`` is set
    once ``signal_at`` were acknowledged (or the run ended). Bounded: ``count`` requests,
    each with a 10 s timeout.
    """

    def __init__(self, agent: AgentProcess, count: int, signal_at: int, tag: str) -> None:
        super().__init__(name=f"creator-{agent.name}", daemon=True)
        self.agent, self.count, self.signal_at, self.tag = agent, count, signal_at, tag
        self.ids: list[str] = []
        self.error: Exception | None = None
        self.reached = threading.Event()

    def run(self) -> None:
        try:
            for i in range(self.count):
                try:
                    got = self.agent.client(timeout=10).request(
                        "deliver_create", payload=f"{self.tag}-{i}", stages=STAGES
                    )
                except (ClientError, OSError) as exc:  # the agent was killed
                    self.error = exc
                    return
                self.ids.append(str(got["id"]))
                if len(self.ids) >= self.signal_at:
                    self.reached.set()
        finally:
            self.reached.set()

    def finish(self) -> list[str]:
        """Wait for the thread to end; the acknowledged ids."""
        self.join(30)
        assert not self.is_alive(), f"{self.name} did not end"
        return list(self.ids)


# ---------------------------------------------------------------------- records


def redis_records(server: RedisServer, cluster: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored records of ``ids`` in Redis, as ``covey deliver show`` shows them, with
    the hash's ``owner`` (who owns it now) as ``owner_now``."""
    r = server.client()
    try:
        pipe = r.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(f"covey:{cluster}:d:{i}", "record", "owner")
        rows = pipe.execute()
    finally:
        r.close()
    out = {}
    for i, (raw, owner) in zip(ids, rows, strict=True):
        if raw is not None:
            shown = record_from_plain(json.loads(raw)).to_json()
            shown["owner_now"] = owner.decode()
            out[i] = shown
    return out


def ended_all(read: Any, ids: list[str], what: str) -> dict[str, dict[str, Any]]:
    """Poll ``read(ids)`` until every one of ``ids`` ended; returns the records."""
    last: dict[str, Any] = {}

    def check() -> dict[str, dict[str, Any]]:
        nonlocal last
        last = read(ids)
        left = [i for i in ids if i not in last or last[i]["state"] not in DONE]
        return {} if left else last  # empty: not yet

    try:
        return wait_until(check, WAIT, interval=0.25, what=what)
    except TimeoutError:
        states = Counter(last[i]["state"] if i in last else "missing" for i in ids)
        reasons = Counter(last[i]["reason"] for i in ids if i in last and last[i]["reason"])
        raise AssertionError(f"{what}: not all ended: {dict(states)} {dict(reasons)}") from None


def shown_on(agent: AgentProcess) -> Any:
    """A reader of records through ``agent``'s ``deliver_show`` (unknown ids left out)."""

    def read(ids: list[str]) -> dict[str, dict[str, Any]]:
        out = {}
        for i in ids:
            try:
                out[i] = show(agent, i)
            except ClientError as exc:
                if "no delivery" not in str(exc):
                    raise
        return out

    return read


def check_once(workdir: Path, ids_of: dict[str, str], records: dict[str, dict[str, Any]]) -> None:
    """Every record complete with K distinct receipts per stage, each from a node that ran
    its handler exactly once; no handler ran twice anywhere; nobody ran unasked.

    ``ids_of``: name → node id (hex) of every node that may have run a handler.
    """
    ran = {n: runs(workdir, n) for n in ids_of}
    for n, counter in ran.items():
        twice = {k: c for k, c in counter.items() if c > 1}
        assert not twice, f"{n} ran a handler more than once for one stage: {twice}"
    states = Counter(r["state"] for r in records.values())
    assert states == Counter(complete=len(records)), f"final states: {dict(states)}"
    for item, rec in records.items():
        before: set[str] = set()
        for s, stage in enumerate(rec["stages"]):
            nodes = [x["node"] for x in stage["receipts"]]
            assert len(nodes) == stage["required"], (item, s, "receipts != K", stage)
            assert len(set(nodes)) == len(nodes), (item, s, "a node twice", stage)
            assert len(set(stage["asked"])) == len(stage["asked"]), (item, s, "asked twice")
            if s == 1:  # "1!": none of the members that answered stage 0
                assert not set(nodes) & before, (item, "stage 1 took a stage-0 node", rec)
            before |= set(nodes)
            for x in stage["receipts"]:
                who = x["result"].removeprefix("ok-").strip()
                assert ids_of.get(who) == x["node"], (item, s, "receipt not its node's", x)
                assert ran[who][(item, s)] == 1, (item, s, who, "a receipt without a run")
    # No second scheduler dispatched a stage behind the record: each run was asked by it.
    for name, nid in ids_of.items():
        for item, s in ran[name]:
            if item in records:
                asked = records[item]["stages"][s]["asked"]
                assert nid in asked, f"{name} ran {item} stage {s} unasked (asked: {asked})"


def none_waited_out(agents: list[AgentProcess]) -> None:
    """No live owner had to wait out an ask's deadline: whatever was in flight at the
    crash was asked again at once (re-sent, taken over, or resumed)."""
    for a in agents:
        if a.running():
            silent = counters(a).get("owner.replaced_silent", 0)
            assert silent == 0, f"{a.name} replaced {silent} asks only at their deadline"


def unfinished(server: RedisServer, cluster: str, ids: list[str]) -> list[str]:
    """Those of ``ids`` whose stored record has not ended (in flight)."""
    return [i for i, r in redis_records(server, cluster, ids).items() if r["state"] not in DONE]


def completed_stage_one(workdir: Path, names: list[str]) -> set[str]:
    """Deliveries for which some node has finished its stage-1 (last) handler."""
    return {item for n in names for item, s in runs(workdir, n) if s == 1}


# ---------------------------------------------------------------------- the tests


def test_owner_killed_mid_run_restarts_and_ends_each_delivery_once(
    cluster: LocalCluster, backend: Backend
) -> None:
    names = ["own", "r1", "r2", "r3", "r4"]
    agents = launch(cluster, backend, names)
    owner, w = agents[0], cluster.workdir
    ids_of = {a.name: node_id(a) for a in agents}

    creator = Creator(owner, COUNT, KILL_AT, "d")
    creator.start()
    assert creator.reached.wait(WAIT), "the creates did not get going"
    kill9(owner)  # while creates are still arriving
    acked = creator.finish()
    finished = completed_stage_one(w, names[1:])
    assert KILL_AT <= len(acked) < COUNT, f"{len(acked)} acknowledged: not killed mid-run"
    assert creator.error is not None
    in_flight = set(acked) - finished
    assert in_flight, "every delivery had ended before the kill: nothing was in flight"

    # The same name and data directory: the same node, on a new port.
    again = cluster.spawn("own", extra=agent_args(cluster, backend, "own"))
    assert node_id(again) == ids_of["own"]
    if backend.redis is None:
        read = shown_on(again)
    else:  # the authority is Redis (another node may have taken some over meanwhile)
        server = backend.redis
        read = lambda ids: redis_records(server, cluster.cluster, ids)  # noqa: E731
    records = ended_all(read, acked, "the acknowledged deliveries to end after the restart")
    check_once(w, ids_of, records)
    none_waited_out(cluster.running())  # the restarted owner re-sent its asks at once


def test_a_live_node_takes_over_a_dead_owners_deliveries(
    cluster: LocalCluster, redis_server: RedisServer
) -> None:
    backend = Backend("redis", redis_server)
    names = ["own", "s1", "s2", "s3", "s4"]
    agents = launch(cluster, backend, names)
    owner, w = agents[0], cluster.workdir
    ids_of = {a.name: node_id(a) for a in agents}

    creator = Creator(owner, COUNT, KILL_AT, "t")
    creator.start()
    assert creator.reached.wait(WAIT), "the creates did not get going"
    kill9(owner)  # and it stays dead
    acked = creator.finish()
    left = unfinished(redis_server, cluster.cluster, acked)
    assert left, "every delivery had ended before the kill: nothing to take over"

    read = lambda ids: redis_records(redis_server, cluster.cluster, ids)  # noqa: E731
    records = ended_all(read, acked, "the survivors to finish the dead owner's deliveries")
    check_once(w, ids_of, records)
    survivors = {ids_of[n] for n in names[1:]}
    moved = {i: records[i]["owner_now"] for i in left}
    assert set(moved.values()) <= survivors, moved
    taken = sum(counters(a).get("taken_over", 0) for a in agents[1:])
    assert taken >= len(left), (taken, len(left))
    none_waited_out(agents[1:])  # taken over in flight, not at their ask deadlines


def test_two_schedulers_on_one_redis_never_dispatch_a_stage_twice(
    cluster: LocalCluster, redis_server: RedisServer
) -> None:
    backend = Backend("redis", redis_server)
    names = ["a", "b", "c", "d", "e"]
    agents = launch(cluster, backend, names)
    w = cluster.workdir
    ids_of = {x.name: node_id(x) for x in agents}
    per_owner = COUNT // 2

    first = Creator(agents[0], per_owner, per_owner // 2, "a")
    second = Creator(agents[1], per_owner, per_owner, "b")
    first.start()
    second.start()
    assert first.reached.wait(WAIT), "a's creates did not get going"
    kill9(agents[0])  # b and the others take a's deliveries over while b creates its own
    acked_a = first.finish()
    orphans = unfinished(redis_server, cluster.cluster, acked_a)
    acked_b = second.finish()
    assert second.error is None and len(acked_b) == per_owner, second.error
    assert orphans, "a's deliveries had all ended before the kill: nothing to take over"

    read = lambda ids: redis_records(redis_server, cluster.cluster, ids)  # noqa: E731
    records = ended_all(read, acked_a + acked_b, "both owners' deliveries to end")
    check_once(w, ids_of, records)
    assert all(records[i]["owner_now"] == ids_of["b"] for i in acked_b)
    survivors = {ids_of[n] for n in names[1:]}
    assert all(records[i]["owner_now"] in survivors for i in orphans)
    none_waited_out(agents[1:])


def test_redis_killed_and_restarted_mid_run_loses_nothing_acknowledged(
    cluster: LocalCluster, redis_server: RedisServer
) -> None:
    backend = Backend("redis", redis_server)
    names = ["own", "r1", "r2", "r3"]
    agents = launch(cluster, backend, names)
    owner, w = agents[0], cluster.workdir
    ids_of = {a.name: node_id(a) for a in agents}

    before = Creator(owner, KILL_AT, KILL_AT, "before")
    before.start()
    acked = before.finish()  # all acknowledged, many still in flight
    assert len(acked) == KILL_AT, before.error
    r = redis_server.client()
    in_flight = r.zcard(f"covey:{cluster.cluster}:due")
    r.close()
    assert in_flight, "every delivery had ended before Redis was killed"
    redis_server.kill9()

    # While Redis is down the owner refuses to create (or acknowledges nothing it could
    # not store), and says why it waits.
    refused: list[str] = []

    def waiting() -> bool:
        try:
            got = owner.client(timeout=10).request(
                "deliver_create", payload="during", stages=STAGES
            )
            acked.append(str(got["id"]))  # acknowledged: it must survive too
        except ClientError as exc:
            refused.append(str(exc))
        why = owner.client(timeout=10).info()["deliveries"]["waiting_for_store"]
        return isinstance(why, str) and why != "" and bool(refused)

    wait_until(waiting, WAIT, interval=0.2, what="the owner to wait for its store")
    assert all("store" in e for e in refused), refused

    redis_server.restart()  # same port, same directory: the append-only file is replayed

    def resumed() -> bool:
        infos = [a.client(timeout=10).info()["deliveries"] for a in agents]
        return all(d["waiting_for_store"] is None for d in infos)

    wait_until(resumed, WAIT, what="every agent to resume")
    after = Creator(owner, 10, 10, "after")
    after.start()
    acked += after.finish()
    assert after.error is None, after.error

    read = lambda ids: redis_records(redis_server, cluster.cluster, ids)  # noqa: E731
    records = ended_all(read, acked, "every acknowledged delivery to end")
    check_once(w, ids_of, records)
    none_waited_out(agents)  # resumed at once: what was refused meanwhile was asked again


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://127.0.0.1:{free}/0", "cannot reach redis"),
        ("http://x", "is not a redis://"),
        ("redis://127.0.0.1:99999/0", "bad port"),
    ],
)
def test_a_bad_scheduler_stops_the_agent_at_start(
    cluster: LocalCluster, url: str, says: str
) -> None:
    url = url.format(free=free_port())  # nothing listens there
    argv = cluster.command(
        "bad", agent_port(), extra=["--data-dir", str(cluster.workdir / "bad"), "--scheduler", url]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    done = subprocess.run(argv, capture_output=True, timeout=60, env=env, check=False)
    err = done.stderr.decode(errors="replace").strip()
    assert done.returncode == 2, (done.returncode, err)
    assert len(err.splitlines()) == 1, err
    assert "scheduler" in err and says in err, err
