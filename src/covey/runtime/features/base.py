"""Where protocol features (election, shared state, ...) plug into the agent.

A feature module registers, at import time:

* an extension factory: ``EXTENSIONS.append(factory)``, where ``factory(config)`` returns
  the core :class:`~covey.core.Extension` for an agent with that configuration (or None
  when the feature is off);
* control operations: ``CONTROL_OPS["name"] = handler``, ``handler(agent, request)``
  returning a JSON-ready result or raising ``ControlError``;
* HTTP routes: ``HTTP_ROUTES.append(("GET", "/v1/...", handler))`` with an aiohttp handler
  that answers with :func:`json_response` (never import aiohttp at module level: agents
  without ``--http`` must not load it)
  that finds the agent as ``request.app[AGENT_KEY]``;
* start-up hooks: ``AGENT_STARTED.append(hook)``, ``hook(agent)`` runs once the core has
  started (arm timers, start watchers; steer the core with ``agent._driver.call``).

:func:`load_features` imports every module named in :data:`FEATURE_MODULES` once.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from covey.core import Extension
from covey.core.effects import Effect

if TYPE_CHECKING:
    from aiohttp import web

    from covey.runtime.agent import Agent
    from covey.runtime.config.model import AgentConfig

EffectWriter = Callable[[Effect], None]
#: What a factory builds: the extension, optionally with writers for the effects it hands out.
Built = Extension | tuple[Extension, dict[type[Effect], EffectWriter]]
ExtensionFactory = Callable[["AgentConfig"], Built | None]
ControlHandler = Callable[["Agent", dict[str, Any]], object]
HttpHandler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]

EXTENSIONS: list[ExtensionFactory] = []
CONTROL_OPS: dict[str, ControlHandler] = {}
HTTP_ROUTES: list[tuple[str, str, HttpHandler]] = []
#: Called with the agent once its core has started, before it serves (timers, watchers).
AGENT_STARTED: list[Callable[[Agent], None]] = []

#: Modules that register features; each is imported once by :func:`load_features`.
FEATURE_MODULES: tuple[str, ...] = (
    "covey.runtime.features.shared",
    "covey.runtime.features.shared_ops",
    "covey.runtime.features.election",
)

_loaded = False


def json_response(data: object, *, status: int = 200) -> web.Response:
    """An aiohttp JSON response; aiohttp is imported only when HTTP is actually served
    (it would add ~15 MiB and 0.1 s of start-up to every agent)."""
    from aiohttp import web

    return web.json_response(data, status=status)


def load_features() -> None:
    """Import every feature module (idempotent)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in FEATURE_MODULES:
        importlib.import_module(name)


def build_extensions(
    config: AgentConfig,
) -> tuple[list[Extension], dict[type[Effect], EffectWriter]]:
    """The extensions an agent with ``config`` runs, and the writers of their effects."""
    load_features()
    out = []
    writers: dict[type[Effect], EffectWriter] = {}
    for factory in EXTENSIONS:
        built = factory(config)
        if isinstance(built, tuple):
            built, more = built
            writers.update(more)
        if built is not None:
            out.append(built)
    return out, writers
