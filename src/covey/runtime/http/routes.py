"""What an HTTP route is: the handler and the description the OpenAPI document is made of.

A feature's :meth:`~covey.runtime.features.base.Feature.http_routes` returns
:class:`Route` objects. The agent's HTTP app registers their handlers and builds
``/v1/openapi.json`` from the same objects (:mod:`covey.runtime.http.openapi`), so the
description can never drift from what is served: a route without a response schema cannot
be written.

Nothing here imports aiohttp (agents without ``--http`` must not load it); handlers take an
``aiohttp.web.Request`` and return a response made with :func:`json_response`.

The small schema helpers (:func:`obj`, :func:`arr`, :data:`STR`...) write JSON Schema
(draft 2020-12, as OpenAPI 3.1 uses) tersely.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import field
from typing import TYPE_CHECKING, Any

from covey.core.records import record

if TYPE_CHECKING:
    from aiohttp import web

Schema = dict[str, Any]
HttpHandler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY: Schema = {}
#: The body of every error answer.
ERROR: Schema = {
    "type": "object",
    "properties": {"error": STR},
    "required": ["error"],
}


def obj(
    required: dict[str, Schema] | None = None,
    optional: dict[str, Schema] | None = None,
    *,
    extra: Schema | bool = True,
) -> Schema:
    """An object schema: ``required`` properties must be present, ``optional`` may be.

    ``extra`` is the schema of other properties (``True``: anything, ``False``: none);
    responses leave it open so that adding a field is not a breaking change.
    """
    props = {**(required or {}), **(optional or {})}
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if extra is not True:
        out["additionalProperties"] = extra
    return out


def arr(items: Schema) -> Schema:
    """An array of ``items``."""
    return {"type": "array", "items": items}


def nullable(schema: Schema) -> Schema:
    """``schema`` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def mapping(values: Schema) -> Schema:
    """An object used as a map from any name to ``values``."""
    return {"type": "object", "additionalProperties": values}


def enum(*values: str) -> Schema:
    """One of the given strings."""
    return {"type": "string", "enum": list(values)}


@record
class Param:
    """One parameter of a route.

    Attributes:
        name: its name.
        schema: its JSON Schema (query values arrive as text and are checked by the
            handler; the schema says what is accepted).
        description: one line for the document.
        where: ``query`` or ``path`` (a parameter the route's path names is a path
            parameter whatever this says: see :meth:`Route.located`).
        required: path parameters always are.
    """

    name: str
    schema: Schema
    description: str
    where: str = "query"
    required: bool = False


@record
class Route:
    """One HTTP route: method, path, handler and its description.

    Attributes:
        method: ``GET``, ``POST``, ``PUT``, ``DELETE``.
        path: an aiohttp path, ``{name}`` for a path parameter (declared in ``params``).
        handler: the aiohttp handler.
        summary: one line: what it does.
        response: the JSON Schema of a successful answer's body (for ``content_type``
            other than JSON: a string schema describing it).
        tag: the OpenAPI tag that groups it (the feature's name).
        status: the status of a successful answer.
        params: query and path parameters.
        body: the JSON Schema of the request body, if it takes one.
        errors: ``{status: when}`` for every error status it may answer (each with the
            :data:`ERROR` body).
        mutating: it changes something, so it needs the HTTP token (``--http-token-file``);
            refused with 401/403 without it.
        blocking: it accepts ``?index=N&wait=D`` (see :mod:`covey.runtime.http.blocking`)
            and sets ``X-Covey-Index``.
        content_type: of a successful answer.
        description: a longer text, if one line is not enough.
    """

    method: str
    path: str
    handler: HttpHandler
    summary: str
    response: Schema
    tag: str
    status: int = 200
    params: tuple[Param, ...] = ()
    body: Schema | None = None
    errors: dict[int, str] = field(default_factory=dict)
    mutating: bool = False
    blocking: bool = False
    content_type: str = "application/json"
    description: str = ""

    def located(self) -> tuple[Param, ...]:
        """``params``, each named in the path (``{name}``) as a required path parameter."""
        out = []
        for p in self.params:
            if "{" + p.name + "}" in self.path or "{" + p.name + ":" in self.path:
                p = Param(p.name, p.schema, p.description, where="path", required=True)
            out.append(p)
        return tuple(out)


def json_response(data: object, *, status: int = 200) -> web.Response:
    """An aiohttp JSON response; aiohttp is imported only when HTTP is actually served
    (it would add ~15 MiB and 0.1 s of start-up to every agent)."""
    from aiohttp import web

    return web.json_response(data, status=status)


def error_response(status: int, message: str) -> web.Response:
    """The JSON error answer every route gives: ``{"error": message}``."""
    return json_response({"error": message}, status=status)


def authorized(request: web.Request) -> bool:
    """True when ``request`` carries the agent's HTTP token (for a route that shows more,
    a secret, to a caller holding it)."""
    from covey.runtime.http.app import authorized as check

    return check(request)
