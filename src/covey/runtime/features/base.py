"""What a runtime feature is: a capability of the core with the IO, operations and routes
around it.

A :class:`Feature` object bundles

* its ``name``;
* the core :class:`~covey.core.plugin.Capability` objects it plugs into the node
  (:meth:`Feature.capabilities`, possibly none);
* its control operations (:meth:`Feature.control_ops`, ``{op: handler(request)}``; a
  handler returns a JSON-ready result, or an awaitable of one, or raises ``ControlError``);
* its HTTP routes (:meth:`Feature.http_routes`, :class:`~covey.runtime.http.routes.Route`
  objects: handler, parameters, body and answer schemas, whether it mutates — the OpenAPI
  document is made from them; a handler answers with :func:`json_response` — never import
  aiohttp at module level: agents without ``--http`` must not load it);
* the writers of the durable effects its capabilities hand out
  (:meth:`Feature.effect_writers`, ``{Effect type: writer}``; run on the driver's writer
  thread before the step's datagrams leave);
* the sockets it listens on, opened by :meth:`Feature.bind` while the agent binds its own
  (before anything is announced: a port that cannot be bound fails the start as covey's
  own would, with everything bound so far closed);
* its background work, begun by :meth:`Feature.start` (after :meth:`Feature.prepare`,
  which comes just before the core starts) with the agent's public
  :class:`~covey.runtime.context.AgentContext`, and ended by :meth:`Feature.stop`.

There is no registry: the :class:`~covey.runtime.agent.Agent` builds its list of features
from its configuration in plain code, and gathers their operations, routes and writers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from covey.core import Extension
from covey.core.effects import Effect
from covey.runtime.http.routes import HttpHandler, Route, json_response

if TYPE_CHECKING:
    from covey.runtime.context import AgentContext

EffectWriter = Callable[[Effect], None]
#: What a capability factory builds: the capability, optionally with its effect writers.
Built = Extension | tuple[Extension, dict[type[Effect], EffectWriter]]
ControlHandler = Callable[[dict[str, Any]], object]
#: A feature's HTTP route (kept under this name for the features' imports).
HttpRoute = Route


def split_built(built: Built) -> tuple[Extension, dict[type[Effect], EffectWriter]]:
    """(capability, its effect writers) from what a factory returned."""
    if isinstance(built, tuple):
        return built
    return built, {}


class Feature:
    """One runtime feature (see the module docstring); subclasses override what they have.

    The defaults plug in nothing: no capability, operation, route, writer or work.
    """

    #: Unique per agent; names the feature in logs.
    name: str = ""

    def capabilities(self) -> Sequence[Extension]:
        """The core capabilities to add to the node (before it starts)."""
        return ()

    def control_ops(self) -> Mapping[str, ControlHandler]:
        """Control operations by name."""
        return {}

    def http_routes(self) -> Sequence[HttpRoute]:
        """The HTTP routes (reads, and mutating ones marked so: they need the token)."""
        return ()

    def effect_writers(self) -> Mapping[type[Effect], EffectWriter]:
        """What makes each effect type of this feature durable."""
        return {}

    def info(self) -> Mapping[str, object]:
        """What ``covey info`` shows of this feature under its name (nothing: left out)."""
        return {}

    def bind(self) -> None:
        """While the agent binds its sockets: open the feature's own (raise ``OSError``)."""

    def prepare(self, ctx: AgentContext) -> None:
        """Just before the core starts: listen to events from the very first (no calls
        into the core yet, no tasks)."""

    def start(self, ctx: AgentContext) -> None:
        """The core has started: begin the background work (before the agent serves)."""

    def stop(self) -> None:
        """The agent stopped (every task cancelled): release what the feature holds."""


__all__ = [
    "Built",
    "ControlHandler",
    "EffectWriter",
    "Feature",
    "HttpHandler",
    "HttpRoute",
    "Route",
    "json_response",
    "split_built",
]
