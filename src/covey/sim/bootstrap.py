"""Building a converged cluster directly, without replaying N joins."""

from __future__ import annotations

from typing import TYPE_CHECKING

from covey.core import MemberState
from covey.core.member import Member

if TYPE_CHECKING:
    from covey.sim.hosts import SimHost
    from covey.sim.world import Simulation


def bootstrap(sim: Simulation, n: int) -> list[SimHost]:
    """Create ``n`` started nodes in ``sim`` whose tables already hold every other node alive.

    This is the state the protocol converges to (the convergence tests check it up to
    500 nodes); building it directly lets benchmarks start from a large converged
    cluster without replaying N joins. Records share their immutable parts, since a
    10,000-node run holds 10^8 of them.
    """
    hosts = [sim.add_node(start=False) for _ in range(n)]
    shared_tags: dict[str, str] = {}
    for h in hosts:
        h.node.start(now=sim.now)
        table = h.node.table
        # The simulator fills the probe order of a converged cluster directly.
        order = h.node._prober.order
        for o in hosts:
            if o is h:
                continue
            nid = o.config.node_id
            table.members[nid] = Member(
                nid,
                o.name,
                o.address,
                0,
                MemberState.ALIVE,
                sim.now,
                shared_tags,
                in_probe_order=True,
            )
            order.append(nid)
        table.live_count = n
        h.node.rng.shuffle(order)
        h.node.joined = True
        h.node.gossip.clear()
        h.node.pop_events()
        sim._flush(h)
    return hosts
