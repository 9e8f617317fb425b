"""The agent's HTTP API (aiohttp): every route from :class:`Route` objects, one way.

The app gathers the core's routes (:mod:`covey.runtime.http.core_routes`), those of every
feature (``agent.http_routes()``), the event stream, ``/metrics``
(:mod:`covey.runtime.http.metrics`), the dashboard's static files
(:mod:`covey.runtime.http.ui`) and the OpenAPI document made from all of them, and
wraps each handler so that, for every route alike:

* its query and path parameters and its JSON body are checked against the schemas the
  document publishes (400 naming the field, before the handler runs);
* a mutating route needs the bearer token of ``--http-token-file`` (401 without or with
  a wrong one; 403 when the agent has no token, so that mutating calls are off);
* a blocking route honours ``?index=N&wait=D`` and sets ``X-Covey-Index``;
* every error, including an unknown path (404) or method (405) and an internal error
  (500, logged), is JSON ``{"error": message}``.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from covey.core import Address
from covey.runtime.http.blocking import INDEX_HEADER, ChangeIndex, parameters, parse_wait
from covey.runtime.http.core_routes import core_routes
from covey.runtime.http.metrics import Metrics
from covey.runtime.http.openapi import build_document
from covey.runtime.http.routes import ANY, Route, error_response
from covey.runtime.http.stream import EventStreams
from covey.runtime.http.ui import ui_routes
from covey.runtime.http.validate import Invalid, coerce_param, validate

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from covey.runtime.agent import Agent

log = logging.getLogger("covey.http")

AGENT_KEY: web.AppKey[Agent] = web.AppKey("agent")
INDEX_KEY: web.AppKey[ChangeIndex] = web.AppKey("index")
STREAMS_KEY: web.AppKey[EventStreams] = web.AppKey("streams")
#: Largest request body accepted (a delivery's 64 KiB payload in base64 fits).
MAX_BODY = 256 * 1024


def authorized(request: web.Request) -> bool:
    """True when the request carries the agent's HTTP token (never when it has none)."""
    token = request.app[AGENT_KEY].config.http_token
    if token is None:
        return False
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def _refuse_unauthorized(request: web.Request) -> web.Response | None:
    if request.app[AGENT_KEY].config.http_token is None:
        return error_response(403, "mutating calls are off: start the agent with --http-token-file")
    if not authorized(request):
        response = error_response(401, "this call needs the agent's token (Bearer)")
        response.headers["WWW-Authenticate"] = 'Bearer realm="covey"'
        return response
    return None


def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``route.handler`` behind the checks of the module docstring."""
    params = parameters(route)

    async def handle(request: web.Request) -> web.StreamResponse:
        if route.mutating and (refusal := _refuse_unauthorized(request)) is not None:
            return refusal
        try:
            for param in params:
                source = request.match_info if param.where == "path" else request.query
                if param.name in source:
                    coerce_param(param, source[param.name])
                elif param.required:
                    raise Invalid(f"{param.name}: required")
            if route.body is not None:
                await _check_body(request, route)
            held = None
            if route.blocking:
                wait = parse_wait(request.query.get("wait"))
                held = int(request.query.get("index", "0"))
        except Invalid as exc:
            return error_response(400, str(exc))
        index = request.app[INDEX_KEY]
        if held:
            await index.wait_past(held, wait)
        response = await route.handler(request)
        if route.blocking:
            response.headers[INDEX_HEADER] = str(index.index)
        return response

    return handle


async def _check_body(request: web.Request, route: Route) -> None:
    assert route.body is not None
    if request.content_type != "application/json":
        raise Invalid("body: must be application/json")
    try:
        body = json.loads(await request.text())
    except (ValueError, RecursionError):
        raise Invalid("body: not JSON") from None
    validate(body, route.body)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        text = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else ""
        message = text or exc.reason or "error"
        if exc.status == 404:
            message = f"no such path: {request.path}"
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        response = error_response(exc.status, message)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("HTTP %s %s failed", request.method, request.path)
        return error_response(500, "internal error (see the agent's log)")


def all_routes(agent: Agent, streams: EventStreams, metrics: Metrics) -> list[Route]:
    """Every route the agent serves, the OpenAPI document's own included."""
    routes: list[Route] = [
        *core_routes(agent),
        streams.route(),
        metrics.route(),
        *agent.http_routes(),
        *ui_routes(),
    ]

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    own = Route(
        "GET",
        "/v1/openapi.json",
        openapi,
        "This document: the OpenAPI 3.1 description of the agent's HTTP API.",
        ANY,
        tag="meta",
    )
    routes.append(own)
    from covey import __version__

    document: dict[str, Any] = build_document(routes, version=__version__, title="covey agent")
    return routes


def make_app(agent: Agent, routes: Sequence[Route] | None = None) -> web.Application:
    """The aiohttp application serving ``agent``'s API."""
    from covey.runtime.http.serving import body_deadline

    # The body is read (bounded in size and time) before the checks and the handler.
    app = web.Application(middlewares=[_errors, body_deadline], client_max_size=MAX_BODY)
    index = ChangeIndex(agent.hub)
    streams = EventStreams(agent, index)
    metrics = Metrics(agent)  # this app's own registry; the loop-lag timer while it serves
    app.cleanup_ctx.append(metrics.serving)
    app[AGENT_KEY] = agent
    app[INDEX_KEY] = index
    app[STREAMS_KEY] = streams
    for route in routes if routes is not None else all_routes(agent, streams, metrics):
        app.router.add_route(route.method, route.path, _wrap(route))
    return app


async def start_http(agent: Agent, address: Address) -> web.AppRunner:
    """Serve the API on ``address`` within the port's bounds
    (:mod:`covey.runtime.http.serving`); call ``cleanup()`` on the result to stop."""
    from covey.runtime.http.serving import start_guarded

    return await start_guarded(agent, make_app(agent), address, agent.ports["http"])
