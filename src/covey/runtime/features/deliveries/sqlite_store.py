"""The default deliveries store: SQLite in the data directory (no server needed).

Tables, in ``<data_dir>/deliveries.db`` (WAL mode, ``synchronous=NORMAL``: durable
against a crash of the process at once):

* ``deliveries (id BLOB PRIMARY KEY, version, state, created, record TEXT)``: the owner's
  records as JSON (:mod:`covey.core.deliveries.codec`);
* ``due (id BLOB PRIMARY KEY, score REAL)`` with an index on ``score``: the sorted set,
  seed 002's ``broadcast:in-flight``, written in the record's transaction;
* ``handled (delivery BLOB, stage INTEGER, record TEXT)``: this receiver's records.

One node owns the file, so there is no fencing: ``node`` is accepted and ignored.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from covey.core.deliveries import DeliveryRecord, HandledRecord
from covey.core.deliveries.codec import (
    RecordError,
    handled_from_plain,
    handled_to_plain,
    record_from_plain,
    record_to_plain,
)
from covey.runtime.config.model import ConfigError
from covey.runtime.stores.sqlite import private_file

#: The database file inside the data directory.
FILENAME = "deliveries.db"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS deliveries (id BLOB PRIMARY KEY, version INTEGER NOT NULL,"
    " state TEXT NOT NULL, created REAL NOT NULL, record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS due (id BLOB PRIMARY KEY, score REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS due_by_score ON due (score)",
    "CREATE TABLE IF NOT EXISTS handled (delivery BLOB NOT NULL, stage INTEGER NOT NULL,"
    " record TEXT NOT NULL, PRIMARY KEY (delivery, stage))",
)


class SqliteDeliveryStore:
    """Deliveries and handled requests in one SQLite file (see the module docstring).

    Raises:
        ConfigError: the file cannot be opened or is not a deliveries database.
    """

    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        #: Rows that could not be read back (skipped at load, never half-loaded).
        self.bad_rows = 0
        try:
            # Opened on the loop's thread, then written only by the driver's one writer
            # thread; reads for `covey deliver show` come from the capability's memory.
            private_file(path)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for sql in _SCHEMA:
                self._db.execute(sql)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError("data_dir", f"cannot open {path}: {exc}") from None

    def load(self, node: bytes) -> tuple[list[DeliveryRecord], list[HandledRecord]]:
        """Every stored delivery record and handled record (bad rows skipped, counted)."""
        try:
            rows = self._db.execute("SELECT record FROM deliveries ORDER BY created").fetchall()
            hrows = self._db.execute("SELECT record FROM handled").fetchall()
        except sqlite3.Error as exc:
            raise ConfigError("data_dir", f"{self.path} is unreadable: {exc}") from None
        records: list[DeliveryRecord] = []
        handled: list[HandledRecord] = []
        for (text,) in rows:
            try:
                records.append(record_from_plain(json.loads(text)))
            except (RecordError, ValueError, TypeError):
                self.bad_rows += 1
        for (text,) in hrows:
            try:
                handled.append(handled_from_plain(json.loads(text)))
            except (RecordError, ValueError, TypeError):
                self.bad_rows += 1
        return records, handled

    def save_delivery(self, node: bytes, record: DeliveryRecord) -> None:
        """Write ``record`` and its score in one transaction (an older version is skipped).

        Raises:
            ValueError: the database refused the write (disk full...); nothing changed.
        """
        text = json.dumps(record_to_plain(record), separators=(",", ":"))
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "SELECT version FROM deliveries WHERE id = ?", (record.id,)
                ).fetchone()
                if row is not None and row[0] >= record.version:
                    return
                self._db.execute(
                    "INSERT OR REPLACE INTO deliveries (id, version, state, created, record)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (record.id, record.version, record.state.value, record.created, text),
                )
                if record.due is None:
                    self._db.execute("DELETE FROM due WHERE id = ?", (record.id,))
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO due (id, score) VALUES (?, ?)",
                        (record.id, record.due),
                    )
        except sqlite3.Error as exc:
            raise ValueError(f"deliveries: cannot save to {self.path}: {exc}") from None

    def save_handled(self, node: bytes, record: HandledRecord) -> None:
        """Write this receiver's record of (delivery, stage).

        Raises:
            ValueError: the database refused the write; the handler must not run.
        """
        text = json.dumps(handled_to_plain(record), separators=(",", ":"))
        try:
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO handled (delivery, stage, record) VALUES (?, ?, ?)",
                    (record.delivery, record.stage, text),
                )
        except sqlite3.Error as exc:
            raise ValueError(f"deliveries: cannot save to {self.path}: {exc}") from None

    def get(self, delivery: bytes) -> DeliveryRecord | None:
        """The stored record of ``delivery`` (None: unknown or unreadable)."""
        row = self._db.execute("SELECT record FROM deliveries WHERE id = ?", (delivery,)).fetchone()
        if row is None:
            return None
        try:
            return record_from_plain(json.loads(row[0]))
        except (RecordError, ValueError, TypeError):
            return None

    def schedule(self) -> list[tuple[bytes, float]]:
        """The sorted set, lowest score first (read by range over the score index)."""
        rows = self._db.execute("SELECT id, score FROM due ORDER BY score, id").fetchall()
        return [(bytes(i), float(s)) for i, s in rows]

    def describe(self) -> dict[str, Any]:
        """Backend, file and counts for ``covey info``."""
        n = self._db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        due = self._db.execute("SELECT COUNT(*) FROM due").fetchone()[0]
        return {"backend": self.backend, "path": str(self.path), "deliveries": n, "due": due}

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._db.close()
