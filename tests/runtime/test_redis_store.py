"""The Redis deliveries store against a real redis-server (loopback, AOF, fsync always)."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from core.deliveries.helpers import Journal, receipt, stage
from core.fakes import FakeHandle, add_member, attach, node_id

from covey.core.deliveries import (
    Deliveries,
    DeliveryRecord,
    DeliveryRequest,
    DeliveryState,
    HandledRecord,
    SaveDelivery,
    SaveHandled,
)
from covey.core.deliveries.codec import record_to_plain
from covey.runtime.config.model import ConfigError
from covey.runtime.features.deliveries.redis_store import RedisDeliveryStore
from covey.runtime.features.deliveries.store import Fenced, SharedStore, StoreUnavailable

from .redis_server import RedisServer, free_port

A, B, C = node_id(1), node_id(7), node_id(8)  # A owns the records the capability makes
FAR = 1e12  # a "now" by which everything is due
_seeds = itertools.count(1)


def owner_cluster(n: int) -> tuple[Deliveries, Journal]:
    """An owner (member 1) with members 2..n alive; its own seed, so its ids are new."""
    cap, h = Deliveries(), Journal(1, seed=next(_seeds))
    attach(cap, h)
    for i in range(2, n + 1):
        add_member(h, cap, i)
    return cap, h


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``cond`` until true; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisDeliveryStore]:
    s = RedisDeliveryStore.connect(redis_server.url, "test")
    yield s
    s.close()


def saved_versions() -> list[DeliveryRecord]:
    """Every version the owner capability saved of one two-stage delivery, in order."""
    cap, h = owner_cluster(6)
    cap.create(b"\x00\xffpayload", [stage("2:any", deadline=3.0), stage("1!:n3,role=x")], now=0.0)
    reqs = h.requests()
    receipt(cap, reqs[0][0], reqs[0][1], 1.0, b"r\x00")
    cap.on_timer(3.0)
    return [e.record for e in h.effects if isinstance(e, SaveDelivery)]


def orphans(n: int) -> list[DeliveryRecord]:
    """``n`` fresh deliveries owned by A, all due."""
    cap, _ = owner_cluster(3)
    return [cap.create(b"p%d" % i, [stage("1:any")], now=0.0) for i in range(n)]


def completed() -> DeliveryRecord:
    """The last version of a delivery that completed (due None)."""
    cap, h = owner_cluster(2)
    cap.create(b"done", [stage("1:any")], now=0.0)
    (req,) = h.requests()
    receipt(cap, req[0], req[1], 1.0)
    last = [e.record for e in h.effects if isinstance(e, SaveDelivery)][-1]
    assert last.state is DeliveryState.COMPLETE and last.due is None
    return last


def handled_records() -> list[HandledRecord]:
    """What a receiver (node 1) saved while handling one request."""
    cap = Deliveries(handler=lambda req: b"ok")
    h = FakeHandle(1)
    attach(cap, h)
    add_member(h, cap, 2)
    cap.on_stream(DeliveryRequest(bytes(16), 1, 9000, b"p"), node_id(2), ("x", 1), 1.0)
    cap.on_timer(1.0)
    out = [e.record for e in h.effects if isinstance(e, SaveHandled)]
    assert out
    return out


def test_it_is_a_shared_store(store: RedisDeliveryStore) -> None:
    shared: SharedStore = store  # mypy checks the protocol; this checks it at run time too
    assert shared.backend == "redis"


def test_records_round_trip_with_the_documented_key_layout(
    store: RedisDeliveryStore, redis_server: RedisServer
) -> None:
    versions = saved_versions()
    assert len(versions) >= 3
    for rec in versions:
        store.save_delivery(A, rec)
    last, done = versions[-1], completed()
    store.save_delivery(A, done)
    for rec in handled_records():
        store.save_handled(A, rec)
    assert store.get(last.id) == last
    assert store.get(done.id) == done
    assert store.get(bytes(16)) is None
    records, handled = store.load(A)
    assert sorted(records, key=lambda r: r.id) == sorted([last, done], key=lambda r: r.id)
    assert handled == [handled_records()[-1]]  # one per (delivery, stage): the latest
    assert store.schedule() == [(last.id, last.due)]  # the complete one left the set
    assert store.describe() == {
        "backend": "redis",
        "url": redis_server.url,
        "cluster": "test",
        "deliveries": 2,
        "due": 1,
        "counters": {"bad_records": 0, "bad_handled": 0},
    }
    raw, p = redis_server.client(), "covey:test:"
    h = raw.hgetall(f"{p}d:{last.id.hex()}")
    assert h[b"owner"] == A.hex().encode() and int(h[b"version"]) == last.version
    assert h[b"state"] == last.state.value.encode()
    assert json.loads(h[b"record"]) == record_to_plain(last)
    assert raw.zscore(f"{p}due", last.id.hex()) == last.due
    assert raw.zscore(f"{p}due", done.id.hex()) is None
    assert raw.zscore(f"{p}all", done.id.hex()) == done.created
    assert raw.smembers(f"{p}owned:{A.hex()}") == {last.id.hex().encode(), done.id.hex().encode()}
    assert raw.hkeys(f"{p}handled:{A.hex()}") == [f"{bytes(16).hex()}:1".encode()]
    raw.close()


def test_an_older_or_repeated_version_is_skipped(store: RedisDeliveryStore) -> None:
    versions = saved_versions()
    store.save_delivery(A, versions[-1])
    store.save_delivery(A, versions[0])
    store.save_delivery(A, versions[-1])
    store.save_delivery(A, replace(versions[-1], reason="same version, other content"))
    assert store.get(versions[0].id) == versions[-1]
    assert store.schedule() == [(versions[-1].id, versions[-1].due)]


def test_takeover_fences_the_old_owner(store: RedisDeliveryStore) -> None:
    v1, v2, *_ = saved_versions()
    store.save_delivery(A, v1)  # A holds no lease: dead to the others
    assert store.takeover(B, now=(v1.due or 0) - 1, limit=10) == []  # not due yet
    assert store.takeover(A, now=FAR, limit=10) == []  # never its own
    (claimed,) = store.takeover(B, now=FAR, limit=10)
    assert claimed == v1 and claimed.owner == A  # as stored
    assert store.owner(v1.id) == B
    with pytest.raises(Fenced) as err:
        store.save_delivery(A, v2)
    assert (err.value.delivery, err.value.owner) == (v1.id, B)
    assert store.get(v1.id) == v1
    assert store.load(A)[0] == [] and store.load(B)[0] == [v1]
    store.save_delivery(B, v2)
    assert store.get(v1.id) == v2
    assert store.takeover(C, now=FAR, limit=10) == [v2]  # B holds no lease either


def test_takeover_waits_until_the_owners_lease_expired(
    store: RedisDeliveryStore, redis_server: RedisServer
) -> None:
    (rec,) = orphans(1)
    store.save_delivery(A, rec)
    raw = redis_server.client()
    lease = f"covey:test:lease:{A.hex()}"
    store.renew(A, 5.0)  # long enough that even a slow machine claims nothing here
    assert store.takeover(B, now=FAR, limit=10) == []
    store.renew(A, 0.3)  # a renewal replaces the expiry
    assert 0 < raw.pttl(lease) <= 300
    wait_for(lambda: raw.exists(lease) == 0, "the lease to expire")
    assert store.takeover(B, now=FAR, limit=10) == [rec]
    raw.close()
    with pytest.raises(ValueError, match="ttl"):
        store.renew(A, 0)


def test_takeover_claims_at_most_limit(store: RedisDeliveryStore) -> None:
    for rec in orphans(12):
        store.save_delivery(A, rec)
    assert len(store.takeover(B, now=FAR, limit=5)) == 5
    assert store.takeover(B, now=FAR, limit=0) == []
    assert len(store.takeover(C, now=FAR, limit=50)) == 12  # B holds no lease


def test_two_racing_claimers_split_the_orphans(redis_server: RedisServer) -> None:
    recs = orphans(50)
    setup = RedisDeliveryStore.connect(redis_server.url, "test")
    for rec in recs:
        setup.save_delivery(A, rec)
    claimed: dict[bytes, list[bytes]] = {B: [], C: []}
    start = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def claim(node: bytes) -> None:
        s = RedisDeliveryStore.connect(redis_server.url, "test", timeout=5.0)
        try:
            s.renew(node, 60)  # alive: the other claimer must not take ours
            start.wait()
            for _ in range(100):
                got = s.takeover(node, now=FAR, limit=3)
                if not got:
                    return
                claimed[node].extend(r.id for r in got)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=claim, args=(n,)) for n in (B, C)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and not any(t.is_alive() for t in threads)
    b, c = set(claimed[B]), set(claimed[C])
    assert len(b) == len(claimed[B]) and len(c) == len(claimed[C])
    assert not b & c
    assert b | c == {r.id for r in recs}
    assert {r.id for r in setup.load(B)[0]} == b and {r.id for r in setup.load(C)[0]} == c
    assert all(setup.owner(i) == B for i in b) and setup.load(A)[0] == []
    setup.close()


def test_kill9_and_restart_lose_nothing_written(redis_server: RedisServer) -> None:
    s = RedisDeliveryStore.connect(redis_server.url, "test")
    versions, more, done = saved_versions(), orphans(20), completed()
    for rec in [*versions, *more, done]:
        s.save_delivery(A, rec)
    for h in handled_records():
        s.save_handled(A, h)
    before = (s.load(A), s.schedule())
    s.renew(A, 60)
    redis_server.kill9()  # right after the last write returned
    with pytest.raises(StoreUnavailable):
        s.get(done.id)
    redis_server.start()
    after = RedisDeliveryStore.connect(redis_server.url, "test")
    assert (after.load(A), after.schedule()) == before
    assert after.get(versions[0].id) == versions[-1]
    assert len(before[0][0]) == 22 and after.describe()["deliveries"] == 22
    assert after.takeover(B, now=FAR, limit=50) == []  # the lease survived too
    assert (s.load(A), s.schedule()) == before  # the first store reconnected by itself
    s.close()
    after.close()


def test_every_operation_is_unavailable_while_redis_is_down(
    store: RedisDeliveryStore, redis_server: RedisServer
) -> None:
    v1, v2, *_ = saved_versions()
    store.save_delivery(A, v1)
    redis_server.stop()
    where = f"redis at 127.0.0.1:{redis_server.port}"
    calls: list[Callable[[], object]] = [
        lambda: store.save_delivery(A, v2),
        lambda: store.save_handled(A, handled_records()[0]),
        lambda: store.get(v1.id),
        lambda: store.load(A),
        lambda: store.schedule(),
        lambda: store.renew(A, 5),
        lambda: store.takeover(B, now=FAR, limit=5),
        lambda: store.owner(v1.id),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable, match=where):
            call()
    info = store.describe()
    assert info["deliveries"] is None and where in info["error"]
    with pytest.raises(ConfigError, match=r"scheduler: cannot reach redis at 127\.0\.0\.1"):
        store.check()
    redis_server.start()
    assert store.get(v1.id) == v1  # the write made while down did not happen
    store.save_delivery(A, v2)
    assert store.get(v1.id) == v2 and store.describe()["deliveries"] == 1


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes connects; nobody ever reads or answers
        url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        began = time.monotonic()
        with pytest.raises(ConfigError, match="cannot reach redis"):
            RedisDeliveryStore.connect(url, "test", timeout=0.3)
        s = RedisDeliveryStore(url, "test", timeout=0.3)
        with pytest.raises(StoreUnavailable, match="Timeout"):
            s.save_delivery(A, orphans(1)[0])
        s.close()
        assert time.monotonic() - began < 5.0


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:6379/0", "scheme"),
        ("127.0.0.1:6379", "scheme"),
        ("redis://:6379/0", "no host"),
        ("redis://127.0.0.1:port/0", "bad port"),
        ("redis://127.0.0.1:70000/0", "bad port"),
        ("redis://127.0.0.1:0/0", "port 0"),
        ("redis://127.0.0.1:6379/zero", "database"),
        ("redis://127.0.0.1:6379/-1", "database"),
        ("redis://u:pw@127.0.0.1:6379/0", "credentials"),
        ("redis://127.0.0.1:6379/0?db=1", "query"),
        ("redis://[::1:6379/0", "bad port"),
    ],
)
def test_a_bad_url_is_a_config_error_of_the_scheduler(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as err:
        RedisDeliveryStore(url, "test")
    assert err.value.field == "scheduler" and str(err.value).startswith("scheduler: ")


def test_good_urls_parse_and_nothing_is_contacted_before_connect() -> None:
    s = RedisDeliveryStore("redis://localhost", "test")
    assert (s.host, s.port, s.db, s.url) == ("localhost", 6379, 0, "redis://localhost:6379/0")
    s = RedisDeliveryStore("redis://[::1]:7000/3", "test")
    assert (s.host, s.port, s.db, s.url) == ("::1", 7000, 3, "redis://[::1]:7000/3")


def test_unreachable_at_start_is_a_config_error() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ConfigError, match=f"scheduler: cannot reach redis at 127.0.0.1:{port}: "):
        RedisDeliveryStore.connect(f"redis://127.0.0.1:{port}/0", "test")


def test_damaged_entries_are_skipped_and_counted(
    store: RedisDeliveryStore, redis_server: RedisServer
) -> None:
    good = orphans(2)
    for rec in good:
        store.save_delivery(A, rec)
    raw, p, bad = redis_server.client(), "covey:test:", "ab" * 16
    raw.hset(f"{p}d:{bad}", mapping={"owner": A.hex(), "version": 1, "record": "{not json"})
    raw.zadd(f"{p}due", {bad: 0.0, "not-hex": 0.0})
    raw.sadd(f"{p}owned:{A.hex()}", bad)
    raw.hset(f"{p}handled:{A.hex()}", "x:1", json.dumps({"delivery": "zz"}))
    records, handled = store.load(A)
    assert sorted(r.id for r in records) == sorted(r.id for r in good) and handled == []
    assert store.counters == {"bad_records": 1, "bad_handled": 1}
    assert store.get(bytes.fromhex(bad)) is None
    assert len(store.schedule()) == 3  # "not-hex" left out
    assert sorted(r.id for r in store.takeover(B, now=FAR, limit=10)) == sorted(r.id for r in good)
    assert store.counters == {"bad_records": 4, "bad_handled": 1}
    raw.close()


def test_clusters_do_not_see_each_others_keys(
    store: RedisDeliveryStore, redis_server: RedisServer
) -> None:
    (rec,) = orphans(1)
    store.save_delivery(A, rec)
    other = RedisDeliveryStore.connect(redis_server.url, "other")
    assert other.get(rec.id) is None and other.schedule() == []
    assert other.takeover(B, now=FAR, limit=10) == []
    other.close()


def test_the_agent_and_the_cli_do_not_load_the_redis_client() -> None:
    code = (
        "import sys, covey.cli.app, covey.runtime.agent, covey.runtime.features.deliveries.store;"
        "print('redis' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False", out.stderr
