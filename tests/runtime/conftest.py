"""Fixtures for runtime tests: real agent processes on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from covey.runtime.localcluster import LocalCluster

from .deliveries_helpers import Backend
from .redis_server import MISSING, RedisServer


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    """An empty local cluster (own temp dir, key, multicast port); every agent is stopped."""
    c = LocalCluster(cluster="test")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server on 127.0.0.1 with AOF in ``tmp_path``; stopped by PID.

    Skips when ``redis-server`` is not installed.
    """
    if shutil.which("redis-server") is None:
        pytest.skip(MISSING)
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """SQLite, then a real redis-server (skipped, saying why, when it is not installed)."""
    if request.param == "sqlite":
        yield Backend("sqlite")
        return
    if shutil.which("redis-server") is None:
        pytest.skip(MISSING)
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield Backend("redis", server)
    finally:
        server.stop()
