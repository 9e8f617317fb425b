"""Fixtures of the lab tier: hosts in network namespaces, agents on them, faults.

Every lab test needs root, ``ip`` and ``nft``; without them it is skipped with the reason.
Teardown: each fixture closes its lab (processes by PID, then namespaces) even when the test
fails; a session finalizer then deletes any namespace left with this run's prefix and says
so, and ``covey.lab`` closes open labs at exit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from covey.lab import Faults, Lab, LabCluster, cleanup_run, unavailable_reason

_reason: list[str | None] = []


def _lab_reason() -> str | None:
    if not _reason:
        _reason.append(unavailable_reason())
    return _reason[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/lab/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.lab)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session", autouse=True)
def _cleanup_leftovers() -> Iterator[None]:
    yield
    left = cleanup_run()
    if left:
        print(f"\nlab: deleted leftover namespaces {', '.join(left)}")


@pytest.fixture
def make_lab(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., tuple[Lab, LabCluster, Faults]]]:
    """``make_lab(hosts, agent_args=(), record=True, ipv6=False)`` → (lab, cluster, faults),
    torn down.

    When the test fails, every agent's log tail and the active faults are printed; with
    ``COVEY_LAB_KEEP=1`` the work directory (logs, ``*.events.jsonl``) is kept and named.
    """
    reason = _lab_reason()
    if reason is not None:
        pytest.skip(reason)
    made: list[tuple[Lab, LabCluster]] = []
    workdir = Path(tempfile.mkdtemp(prefix="cvylab-"))

    def make(
        hosts: int = 5,
        *,
        agent_args: tuple[str, ...] = (),
        record: bool = True,
        ipv6: bool = False,
    ) -> tuple[Lab, LabCluster, Faults]:
        lab = Lab(hosts, ipv6=ipv6)
        cluster = LabCluster(
            lab, workdir=workdir / lab.name, agent_args=agent_args, record=record, ipv6=ipv6
        )
        made.append((lab, cluster))
        return lab, cluster, Faults(lab)

    try:
        yield make
    finally:
        rep = getattr(request.node, "rep_call", None)
        failed = rep is not None and rep.failed
        for lab, cluster in made:
            try:
                if failed:
                    _dump(lab, cluster)
                cluster.close()
            finally:
                lab.close()
        if os.environ.get("COVEY_LAB_KEEP"):
            print(f"\nlab: work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _dump(lab: Lab, cluster: LabCluster) -> None:
    print(f"\n==== lab {lab.name}: views {cluster.views()}")
    for agent in cluster.agents.values():
        print(f"---- {agent.name} (pid {agent.pid}, running={agent.running()}):")
        print(agent.log_tail(15))
