"""The agent's shared state on disk: SQLite (stdlib ``sqlite3``) in the data directory.

Its own facts (:class:`SqliteFactStore`) and the ids of the actions it ran
(:class:`SqliteActionLog`), in one file. Each class reads what is there with ``load()``
(given to the capability at construction) and carries out its capability's effects with
``write(effect)``, which the runtime driver calls before the step's datagrams leave and
its events are published; a write the database refuses raises ValueError, which the
driver reports as an ``EffectFailed`` event (see runtime/driver.py).

One table of (key, seq, value) — deleted facts keep their row with a NULL value, so the
deletion's sequence number survives too — and the node's fact counter. Written in WAL
mode with ``synchronous=NORMAL``: a change is durable against a process crash at once,
and against a power cut after the next checkpoint, which is what a restarted agent needs
to re-assert its facts (peers hold copies; a lost tail is refuted, see
core/state/facts/capability.py).

The action log's write is one WAL append and never an fsync: its connection does not
checkpoint on commit (``wal_autocheckpoint=0``); every :data:`CHECKPOINT_EVERY` writes
a thread of its own, on a connection of its own, runs a passive checkpoint (which
fsyncs the WAL, then the file). So its :meth:`SqliteActionLog.write` is an
:class:`~covey.runtime.steps.InlineWriter` the driver may run on the loop's thread.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from covey.core.effects import Effect
from covey.core.state.actions import SEEN_TTL, RecordAction
from covey.core.state.facts.events import Entry, SaveFact
from covey.runtime.config.model import ConfigError
from covey.runtime.steps import InlineWriter

#: The database file inside the data directory.
FILENAME = "facts.db"
#: Action-log writes between two checkpoints (about two WAL pages each; SQLite's own
#: automatic checkpoint runs at 1000 pages).
CHECKPOINT_EVERY = 256

log = logging.getLogger("covey.store")


def private_file(path: Path) -> None:
    """Make sure ``path`` exists with mode 0600 before SQLite opens it (its -wal and -shm
    files take the same mode): the data directory's files are for the agent's user only."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _connect(path: Path, table: str) -> sqlite3.Connection:
    """Open the file in WAL mode with ``table`` and the shared ``meta`` table in place."""
    try:
        private_file(path)
        # Opened and loaded on the event loop's thread, then written only by the driver's
        # one effect-writer thread: never used by two threads at once.
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"CREATE TABLE IF NOT EXISTS {table}")
        db.execute(
            "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError("data_dir", f"cannot open {path}: {exc}") from None
    return db


def _write(
    db: sqlite3.Connection, path: Path, sql: str, row: tuple[object, ...], meta: str, value: int
) -> None:
    """One row and one meta value in one transaction; ValueError if the database refuses."""
    try:
        with db:
            db.execute("BEGIN")
            db.execute(sql, row)
            db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (meta, value))
    except sqlite3.Error as exc:
        raise ValueError(f"store: cannot save to {path}: {exc}") from None


class SqliteFactStore:
    """Our own facts in ``<data_dir>/facts.db``: the writer of :class:`SaveFact` effects.

    Raises:
        ConfigError: the file cannot be opened or is not a covey facts database.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = _connect(path, "facts (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, value TEXT)")

    def load(self) -> tuple[int, dict[str, Entry]]:
        """(counter, key → (seq, value or None)) as last saved."""
        try:
            rows = self._db.execute("SELECT key, seq, value FROM facts").fetchall()
            meta = self._db.execute("SELECT value FROM meta WHERE name = 'seq'").fetchone()
        except sqlite3.Error as exc:
            raise ConfigError("data_dir", f"{self.path} is unreadable: {exc}") from None
        entries: dict[str, Entry] = {}
        for key, seq, value in rows:
            if (
                isinstance(key, str)
                and isinstance(seq, int)
                and (value is None or isinstance(value, str))
            ):
                entries[key] = (seq, value)
        counter = int(meta[0]) if meta else 0
        return max([counter, *(s for s, _ in entries.values())]), entries

    def write(self, effect: Effect) -> None:
        """Record one :class:`SaveFact` (the change and the counter) in one transaction.

        Raises:
            ValueError: the database refused the write (disk full...); nothing changed.
        """
        assert isinstance(effect, SaveFact)
        sql = "INSERT OR REPLACE INTO facts (key, seq, value) VALUES (?, ?, ?)"
        row = (effect.key, effect.seq, effect.value)
        _write(self._db, self.path, sql, row, "seq", effect.seq)

    def close(self) -> None:
        """Close the database."""
        self._db.close()


class SqliteActionLog:
    """The ids of the actions run here, in the same file: the writer of :class:`RecordAction`.

    Rows older than :data:`~covey.core.state.actions.SEEN_TTL` (wall clock) are dropped when
    the log is loaded; the Lamport clock is kept too, so it never goes back.

    Raises:
        ConfigError: the file cannot be opened.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = _connect(path, "actions (id BLOB PRIMARY KEY, at REAL NOT NULL)")
        # Checkpoints (the fsyncs) are _checkpoint's, off the thread that writes.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._writes = 0
        self._checkpointer: ThreadPoolExecutor | None = None
        self._ckpt_db: sqlite3.Connection | None = None
        self.write = InlineWriter(self._record)

    def load(self) -> tuple[int, list[bytes]]:
        """(Lamport clock, ids recorded within the last SEEN_TTL seconds)."""
        try:
            with self._db:
                self._db.execute("DELETE FROM actions WHERE at < ?", (time.time() - SEEN_TTL,))
            rows = self._db.execute("SELECT id FROM actions").fetchall()
            meta = self._db.execute("SELECT value FROM meta WHERE name = 'lamport'").fetchone()
        except sqlite3.Error as exc:
            raise ConfigError("data_dir", f"{self.path} is unreadable: {exc}") from None
        ids = [r[0] for r in rows if isinstance(r[0], bytes)]
        return (int(meta[0]) if meta else 0), ids

    def _record(self, effect: Effect) -> None:
        """Record one :class:`RecordAction` (the id and the clock) in one transaction
        (``self.write``, an :class:`~covey.runtime.steps.InlineWriter`).

        Raises:
            ValueError: the database refused the write; the action must not run.
        """
        assert isinstance(effect, RecordAction)
        sql = "INSERT OR REPLACE INTO actions (id, at) VALUES (?, ?)"
        row = (effect.action_id, time.time())
        _write(self._db, self.path, sql, row, "lamport", effect.clock)
        self._writes += 1
        if self._writes % CHECKPOINT_EVERY == 0:
            if self._checkpointer is None:
                self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="covey-ckpt")
            self._checkpointer.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        """(checkpoint thread) Copy the WAL into the file without waiting for anyone."""
        try:
            if self._ckpt_db is None:
                self._ckpt_db = sqlite3.connect(str(self.path), isolation_level=None)
            self._ckpt_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the next one tries again; SQLite's WAL stays valid
            log.warning("checkpoint of %s failed: %s", self.path, exc)

    def _last_checkpoint(self) -> None:
        """(checkpoint thread) A last checkpoint; closes the thread's connection."""
        self._checkpoint()
        if self._ckpt_db is not None:
            self._ckpt_db.close()
            self._ckpt_db = None

    def close(self) -> None:
        """Close the database (after a last checkpoint)."""
        if self._checkpointer is not None:
            self._checkpointer.submit(self._last_checkpoint)
            self._checkpointer.shutdown(wait=True)
        self._db.close()
