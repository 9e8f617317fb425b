"""covey: cluster membership, failure detection and discovery for groups of machines.

The protocol logic lives in :mod:`covey.core` (pure state machines), the simulator in
:mod:`covey.sim`, and the asyncio agent in :mod:`covey.runtime`. ``covey.Agent`` and
``covey.AgentConfig`` (and ``covey.load_keys(path)``, every key of a key file) are loaded
lazily, so ``import covey.core`` stays free of asyncio and sockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Agent", "AgentConfig", "__version__", "load_keys"]

if TYPE_CHECKING:
    from covey.runtime.agent import Agent
    from covey.runtime.config.model import AgentConfig
    from covey.runtime.config.sources import load_keys


def __getattr__(name: str) -> Any:
    if name == "Agent":
        from covey.runtime.agent import Agent

        return Agent
    if name == "AgentConfig":
        from covey.runtime.config.model import AgentConfig

        return AgentConfig
    if name == "load_keys":
        from covey.runtime.config.sources import load_keys

        return load_keys
    raise AttributeError(f"module 'covey' has no attribute {name!r}")
