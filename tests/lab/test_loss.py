"""10 % packet loss on every link: no healthy node is ever marked failed.

Every host drops 10 % of what arrives on its eth0 (so each datagram, beacon or TCP segment
between two hosts is lost with probability 0.1). Lifeguard's local health, indirect probes
and the TCP fallback must keep every false *failed* away for the whole window; a few
*suspect* events are allowed (and printed). The window is ~100 s in CI
(``COVEY_LAB_LOSS_S`` to change it; the chaos run and ``bench/lab_bench.py`` go longer).
"""

from __future__ import annotations

import os
import time

from covey.lab import loss_at

from .helpers import converge


def test_ten_percent_loss_never_fails_a_healthy_node(make_lab):
    window = float(os.environ.get("COVEY_LAB_LOSS_S", "100"))
    lab, cluster, faults = make_lab(5)
    cluster.start_all()
    names = [h.name for h in lab.hosts]
    converge(cluster, names)
    t0 = time.time()
    faults.set("loss", [r for h in lab.hosts for r in loss_at(h, 10)])
    # Wakes at the first false failure (the test fails at once), else after the window.
    false_failure = cluster.recorder.wait_for(
        lambda _observer, e: e.get("event") == "member-failed", window, since=t0
    )
    assert false_failure is None, f"false failure under 10 % loss: {false_failure}"
    assert all(a.running() for a in cluster.agents.values())
    dropped = sum(faults.dropped(h) for h in lab.hosts)
    suspects = sum(
        len(cluster.recorder.member_events(o, "member-suspect", since=t0)) for o in names
    )
    print(
        f"10 % loss for {window:.0f} s: {dropped} packets dropped, {suspects} suspicions, 0 failed"
    )
    assert dropped > 0
    assert cluster.converged(names)
