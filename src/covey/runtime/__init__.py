"""The asyncio runtime of covey: real sockets around the pure core.

Importing this package loads asyncio and socket machinery; :mod:`covey.core` never does.
"""

from covey.runtime.agent import Agent
from covey.runtime.config.model import AgentConfig, ConfigError
from covey.runtime.config.sources import build_config
from covey.runtime.context import AgentStopped
from covey.runtime.control.client import ClientError, ControlClient
from covey.runtime.events import AgentEvent, ClockLeap, Subscription, event_to_json

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
