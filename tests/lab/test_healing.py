"""A partition that outlasts the reap time heals by itself on real hosts.

Short reap (8 s) and back-off cap (4 s) through the normal flags. Both sides fail and then
reap each other (the other side disappears from every view: it is only remembered as
lost); after the heal every agent must list all five alive again, with no operator action.
"""

from __future__ import annotations

from covey.lab import partition
from covey.runtime.localcluster import wait_until

from .helpers import converge

REAP_ARGS = ("--reap-failed-after", "8", "--reconnect-max", "4")


def test_partition_longer_than_reap_heals(make_lab):
    lab, cluster, faults = make_lab(5, agent_args=REAP_ARGS)
    cluster.start_all()
    names = [h.name for h in lab.hosts]
    converge(cluster, names)
    minority, majority = lab.hosts[:2], lab.hosts[2:]
    faults.set("split", partition(minority, majority))

    def reaped_on_both_sides() -> bool:
        views = cluster.views()
        for side, other in ((minority, majority), (majority, minority)):
            for observer in side:
                view = views[observer.name]
                if view is None or any(h.name in view for h in other):
                    return False
                if not all(view.get(h.name) == "alive" for h in side):
                    return False
        return True

    wait_until(reaped_on_both_sides, 120, what="each side to reap the other")
    faults.heal()
    took = converge(cluster, names, timeout=120)
    print(f"2|3 partition past reap healed: all five alive everywhere after {took:.1f} s")
