"""HTTP handlers made from control operations, so both endpoints run the same code.

A feature's control operation (``{op: handler(request dict)}``) already checks its
arguments and raises ``ControlError`` with a message naming the field. :func:`op_handler`
turns it into an aiohttp handler: the JSON body, the path parameters and chosen query
parameters become the request dict; the result is the JSON answer; a refusal becomes an
error answer whose status :func:`refusal_status` chooses from the message.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from covey.runtime.control.server import ControlError
from covey.runtime.http.routes import HttpHandler, error_response, json_response

if TYPE_CHECKING:
    from aiohttp import web

ControlOp = Callable[[dict[str, Any]], object]


def refusal_status(message: str) -> int:
    """The HTTP status of a control refusal: 404 for something that is not there (an
    unknown id, a feature switched off), 503 for what cannot answer now but may later
    (a store that cannot be written, an agent stopping, a figure not measured yet), 409
    for a member in the wrong state for the request, else 400 (the request was wrong)."""
    text = message.lower()
    if text.startswith(("store:", "agent is shutting down", "deliveries wait", "no round trip")):
        return 503
    if "only a failed member" in text:
        return 409
    if text.startswith(("id: no ", "no such")) or " is off" in text or " are off" in text:
        return 404
    return 400


def op_handler(
    op: ControlOp,
    *,
    path: Sequence[str] = (),
    query: Sequence[str] = (),
    body: bool = False,
    status: int = 200,
    fixed: dict[str, Any] | None = None,
) -> HttpHandler:
    """An aiohttp handler running control operation ``op`` (see the module docstring).

    Args:
        op: the operation.
        path: path parameters copied into the request dict.
        query: query parameters copied into it when present (as text).
        body: read the JSON object body into it (the app has checked it already).
        status: of a successful answer.
        fixed: entries always set (after the others).
    """

    async def handle(request: web.Request) -> web.Response:
        args: dict[str, Any] = {}
        if body:
            loaded = json.loads(await request.text())
            if isinstance(loaded, dict):
                args.update(loaded)
        for name in path:
            args[name] = request.match_info[name]
        for name in query:
            if name in request.query:
                args[name] = request.query[name]
        args.update(fixed or {})
        try:
            result = op(args)
            if inspect.isawaitable(result):
                result = await result
        except ControlError as exc:
            return error_response(refusal_status(str(exc)), str(exc))
        return json_response(result, status=status)

    return handle
