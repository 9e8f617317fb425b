"""covey: cluster membership, failure detection and discovery for groups of machines.

The protocol logic lives in :mod:`covey.core` (pure state machines), the simulator in
:mod:`covey.sim`, and the asyncio agent in :mod:`covey.runtime`.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
