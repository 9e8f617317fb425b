"""The HTTP status API (aiohttp), served by the agent beside its control endpoints.

``GET /v1/members``, ``GET /v1/self``, ``GET /v1/health``, and the routes of the agent's
features (``agent.http_routes()``: facts, names...).

Read-only by design: changing an agent (tags, leave) goes through the control socket or
the authenticated RPC endpoint, never through unauthenticated HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from covey.core import Address

if TYPE_CHECKING:
    from covey.runtime.agent import Agent

AGENT_KEY: web.AppKey[Agent] = web.AppKey("agent")


async def _members(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    state = request.query.get("state")
    members = [m.to_json() for m in agent.members()]
    if state:
        members = [m for m in members if m["state"] == state]
    return web.json_response(members)


async def _self(request: web.Request) -> web.Response:
    return web.json_response(request.app[AGENT_KEY].local().to_json())


async def _health(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    stats = agent.statistics()
    verdict = agent.health.verdict(stopping=not agent.ready)
    body = {
        "status": verdict["status"],
        "reasons": verdict["reasons"],
        "name": agent.name,
        "cluster": agent.config.cluster,
        "members": stats.members,
        "health": stats.health,
    }
    return web.json_response(body, status=200 if agent.ready else 503)


def make_app(agent: Agent) -> web.Application:
    """The aiohttp application serving ``agent``'s status."""
    app = web.Application()
    app[AGENT_KEY] = agent
    app.router.add_get("/v1/members", _members)
    app.router.add_get("/v1/self", _self)
    app.router.add_get("/v1/health", _health)
    for method, path, handler in agent.http_routes():
        app.router.add_route(method, path, handler)
    return app


async def start_http(agent: Agent, address: Address) -> web.AppRunner:
    """Serve the status API on ``address``; call ``cleanup()`` on the result to stop."""
    runner = web.AppRunner(make_app(agent), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, address[0], address[1], reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
