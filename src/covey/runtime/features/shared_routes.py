"""HTTP routes of the shared state, answered by the same operations as the control socket.

Reads: ``GET /v1/facts`` (``?node=NAME``), ``/v1/versions``, ``/v1/settings`` (the
registry's key only with the token). Changes (token needed): ``PUT``/``DELETE
/v1/facts/{key}``, ``PUT /v1/version``, ``PUT /v1/settings/{name}``, ``POST
/v1/actions`` (runs a cluster-wide action and waits for its results).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from covey.runtime.http.adapt import op_handler
from covey.runtime.http.routes import (
    BOOL,
    NUM,
    STR,
    Param,
    Route,
    arr,
    authorized,
    json_response,
    mapping,
    nullable,
    obj,
)

if TYPE_CHECKING:
    from aiohttp import web

    from covey.runtime.features.shared_ops import SharedOps

TAG = "shared state"
#: A fact value or setting (at most 1024 octets, no NUL: core/state/messages.py).
TEXT = {"type": "string", "maxLength": 1024, "pattern": "^[^\\x00]*$"}
#: A fact key, setting or action name (core/state/messages.py's check_key).
KEY = {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.:@+=-]{0,127}$"}
#: A version (core/state/versions.py).
VERSION = {"type": "string", "pattern": "^[0-9]{1,18}(\\.[0-9]{1,18}){0,7}$"}
VERSIONS = obj(
    {
        "local": nullable(STR),
        "lowest": nullable(STR),
        "nodes": mapping(nullable(STR)),
        "count_failed": BOOL,
    }
)
CHANGED = obj({"changed": BOOL})
SETTING = obj({"name": STR, "value": nullable(STR)})
ACTION_RESULT = obj({"id": STR, "results": obj(), "missing": arr(STR)})


def shared_routes(ops: SharedOps) -> list[Route]:
    """The routes of the module docstring."""
    from covey.runtime.features.shared_ops import MAX_ACTION_TIMEOUT, redact_settings

    async def facts(request: web.Request) -> web.Response:
        return json_response(ops.facts(request.query.get("node")))

    async def versions(request: web.Request) -> web.Response:
        return json_response(ops.facts.versions())

    async def settings(request: web.Request) -> web.Response:
        every = ops.settings()
        return json_response(every if authorized(request) else redact_settings(every))

    control = ops.control_ops()
    key = Param("key", KEY, "The fact's key.")
    name = Param("name", KEY, "The setting's name.")
    return [
        Route(
            "GET",
            "/v1/facts",
            facts,
            "The facts (key → value) of every live node, by node name.",
            mapping(mapping(STR)),
            tag=TAG,
            params=(Param("node", STR, "Only this node (name or id)."),),
            blocking=True,
        ),
        Route(
            "GET",
            "/v1/versions",
            versions,
            "This node's version, every counted member's, and the cluster's lowest.",
            VERSIONS,
            tag=TAG,
            blocking=True,
        ),
        Route(
            "GET",
            "/v1/settings",
            settings,
            "The cluster-wide settings (the registry's key only with the token).",
            mapping(STR),
            tag=TAG,
            blocking=True,
        ),
        Route(
            "PUT",
            "/v1/facts/{key}",
            op_handler(control["fact_set"], path=("key",), body=True),
            "Publish one fact of this node.",
            CHANGED,
            tag=TAG,
            params=(key,),
            body=obj({"value": TEXT}, extra=False),
            mutating=True,
        ),
        Route(
            "DELETE",
            "/v1/facts/{key}",
            op_handler(control["fact_delete"], path=("key",)),
            "Delete one fact of this node.",
            CHANGED,
            tag=TAG,
            params=(key,),
            mutating=True,
        ),
        Route(
            "PUT",
            "/v1/version",
            op_handler(control["version_set"], body=True),
            "Set this node's version (what the lowest version is made of).",
            VERSIONS,
            tag=TAG,
            body=obj({"version": VERSION}, extra=False),
            mutating=True,
        ),
        Route(
            "PUT",
            "/v1/settings/{name}",
            op_handler(control["setting_set"], path=("name",), body=True),
            "Write a cluster-wide setting (null deletes it); the last writer wins.",
            SETTING,
            tag=TAG,
            params=(name,),
            body=obj({"value": nullable(TEXT)}, extra=False),
            mutating=True,
        ),
        Route(
            "POST",
            "/v1/actions",
            op_handler(control["action"], body=True),
            "Run a cluster-wide action and wait for every live member's result.",
            ACTION_RESULT,
            tag=TAG,
            body=obj(
                {"name": KEY},
                {
                    "payload": TEXT,
                    "timeout": {**NUM, "minimum": 0.001, "maximum": MAX_ACTION_TIMEOUT},
                },
                extra=False,
            ),
            mutating=True,
        ),
    ]
