"""The SQLite deliveries store: records and their scores in one transaction, older
versions skipped, damaged rows counted and skipped, the sorted set read by score."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from core.deliveries.helpers import cluster, stage

from covey.core.deliveries import DeliveryRecord, HandledRecord, HandledState, SaveDelivery
from covey.runtime.config.model import ConfigError
from covey.runtime.features.deliveries.sqlite_store import FILENAME, SqliteDeliveryStore

NODE = b"\x07" * 16


def _records(n: int) -> list[DeliveryRecord]:
    cap, h = cluster(5)
    for i in range(n):
        cap.create(bytes([i]), [stage("2:any", deadline=float(10 - i))], now=float(i))
    return [e.record for e in h.effects if isinstance(e, SaveDelivery)]


def test_records_round_trip_and_the_schedule_is_ordered_by_due(tmp_path: Path) -> None:
    store = SqliteDeliveryStore(tmp_path / FILENAME)
    recs = _records(4)
    for rec in recs:
        store.save_delivery(NODE, rec)
    handled = HandledRecord(recs[0].id, 0, NODE, HandledState.ANSWERED, 12.5, b"ok", "", 3.0)
    store.save_handled(NODE, handled)
    store.close()
    again = SqliteDeliveryStore(tmp_path / FILENAME)
    loaded, hs = again.load(NODE)
    assert sorted(r.id for r in loaded) == sorted(r.id for r in recs)
    assert {r.id: r for r in loaded} == {r.id: r for r in recs}
    assert hs == [handled]
    scores = again.schedule()
    assert [s for _, s in scores] == sorted(r.due for r in recs if r.due is not None)
    assert again.describe()["deliveries"] == 4 and again.get(recs[2].id) == recs[2]


def test_an_older_version_is_skipped_and_an_ended_delivery_leaves_the_schedule(
    tmp_path: Path,
) -> None:
    store = SqliteDeliveryStore(tmp_path / FILENAME)
    (rec,) = _records(1)
    newer = rec.changed(reason="newer")
    store.save_delivery(NODE, newer)
    store.save_delivery(NODE, rec)  # a late, older write changes nothing
    assert store.get(rec.id) == newer
    store.save_delivery(NODE, newer.changed(due=None))
    assert store.schedule() == []


def test_damaged_rows_are_counted_and_skipped_never_half_loaded(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    store = SqliteDeliveryStore(path)
    good, bad = _records(2)
    store.save_delivery(NODE, good)
    store.save_delivery(NODE, bad)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE deliveries SET record = '{\"id\": 1}' WHERE id = ?", (bad.id,))
    again = SqliteDeliveryStore(path)
    loaded, _ = again.load(NODE)
    assert loaded == [good] and again.bad_rows == 1


def test_a_file_that_is_no_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    path.write_bytes(b"not a database at all, just text" * 10)
    with pytest.raises(ConfigError, match="data_dir"):
        SqliteDeliveryStore(path)
