"""Exactly-once actions in-process: the record is on disk before a handler runs, and an
action whose record the store refused is answered with a refusal, never run; the log's
own checkpoints run off the thread that writes."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from cryptography.fernet import Fernet

from covey.core.state.actions import RecordAction
from covey.runtime import Agent, AgentConfig
from covey.runtime.localcluster import free_port
from covey.runtime.steps import InlineWriter
from covey.runtime.stores.sqlite import CHECKPOINT_EVERY, FILENAME, SqliteActionLog

TIMEOUT = 30.0


def _config(tmp_path: Path, name: str) -> AgentConfig:
    port = free_port()
    return AgentConfig(
        name=name,
        cluster=f"records-{port}",
        bind=("127.0.0.1", port),
        interfaces=("127.0.0.1",),
        multicast=("239.192.77.2", free_port()),
        keys=(Fernet.generate_key(),),
        control=Path(f"/tmp/covey-test-{name}-{port}.sock"),
        data_dir=tmp_path / name,
    )


def _recorded(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM actions").fetchone()[0])


async def test_the_action_id_is_on_disk_when_the_handler_runs(tmp_path: Path) -> None:
    async with Agent(_config(tmp_path, "rec")) as agent:
        db = tmp_path / agent.config.name / FILENAME
        seen: list[int] = []

        def handler(payload: str) -> str:
            seen.append(_recorded(db))
            return f"stopped {payload}"

        agent.on_action("zstop", handler)
        out = await agent.run_action("zstop", "vm-7", timeout=TIMEOUT)
        assert out["results"] == {"rec": {"ok": True, "result": "stopped vm-7"}}
        assert seen == [1]


async def test_an_action_whose_record_fails_is_refused_not_run(tmp_path: Path) -> None:
    async with Agent(_config(tmp_path, "norec")) as agent:
        db = tmp_path / agent.config.name / FILENAME
        ran: list[str] = []

        def handler(payload: str) -> str:
            ran.append(payload)
            return "ran"

        agent.on_action("zstop", handler)
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TABLE actions")  # every later record of an action fails
        out = await agent.run_action("zstop", "vm-7", timeout=TIMEOUT)
        refused = {"ok": False, "result": "cannot record the action (store error)"}
        assert out["results"] == {"norec": refused}
        assert ran == []
        assert agent._driver is not None and agent._driver.counters["effect_error"] == 1


def test_the_action_log_checkpoints_off_the_writing_thread(tmp_path: Path) -> None:
    log = SqliteActionLog(tmp_path / FILENAME)
    log.load()
    size = (tmp_path / FILENAME).stat().st_size
    writer = log.write
    assert isinstance(writer, InlineWriter)
    for i in range(CHECKPOINT_EVERY):
        writer(RecordAction(i.to_bytes(16, "big"), i))
    # The writes went to the WAL only; the checkpoint thread copies them into the file.
    deadline = time.monotonic() + TIMEOUT
    while (tmp_path / FILENAME).stat().st_size == size and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (tmp_path / FILENAME).stat().st_size > size
    log.close()
    assert _recorded(tmp_path / FILENAME) == CHECKPOINT_EVERY
