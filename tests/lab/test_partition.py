"""A partition between host groups, and its healing with no operator action."""

from __future__ import annotations

from covey.lab import partition

from .helpers import converge, wait_state


def test_partition_and_heal(make_lab):
    lab, cluster, faults = make_lab(5)
    cluster.start_all()
    names = [h.name for h in lab.hosts]
    converge(cluster, names)
    minority, majority = lab.hosts[:2], lab.hosts[2:]
    faults.set("split", partition(minority, majority))
    # Each side marks the other failed...
    for subject in majority:
        wait_state(cluster, [h.name for h in minority], subject.name, "failed")
    for subject in minority:
        wait_state(cluster, [h.name for h in majority], subject.name, "failed")
    # ...and keeps its own side alive.
    views = cluster.views()
    for side in (minority, majority):
        for observer in side:
            view = views[observer.name]
            assert view is not None
            assert all(view[h.name] == "alive" for h in side), view
    faults.heal()
    took = converge(cluster, names, timeout=90)
    print(f"2|3 partition healed: all five alive everywhere after {took:.1f} s")
