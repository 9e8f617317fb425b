"""The collector's record checks, its SQLite store, batch splitting and the replay window
of the sealed codec."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from covey.core.crypto.fernet import generate_key
from covey.runtime.collector import views
from covey.runtime.collector.client import split_records, traces_request
from covey.runtime.collector.records import (
    FIELDS,
    MAX_RECORDS,
    Batch,
    RecordError,
    check_batch,
    check_record,
)
from covey.runtime.collector.store import TraceStore
from covey.runtime.control.server import ControlError, SealedCodec

from .collector_helpers import NODES, node_id, record, story


def batch(
    node: str, records: list[dict[str, Any]], *, sent: float, boot: float = 1000.0, lost: int = 0
) -> Batch:
    request = traces_request(
        node_id=node_id(node), node=node, cluster="test", boot=boot, records=records,
        lost=lost, sent=sent,
    )  # fmt: skip
    return check_batch(request)


def test_a_record_is_checked_and_completed() -> None:
    minimal = {"seq": 1, "boot": 1.0, "at": 2.0, "op": "probe", "node": "a",
               "node_id": "ABCDEF", "cluster": "", "members": 3, "extra": "dropped"}  # fmt: skip
    rec = check_record(minimal)
    assert tuple(rec) == FIELDS and rec["node_id"] == "abcdef"
    assert rec["subject"] is None and rec["detail"] == "" and rec["n"] == 0 and rec["cause"] is None
    for field, value, error in [
        ("seq", True, "record.seq must be an integer ≥ 1"),
        ("seq", 0, "record.seq must be an integer ≥ 1"),
        ("at", float("nan"), "record.at must be a finite number"),
        ("at", "now", "record.at must be a number"),
        ("op", "Probe!", "record.op must be a lower-case word"),
        ("node", "", "record.node must be text"),
        ("node_id", "xyz", "record.node_id must be a hex node id"),
        ("subject_id", "not hex", "record.subject_id must be a hex node id"),
        ("term", -1, "record.term must be an integer ≥ 0"),
        ("n", 2**63, "record.n must be an integer"),
        ("detail", "ü" * 101, "record.detail must be text of at most 200 octets"),
    ]:
        with pytest.raises(RecordError, match=error.replace("(", r"\(")):
            check_record({**minimal, field: value})
    with pytest.raises(RecordError, match="record has no 'members'"):
        check_record({k: v for k, v in minimal.items() if k != "members"})
    assert check_record({**minimal, "detail": "ü" * 100})["detail"] == "ü" * 100


def test_a_batch_holds_at_most_1000_records_all_from_its_sender() -> None:
    recs = [record("a", i + 1, 5.0, "probe") for i in range(MAX_RECORDS + 1)]
    with pytest.raises(RecordError, match="at most 1000"):
        batch("a", recs, sent=1.0)
    assert len(batch("a", recs[:MAX_RECORDS], sent=1.0).records) == MAX_RECORDS
    with pytest.raises(RecordError, match=r"records\[1\].node_id is not the sender's"):
        batch("a", [recs[0], record("b", 1, 5.0, "probe")], sent=1.0)
    with pytest.raises(RecordError, match="no 'sent'"):
        check_batch({"node_id": "aa", "node": "a", "cluster": "", "boot": 1, "records": []})


def test_duplicates_are_not_stored_twice_and_offsets_only_tighten(tmp_path: Path) -> None:
    store = TraceStore(tmp_path)
    recs = [record("a", i + 1, 100.0 + i, "probe") for i in range(5)]
    assert store.add(batch("a", recs[:3], sent=200.0), received=200.5) == (3, 0)
    assert store.add(batch("a", recs, sent=300.0), received=300.2) == (2, 3)
    assert store.add(batch("a", [], sent=400.0), received=401.0) == (0, 0)  # looser: kept 0.2
    [sender] = store.senders()
    assert sender["offset"] == pytest.approx(0.2) and sender["last_seen"] == 401.0
    got = store.records()
    assert [r["seq"] for r in got] == [1, 2, 3, 4, 5]
    assert all(r["offset"] == pytest.approx(0.2) for r in got)
    stats = store.stats()
    assert (stats["received"], stats["stored"], stats["duplicates"]) == (8, 5, 3)
    assert stats["agents"] == 1
    store.close()
    reopened = TraceStore(tmp_path)  # the counters are kept with the records
    assert reopened.stats()["stored"] == 5 and len(reopened.records()) == 5
    reopened.close()


def test_losses_are_summed_per_boot(tmp_path: Path) -> None:
    store = TraceStore(tmp_path)
    store.add(batch("a", [], sent=1.0, boot=1000.0, lost=3), received=1.0)
    store.add(batch("a", [], sent=2.0, boot=1000.0, lost=5), received=2.0)  # the same boot
    store.add(batch("a", [], sent=3.0, boot=2000.0, lost=1), received=3.0)  # restarted
    store.add(batch("a", [], sent=4.0, boot=1000.0, lost=9), received=4.0)  # late, earlier boot
    store.add(batch("b", [], sent=4.0, lost=2), received=4.0)
    assert store.stats()["lost_reported"] == 5 + 1 + 2
    assert {s["node"]: s["lost"] for s in store.senders()} == {"a": 6, "b": 2}
    store.close()


def test_the_stores_timeline_query_is_the_views_timeline(tmp_path: Path) -> None:
    s = story(1_700_000_000.0)
    store = TraceStore(tmp_path)
    now = time.time()
    for node in NODES:  # c's clock is 3 s ahead: its sent says so
        skew = 3.0 if node == "c" else 0.0
        store.add(batch(node, s.records[node], sent=now + skew), received=now + 0.01)
    everything = store.records()
    for node, since, limit in [(None, None, None), ("e", None, None), ("c", 1_700_000_011.0, 3),
                               (node_id("b"), 1_700_000_005.0, None)]:  # fmt: skip
        got = store.records(node=node, since=since, limit=limit)
        assert got == views.timeline(everything, node, since, limit or 10_000)
        assert got, (node, since)
    store.close()


def test_split_records_keeps_order_and_both_limits() -> None:
    recs = [record("a", i + 1, 1.0, "probe", detail="x" * 150) for i in range(2500)]
    batches = list(split_records(recs))
    assert [len(b) for b in batches] == [1000, 1000, 500]
    assert [r for b in batches for r in b] == recs
    small = list(split_records(recs, max_octets=10_000))
    compact = [sum(len(json.dumps(r, separators=(",", ":"))) + 1 for r in b) for b in small]
    assert max(compact) <= 10_000 and min(compact[:-1]) > 10_000 - 400  # full, not over
    assert [r for b in small for r in b] == recs and len(small) > 30
    assert list(split_records([])) == []


def test_the_sealed_codec_forgets_tokens_after_twice_their_lifetime() -> None:
    keys = [generate_key()]
    sender, receiver = SealedCodec(keys), SealedCodec(keys)
    lines = [sender.encode({"op": "stats", "i": i}) for i in range(3)]
    receiver.decode(lines[0])
    receiver.decode(lines[1])
    # Age the first one past 2 x ttl (the window is measured on the monotonic clock).
    first = next(iter(receiver._seen))
    receiver._seen[first] -= 2 * 60 + 1
    receiver.decode(lines[2])
    assert list(receiver._seen) == [lines[1].strip(), lines[2].strip()]
    with pytest.raises(ControlError, match="replayed"):
        receiver.decode(lines[1])


def test_the_views_answer_the_same_from_the_records_they_are_given(tmp_path: Path) -> None:
    t0 = 1_700_000_000.0
    s = story(t0)
    for k in range(40):  # a long quiet run, then one more change at d, then quiet again
        s.add("b", t0 + 20 + k, "probe", leader="a", term=1, members=4)
    s.add("d", t0 + 30, "leader_delta", leader="b", term=2, members=4)
    s.add("d", t0 + 31, "probe", leader="b", term=2, members=4)
    s.add("d", t0 + 32, "probe", leader="b", term=2, members=4)
    store = TraceStore(tmp_path)
    now = time.time()
    for node in NODES:
        skew = 3.0 if node == "c" else 0.0
        store.add(batch(node, s.records[node], sent=now + skew), received=now + 0.01)
    everything = store.records()
    given = store.view_records(views.MEMBER_STATES)
    assert len(given) < len(everything) / 2
    assert views.members(given) == views.members(everything)
    for at in (t0 + 14, t0 + 31, t0 + 40):
        assert views.stable(given, at, 5.0) == views.stable(everything, at, 5.0)
    assert "leaders differ: a (a, b, c); b (d)" in views.stable(given, t0 + 40, 5.0)["why"]
    store.close()
