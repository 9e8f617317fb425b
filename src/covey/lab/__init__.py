"""The multi-host lab: covey agents on hosts made of Linux network namespaces.

Used by ``tests/lab`` and by ``bench/chaos.py`` / ``bench/lab_bench.py``. Needs root, ``ip``
(iproute2) and ``nft`` (nftables); :func:`unavailable_reason` says why not when it cannot run.
Every lab lives only inside namespaces it creates (10.77.0.0/24, no default route) and is
always torn down. See docs/lab.md.
"""

from covey.lab.agents import PORT, LabAgent, LabCluster
from covey.lab.faults import (
    Faults,
    Rule,
    block_broadcast,
    block_multicast,
    dead_network,
    loss_at,
    loss_between,
    partition,
)
from covey.lab.netns import (
    RUN_ID,
    Host,
    Lab,
    LabError,
    LoopbackLab,
    cleanup_run,
    list_namespaces,
    unavailable_reason,
)
from covey.lab.recorder import Recorder

__all__ = [
    "PORT",
    "RUN_ID",
    "Faults",
    "Host",
    "Lab",
    "LabAgent",
    "LabCluster",
    "LabError",
    "LoopbackLab",
    "Recorder",
    "Rule",
    "block_broadcast",
    "block_multicast",
    "cleanup_run",
    "dead_network",
    "list_namespaces",
    "loss_at",
    "loss_between",
    "partition",
    "unavailable_reason",
]
