"""Small helpers shared by the lab tests."""

from __future__ import annotations

import time
from collections.abc import Sequence

from covey.lab import LabCluster
from covey.runtime.localcluster import wait_until

#: Generous bounds: the CI machine has two cores shared with other suites.
CONVERGE_S = 60.0
DETECT_S = 60.0


def converge(cluster: LabCluster, names: Sequence[str], timeout: float = CONVERGE_S) -> float:
    """Wait until every agent of ``names`` sees exactly ``names`` alive; returns seconds."""
    t0 = time.monotonic()
    wait_until(lambda: cluster.converged(names), timeout, what=f"{sorted(names)} to converge")
    return time.monotonic() - t0


def wait_state(
    cluster: LabCluster,
    observers: Sequence[str],
    subject: str,
    state: str,
    timeout: float = DETECT_S,
) -> float:
    """Wait until every observer sees ``subject`` in ``state``; returns seconds."""
    t0 = time.monotonic()
    wait_until(
        lambda: all(cluster.sees(o, subject, state) for o in observers),
        timeout,
        what=f"{list(observers)} to see {subject} {state} (views {cluster.views(observers)})",
    )
    return time.monotonic() - t0
