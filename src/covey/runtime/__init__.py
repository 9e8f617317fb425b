"""The asyncio runtime of covey: real sockets around the pure core.

Importing this package loads asyncio and socket machinery; :mod:`covey.core` never does.
"""

from .agent import Agent
from .client import ClientError, ControlClient
from .config import AgentConfig, ConfigError
from .events import AgentEvent, ClockLeap, Subscription, event_to_json
from .settings import build_config

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentEvent",
    "ClientError",
    "ClockLeap",
    "ConfigError",
    "ControlClient",
    "Subscription",
    "build_config",
    "event_to_json",
]
