"""The OpenAPI 3.1 document of an agent's HTTP API, made from its routes.

Nothing here is written by hand beside the routes: every path, parameter, body and answer
comes from the :class:`~covey.runtime.http.routes.Route` objects the app serves, so the
document is what the agent does. Served as ``GET /v1/openapi.json``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from covey.runtime.http.blocking import INDEX_HEADER, parameters
from covey.runtime.http.routes import ERROR, Route

_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

#: The answers every route may give besides its own.
_COMMON_ERRORS = {
    400: "A parameter or the body is invalid (the message names it).",
    500: "An internal error (logged by the agent).",
}
_AUTH_ERRORS = {
    401: "No token, or the wrong one (Authorization: Bearer TOKEN).",
    403: "The agent has no --http-token-file: mutating calls are off.",
}


def openapi_path(path: str) -> str:
    """An aiohttp path (``{id}``, ``{key:.+}``) as an OpenAPI path (``{id}``, ``{key}``)."""
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _error(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": ERROR}}}


def _operation(route: Route) -> dict[str, Any]:
    params = parameters(route)
    op: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "description": p.description,
                "schema": p.schema,
            }
            for p in params
        ],
    }
    if route.description:
        op["description"] = route.description
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body}},
        }
    ok: dict[str, Any] = {
        "description": "Success.",
        "content": {route.content_type: {"schema": route.response}},
    }
    if route.blocking:
        ok["headers"] = {
            INDEX_HEADER: {
                "description": "The agent's change index (see ?index).",
                "schema": {"type": "integer"},
            }
        }
    responses: dict[str, Any] = {str(route.status): ok}
    errors = {**_COMMON_ERRORS, **(_AUTH_ERRORS if route.mutating else {}), **route.errors}
    if route.body is not None:
        errors.setdefault(413, "The body is larger than the agent accepts (256 KiB).")
    for status, text in sorted(errors.items()):
        responses[str(status)] = _error(text)
    op["responses"] = responses
    if route.mutating:
        op["security"] = [{"token": []}]
    return op


def _operation_id(route: Route) -> str:
    words = re.sub(r"[{}]", "", openapi_path(route.path)).strip("/").split("/")
    words = [w for w in words if w and w != "v1"]
    return route.method.lower() + "_" + "_".join(w.replace("-", "_") for w in words)


def build_document(routes: Sequence[Route], *, version: str, title: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing ``routes``.

    Raises:
        ValueError: two routes share a method and path.
    """
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        item = paths.setdefault(openapi_path(route.path), {})
        method = route.method.lower()
        if method in item:
            raise ValueError(f"{route.method} {route.path} is defined twice")
        item[method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "The HTTP API of one covey agent. Reads are open; calls that change "
                "something, and reading secrets, need the agent's bearer token "
                '(--http-token-file). Errors are JSON: {"error": message}.'
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR},
        },
    }
