"""The live dashboard: ``GET /ui/`` serves the static page shipped in ``covey/ui/``.

The page (``index.html``, ``style.css`` and a few JavaScript modules: plain JavaScript,
no framework, no build step, nothing fetched from elsewhere) reads the same JSON API as
every other client: ``/v1/members`` as a blocking query, ``/v1/events`` as server-sent
events, and ``info``, ``names``, ``versions``, ``interfaces`` and ``deliveries`` when
something changed or every two seconds.

Only the files in :data:`FILES` are served, each on a route of its own, read through
:mod:`importlib.resources` (so an installed wheel and an editable checkout both work):
no part of a request is ever turned into a path, and any other name is a 404. ``GET /`` and
``GET /ui`` redirect to ``/ui/``.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from covey.runtime.http.routes import STR, HttpHandler, Route, error_response

if TYPE_CHECKING:
    from aiohttp import web

#: The files of the page and their content types; nothing else is served.
FILES = {
    "index.html": "text/html",
    "style.css": "text/css",
    "app.js": "application/javascript",
    "common.js": "application/javascript",
    "members.js": "application/javascript",
    "panels.js": "application/javascript",
    "events.js": "application/javascript",
}
#: Where the page lives.
PREFIX = "/ui/"
#: Sent with every file: the page talks to this agent only, runs no inline script and
#: loads nothing from elsewhere; browsers revalidate rather than keep an old copy after
#: an upgrade.
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}


def ui_file(name: str) -> bytes:
    """The bytes of one file of the page.

    Raises:
        KeyError: ``name`` is not one of :data:`FILES`.
    """
    if name not in FILES:
        raise KeyError(name)
    return resources.files("covey").joinpath("ui", name).read_bytes()


def _file_response(name: str) -> web.Response:
    from aiohttp import web

    try:
        body = ui_file(name)
    except KeyError:
        return error_response(404, f"no such file in the dashboard: {name}")
    except OSError:  # a broken installation: say so rather than a bare 500
        return error_response(500, f"the dashboard's {name} is missing from this installation")
    return web.Response(body=body, content_type=FILES[name], charset="utf-8", headers=HEADERS)


def _redirect(request: web.Request) -> web.Response:
    from aiohttp import web

    # Relative, so that the page also works behind a proxy that adds a path prefix.
    target = "ui/" if request.path == "/" else PREFIX
    return web.Response(
        status=302,
        headers={"Location": target, "Cache-Control": "no-cache"},
        text=f'<a href="{target}">the covey dashboard</a>\n',
        content_type="text/html",
    )


def ui_routes() -> list[Route]:
    """``GET /`` and ``/ui`` (redirects), ``/ui/`` and one route per file of :data:`FILES`
    (so each has its content type in the OpenAPI document, and no other name exists)."""

    async def redirect(request: web.Request) -> web.Response:
        return _redirect(request)

    def serve(name: str) -> HttpHandler:
        async def handler(request: web.Request) -> web.Response:
            return _file_response(name)

        return handler

    tag = "dashboard"
    moved = {**STR, "description": "a link to the dashboard (Location: ui/)"}
    routes = [
        Route(
            "GET",
            path,
            redirect,
            "Redirect to the dashboard (/ui/).",
            moved,
            tag=tag,
            status=302,
            content_type="text/html",
        )
        for path in ("/", "/ui")
    ]
    routes.append(
        Route(
            "GET",
            PREFIX,
            serve("index.html"),
            "The live dashboard: members, leader, versions, interfaces, events, deliveries.",
            {**STR, "description": "the dashboard's HTML page"},
            tag=tag,
            content_type="text/html",
        )
    )
    for name, kind in FILES.items():
        routes.append(
            Route(
                "GET",
                PREFIX + name,
                serve(name),
                f"The dashboard's {name}.",
                {**STR, "description": f"{name} ({kind})"},
                tag=tag,
                content_type=kind,
            )
        )
    return routes
