"""Deterministic simulator: many covey cores on a virtual, lossy, partitionable network.

Example::

    sim = Simulation(seed=7)
    first = sim.add_node()
    for _ in range(49):
        sim.add_node(join=[first.name])
    sim.run_until_true(sim.converged, timeout=60)
"""

from covey.sim.network import LinkModel, Network
from covey.sim.world import STREAM_TIMEOUT, HostState, SimHost, Simulation

__all__ = ["STREAM_TIMEOUT", "HostState", "LinkModel", "Network", "SimHost", "Simulation"]
