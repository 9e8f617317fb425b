"""The collector's records on disk: SQLite (stdlib ``sqlite3``) in its data directory.

Three tables in ``<data>/traces.db``:

* ``records`` — every record once: ``UNIQUE (node_id, boot, seq)``, so a batch sent twice
  (an agent that resends after a lost answer) stores nothing the second time and its
  records count as duplicates;
* ``senders`` — per sending agent: its clock offset (the smallest ``receive_time - sent``
  seen: network delay plus its clock's error, a bound that only tightens), when it was
  last heard from, and the records it reported lost (per boot: a restarted agent counts
  from zero again, so earlier boots' losses are kept in ``lost_before``);
* ``counters`` — the collector's counters, kept across restarts on the same directory.

One transaction per batch, WAL mode with ``synchronous=NORMAL``: a stored batch survives
a crash of the collector. Used from the event loop's thread only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from covey.runtime.collector.records import FIELDS, Batch, Record

#: The database file inside the data directory.
FILENAME = "traces.db"
#: The counters, in the order ``stats`` shows them (``agents`` and ``lost_reported`` are
#: computed from ``senders``).
COUNTERS = (
    "connections",
    "refused_connections",
    "idle_closed",
    "requests",
    "received",
    "stored",
    "duplicates",
    "unauthenticated",
    "replayed",
    "malformed",
    "errors",
)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS records (
        seq INTEGER NOT NULL, boot REAL NOT NULL, at REAL NOT NULL, op TEXT NOT NULL,
        node TEXT NOT NULL, node_id TEXT NOT NULL, cluster TEXT NOT NULL, subject TEXT,
        subject_id TEXT, leader TEXT, term INTEGER, members INTEGER NOT NULL,
        detail TEXT NOT NULL, n INTEGER NOT NULL, cause TEXT, received REAL NOT NULL,
        UNIQUE (node_id, boot, seq))""",
    # Each sender's records in its time order (the views' edges). No index for timeline
    # --node: from-or-about is an OR over four columns, a scan either way.
    "CREATE INDEX IF NOT EXISTS records_sender ON records (node_id, at, boot, seq)",
    """CREATE TABLE IF NOT EXISTS senders (
        node_id TEXT PRIMARY KEY, node TEXT NOT NULL, cluster TEXT NOT NULL,
        clock_offset REAL NOT NULL, last_seen REAL NOT NULL, boot REAL NOT NULL,
        lost INTEGER NOT NULL, lost_before INTEGER NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
_INSERT = (
    f"INSERT OR IGNORE INTO records ({', '.join(FIELDS)}, received) "
    f"VALUES ({', '.join('?' for _ in FIELDS)}, ?)"
)
_SELECT = (
    "SELECT " + ", ".join(f"r.{f}" for f in FIELDS) + ", s.clock_offset "
    "FROM records r JOIN senders s ON s.node_id = r.node_id"
)


class StoreError(Exception):
    """The database cannot be opened or refused a write (message names the file)."""


class TraceStore:
    """Records, senders and counters in ``<data>/traces.db``.

    Raises:
        StoreError: the file cannot be opened or is not a collector database.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILENAME
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
            saved = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        self.counters: dict[str, int] = {name: int(saved.get(name, 0)) for name in COUNTERS}
        self._dirty = False

    def count(self, name: str, k: int = 1) -> None:
        """Add ``k`` to counter ``name`` (written at the next batch or :meth:`flush`)."""
        self.counters[name] = self.counters.get(name, 0) + k
        self._dirty = True

    def add(self, batch: Batch, received: float) -> tuple[int, int]:
        """Store a checked batch received at ``received`` (collector wall time); returns
        (stored, duplicates). Raises StoreError when the database refuses it."""
        rows = [(*(rec[f] for f in FIELDS), received) for rec in batch.records]
        before = dict(self.counters)
        try:
            with self._db:
                self._db.execute("BEGIN")
                stored = self._db.executemany(_INSERT, rows).rowcount if rows else 0
                self._update_sender(batch, received)
                self.count("received", len(rows))
                self.count("stored", stored)
                self.count("duplicates", len(rows) - stored)
                self._write_counters()
        except sqlite3.Error as exc:
            self.counters = before  # the transaction is rolled back: so are its counts
            raise StoreError(f"cannot save to {self.path}: {exc}") from None
        return stored, len(rows) - stored

    def _update_sender(self, batch: Batch, received: float) -> None:
        offset = received - batch.sent
        row = self._db.execute(
            "SELECT clock_offset, boot, lost, lost_before FROM senders WHERE node_id = ?",
            (batch.node_id,),
        ).fetchone()
        boot, lost, before = batch.boot, batch.lost, 0
        if row is not None:
            offset = min(offset, row[0])
            if batch.boot == row[1]:
                lost, before = max(lost, row[2]), row[3]
            elif batch.boot > row[1]:  # a restarted agent: its count starts again
                before = row[3] + row[2]
            else:  # a late batch from an earlier boot: its loss is counted already
                boot, lost, before = row[1], row[2], row[3]
        self._db.execute(
            "INSERT OR REPLACE INTO senders (node_id, node, cluster, clock_offset, last_seen,"
            " boot, lost, lost_before) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (batch.node_id, batch.node, batch.cluster, offset, received, boot, lost, before),
        )

    def _write_counters(self) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)",
            list(self.counters.items()),
        )
        self._dirty = False

    def records(
        self, *, node: str | None = None, since: float | None = None, limit: int | None = None
    ) -> list[Record]:
        """Stored records (from or about ``node``; at or after ``since`` in corrected
        time), in corrected time order, each with its sender's ``offset``."""
        where: list[str] = []
        args: list[object] = []
        if node is not None:
            where.append("(r.node = ? OR r.subject = ? OR r.node_id = ? OR r.subject_id = ?)")
            args += [node] * 4
        if since is not None:
            where.append("r.at + s.clock_offset >= ?")
            args.append(since)
        sql = " AND ".join(where) or "1"
        if limit is not None:
            sql += " ORDER BY r.at + s.clock_offset, r.node, r.boot, r.seq LIMIT ?"
            args.append(limit)
        return self._select(sql, args, order=limit is None)

    def _select(self, where: str, args: Sequence[object], *, order: bool = True) -> list[Record]:
        """Records matching ``where`` (SQL after WHERE, may end in ORDER BY / LIMIT), each
        with its sender's offset; in corrected time order when ``order``."""
        sql = f"{_SELECT} WHERE {where}"
        if order:
            sql += " ORDER BY r.at + s.clock_offset, r.node, r.boot, r.seq"
        try:
            rows = self._db.execute(sql, list(args)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None
        out = []
        for row in rows:
            rec = dict(zip(FIELDS, row, strict=False))
            rec["offset"] = row[-1]
            out.append(rec)
        return out

    def view_records(self, member_ops: Iterable[str]) -> list[Record]:
        """The records members and stable need, not all of them: every record with an op
        of ``member_ops``, and per sender its first and last record, the last one whose
        (leader, members) differs from the last's and the one after that (where its
        current view began). The views give the same answers on these as on every
        record (tests/runtime/test_collector_store.py), without reading a long history.
        """
        ops = sorted(set(member_ops))
        where = f"r.op IN ({', '.join('?' for _ in ops)})"
        picked = {(r["node_id"], r["boot"], r["seq"]): r for r in self._select(where, ops)}
        for (node_id,) in self._db.execute("SELECT node_id FROM senders").fetchall():
            for rec in self._edges(node_id):
                picked.setdefault((rec["node_id"], rec["boot"], rec["seq"]), rec)
        return list(picked.values())

    def _edges(self, node_id: str) -> list[Record]:
        mine, last_first = "r.node_id = ?", " ORDER BY r.at DESC, r.boot DESC, r.seq DESC LIMIT 1"
        out = self._select(mine + " ORDER BY r.at, r.boot, r.seq LIMIT 1", [node_id], order=False)
        last = self._select(mine + last_first, [node_id], order=False)
        if not last:
            return out
        out += last
        view = [last[0]["leader"], last[0]["members"]]
        differs = self._select(
            mine + " AND NOT (r.leader IS ? AND r.members = ?)" + last_first,
            [node_id, *view],
            order=False,
        )
        if differs:
            d = differs[0]
            out += differs
            out += self._select(
                mine + " AND (r.at, r.boot, r.seq) > (?, ?, ?) ORDER BY r.at, r.boot, r.seq"
                " LIMIT 1",
                [node_id, d["at"], d["boot"], d["seq"]],
                order=False,
            )
        return out

    def senders(self) -> list[dict[str, Any]]:
        """Every agent heard from: name, node id, cluster, offset, last heard, lost."""
        rows = self._db.execute(
            "SELECT node, node_id, cluster, clock_offset, last_seen, lost + lost_before"
            " FROM senders ORDER BY node, node_id"
        ).fetchall()
        keys = ("node", "node_id", "cluster", "offset", "last_seen", "lost")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def stats(self) -> dict[str, int]:
        """The counters, with ``agents`` (senders heard from) and ``lost_reported`` (the
        records they said they lost)."""
        agents, lost = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(lost + lost_before), 0) FROM senders"
        ).fetchone()
        return {**self.counters, "agents": int(agents), "lost_reported": int(lost)}

    def flush(self) -> None:
        """Write the counters if they changed since the last write."""
        if not self._dirty:
            return
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._write_counters()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save to {self.path}: {exc}") from None

    def close(self) -> None:
        """Flush and close the database."""
        try:
            self.flush()
        finally:
            self._db.close()
