"""The asyncio runtime of covey: real sockets around the pure core.

Importing a name from here loads asyncio and socket machinery; :mod:`covey.core` never
does. The names are loaded on first use, so that a CLI command that only talks to a
running agent (``covey members``) does not import the whole agent to do it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covey.runtime.agent import Agent
    from covey.runtime.config.model import AgentConfig, ConfigError
    from covey.runtime.config.sources import build_config
    from covey.runtime.context import AgentStopped
    from covey.runtime.control.client import ClientError, ControlClient
    from covey.runtime.events import AgentEvent, ClockLeap, Subscription, event_to_json

_EXPORTS = {
    "Agent": "covey.runtime.agent",
    "AgentConfig": "covey.runtime.config.model",
    "AgentEvent": "covey.runtime.events",
    "AgentStopped": "covey.runtime.context",
    "ClientError": "covey.runtime.control.client",
    "ClockLeap": "covey.runtime.events",
    "ConfigError": "covey.runtime.config.model",
    "ControlClient": "covey.runtime.control.client",
    "Subscription": "covey.runtime.events",
    "build_config": "covey.runtime.config.sources",
    "event_to_json": "covey.runtime.events",
}

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentEvent",
    "AgentStopped",
    "ClientError",
    "ClockLeap",
    "ConfigError",
    "ControlClient",
    "Subscription",
    "build_config",
    "event_to_json",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'covey.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
