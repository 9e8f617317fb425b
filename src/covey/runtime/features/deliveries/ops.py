"""Control operations and HTTP routes of the deliveries.

Control (``covey deliver ...``, JSON lines; see runtime/control/server.py):

* ``deliver_create`` ``payload_b64`` (or ``payload`` text) [``stages``: ["K:SEL", ...]]
  [``deadline`` s per request] [``expire`` s overall] [``wait`` s] → ``{"id": hex}``
  (with ``wait``: the delivery, shown, once it ended);
* ``deliver_show`` ``id`` → the delivery shown (see api.py); ``deliver_list`` [``state``];
* ``deliver_cancel`` ``id`` → ``{"cancelled": bool}``;
* ``deliver_wait`` ``id`` [``timeout`` s] → the delivery once it ended.

HTTP: ``POST /v1/deliveries`` (a JSON body with the same fields as ``deliver_create``;
201 with ``{"id"}``), ``GET /v1/deliveries`` (``?state=``), ``GET /v1/deliveries/{id}``,
``DELETE /v1/deliveries/{id}`` (creating and cancelling need the HTTP token). A refusal
is ``400 {"error": ...}`` naming the field; an unknown id is 404; deliveries switched
off, or a store that cannot be written, is 503.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from covey.runtime.control.server import ControlError
from covey.runtime.features.base import ControlHandler, HttpRoute, json_response
from covey.runtime.features.deliveries.api import MAX_WAIT, parse_id
from covey.runtime.http.adapt import refusal_status
from covey.runtime.http.routes import error_response

if TYPE_CHECKING:
    from aiohttp import web

    from covey.runtime.features.deliveries.api import DeliveriesAPI


def _payload(r: dict[str, Any]) -> bytes:
    if "payload_b64" in r:
        value = r["payload_b64"]
        if not isinstance(value, str):
            raise ControlError("payload_b64: must be base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ControlError("payload_b64: not valid base64") from None
    value = r.get("payload", "")
    if not isinstance(value, str):
        raise ControlError("payload: must be text (or give payload_b64)")
    return value.encode()


def _seconds(r: dict[str, Any], name: str, limit: float) -> float | None:
    value = r.get(name)
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 < value <= limit:
        raise ControlError(f"{name}: must be a number of seconds in (0, {limit:g}]")
    return float(value)


def _stages(r: dict[str, Any]) -> list[str]:
    stages = r.get("stages", ["1:any"])
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        raise ControlError('stages: must be a list of "K:SELECTOR" texts')
    return stages


def _create(api: DeliveriesAPI, r: dict[str, Any]) -> Awaitable[object]:
    payload, stages = _payload(r), _stages(r)
    deadline = _seconds(r, "deadline", 86400 * 7)
    expire = _seconds(r, "expire", 86400 * 7)
    wait = _seconds(r, "wait", MAX_WAIT)
    item = api.create(payload, stages, deadline=deadline, expire=expire)

    async def run() -> object:
        await api.stored(item)  # acknowledged only once it survives a crash of this agent
        if wait is None:
            return {"id": item}
        try:
            return await api.wait(item, timeout=wait)
        except TimeoutError:
            raise ControlError(f"wait: delivery {item} had not ended after {wait:g}s") from None

    return run()


def _show(api: DeliveriesAPI, r: dict[str, Any]) -> object:
    shown = api.get(parse_id(r.get("id")))
    if shown is None:
        raise ControlError(f"id: no delivery {r.get('id')} here")
    return shown


def _wait(api: DeliveriesAPI, r: dict[str, Any]) -> Awaitable[object]:
    item = parse_id(r.get("id"))
    timeout = _seconds(r, "timeout", MAX_WAIT) or 60.0

    async def run() -> object:
        try:
            return await api.wait(item, timeout=timeout)
        except TimeoutError:
            why = f"timeout: delivery {item.hex()} had not ended after {timeout:g}s"
            raise ControlError(why) from None

    return run()


def delivery_ops(api: DeliveriesAPI) -> dict[str, ControlHandler]:
    """Control operations by name (see the module docstring)."""
    return {
        "deliver_create": lambda r: _create(api, r),
        "deliver_show": lambda r: _show(api, r),
        "deliver_list": lambda r: api.list(r.get("state")),
        "deliver_cancel": lambda r: {"cancelled": api.cancel(parse_id(r.get("id")))},
        "deliver_wait": lambda r: _wait(api, r),
    }


def delivery_routes(api: DeliveriesAPI) -> list[HttpRoute]:
    """The four ``/v1/deliveries`` routes (see the module docstring); creating and
    cancelling need the token."""
    from covey.runtime.http.adapt import op_handler
    from covey.runtime.http.routes import INT, NUM, STR, Param, Route, arr, enum, nullable, obj

    async def listing(request: web.Request) -> web.Response:
        try:
            return json_response(api.list(request.query.get("state")))
        except ControlError as exc:
            return error_response(refusal_status(str(exc)), str(exc))

    async def cancel(request: web.Request) -> web.Response:
        try:
            item = parse_id(request.match_info["id"])
            if api.get(item) is None:
                raise ControlError(f"id: no delivery {item.hex()} here")
            return json_response({"cancelled": api.cancel(item)})
        except ControlError as exc:
            return error_response(refusal_status(str(exc)), str(exc))

    states = enum("pending", "stage", "complete", "failed", "cancelled")
    common = {
        "id": STR,
        "owner": STR,
        "state": states,
        "stage": INT,
        "reason": nullable(STR),
        "created": NUM,
        "deadline": nullable(NUM),
        "due": nullable(NUM),
        "size": INT,
    }
    summary = obj(
        {**common, "stages": arr(obj({"required": INT, "selector": STR, "receipts": INT}))}
    )
    stage = obj({"required": INT, "selector": STR, "asked": arr(STR), "receipts": arr(obj())})
    shown = obj({**common, "stages": arr(stage)}, {"notifications": arr(obj())})
    seconds = {**NUM, "minimum": 0.001, "maximum": 86400 * 7}
    body = obj(
        optional={
            "payload": {"type": "string", "maxLength": 65536},
            "payload_b64": {"type": "string", "maxLength": 87384},
            "stages": {
                **arr({"type": "string", "pattern": "^[0-9]{1,3}:", "maxLength": 256}),
                "minItems": 1,
                "maxItems": 16,
            },
            "deadline": seconds,
            "expire": seconds,
            "wait": {**NUM, "minimum": 0.001, "maximum": MAX_WAIT},
        },
        extra=False,
    )
    id_param = Param("id", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "The delivery's id.")
    off = "deliveries are off, or the store cannot be written now"
    tag = "deliveries"
    return [
        Route(
            "POST",
            "/v1/deliveries",
            op_handler(delivery_ops(api)["deliver_create"], body=True, status=201),
            "Create a delivery; answered once it is stored (with wait: once it ended).",
            obj(optional={"id": STR, **common}),
            tag=tag,
            status=201,
            body=body,
            errors={503: off},
            mutating=True,
        ),
        Route(
            "GET",
            "/v1/deliveries",
            listing,
            "This node's deliveries, oldest first, with receipt counts per stage.",
            arr(summary),
            tag=tag,
            params=(Param("state", states, "Only deliveries in this state."),),
            errors={503: off},
            blocking=True,
        ),
        Route(
            "GET",
            "/v1/deliveries/{id}",
            op_handler(delivery_ops(api)["deliver_show"], path=("id",)),
            "One delivery with its stages, receipts and notifications.",
            shown,
            tag=tag,
            params=(id_param,),
            errors={404: "no such delivery here", 503: off},
        ),
        Route(
            "DELETE",
            "/v1/deliveries/{id}",
            cancel,
            "Cancel a delivery this node owns (false: already ended).",
            obj({"cancelled": {"type": "boolean"}}),
            tag=tag,
            params=(id_param,),
            errors={404: "no such delivery here", 503: off},
            mutating=True,
        ),
    ]
