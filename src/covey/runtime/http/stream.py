"""``GET /v1/events``: the agent's events as server-sent events (``text/event-stream``).

Each event is one SSE message: ``id`` the change index after it, ``event`` its kind
(``member-failed``, ``fact-changed``...) and ``data`` the JSON object ``covey monitor``
prints. A comment line is sent every :data:`KEEPALIVE` seconds so that proxies and
browsers keep the stream open and a vanished client is noticed. ``?limit=N`` ends the
stream after N events and ``?timeout=D`` after D (both for scripts and tests; a browser's
``EventSource`` reconnects by itself).

Bounded: at most :data:`MAX_STREAMS` streams at once (503 beyond), and each has the event
hub's bounded queue — a client that does not read loses its oldest events rather than
growing the agent's memory.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from covey.runtime.events import event_to_json
from covey.runtime.http.blocking import DURATION, parse_seconds
from covey.runtime.http.routes import INT, STR, Param, Route, error_response

if TYPE_CHECKING:
    from aiohttp import web

    from covey.runtime.agent import Agent
    from covey.runtime.http.blocking import ChangeIndex

#: Event streams served at once.
MAX_STREAMS = 32
#: Seconds between keep-alive comments.
KEEPALIVE = 15.0
#: Longest ``timeout`` accepted (seconds).
MAX_TIMEOUT = 86400.0


class EventStreams:
    """Serves ``/v1/events`` for one agent and counts its open streams."""

    def __init__(self, agent: Agent, index: ChangeIndex) -> None:
        self.agent = agent
        self.index = index
        self.open = 0

    def route(self) -> Route:
        """The route of the event stream."""
        return Route(
            "GET",
            "/v1/events",
            self.serve,
            "Stream the agent's events as server-sent events.",
            {**STR, "description": "text/event-stream: id, event (the kind) and data (JSON)"},
            tag="events",
            params=(
                Param("limit", {**INT, "minimum": 1, "maximum": 100000}, "End after N events."),
                Param(
                    "timeout",
                    {"type": "string", "pattern": DURATION.pattern},
                    "End after this long (30s, 2m).",
                ),
            ),
            errors={400: "a bad parameter", 503: f"{MAX_STREAMS} streams are open already"},
            content_type="text/event-stream",
        )

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """Answer one stream request (see the module docstring)."""
        from aiohttp import web

        limit = int(request.query.get("limit", "0") or 0)
        timeout = MAX_TIMEOUT
        if "timeout" in request.query:
            timeout = parse_seconds(request.query["timeout"], "timeout", MAX_TIMEOUT)
        if self.open >= MAX_STREAMS:
            return error_response(503, f"{MAX_STREAMS} event streams are open already")
        self.open += 1
        try:
            response = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            await response.prepare(request)
            await response.write(b": covey events\n\n")
            await self._pump(response, limit, time.monotonic() + timeout)
            return response
        finally:
            self.open -= 1

    async def _pump(self, response: web.StreamResponse, limit: int, end: float) -> None:
        sent = 0
        with self.agent.events() as sub:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    return
                event = await sub.get(timeout=min(KEEPALIVE, left))
                if event is None:
                    if sub.queue.empty() and self.agent.hub.closed:
                        return  # the agent stops
                    await response.write(b": keep-alive\n\n")
                    continue
                shown = event_to_json(event, self.agent.node.wall_offset)
                kind = str(shown.get("event", "event")).replace("\n", " ")
                body = json.dumps(shown)
                text = f"id: {self.index.index}\nevent: {kind}\ndata: {body}\n\n"
                await response.write(text.encode())
                sent += 1
                if limit and sent >= limit:
                    return
