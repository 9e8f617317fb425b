"""Fixtures for runtime tests: real agent processes on 127.0.0.1, stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from covey.runtime.localcluster import LocalCluster


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    """An empty local cluster (own temp dir, key, multicast port); every agent is stopped."""
    c = LocalCluster(cluster="test")
    try:
        yield c
    finally:
        c.close()
