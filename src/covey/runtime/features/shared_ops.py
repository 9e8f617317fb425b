"""Control operations and HTTP routes of the shared state (facts, versions, settings, actions).

Control (``covey`` CLI, JSON lines; see runtime/control.py):

* ``facts`` [``node``] → {node: {key: value}} of every live node;
* ``fact_set`` ``key`` ``value`` / ``fact_delete`` ``key`` → {"changed": bool};
* ``versions`` → {"local", "lowest", "nodes", "count_failed"}; ``version_set`` ``version``;
* ``action`` ``name`` [``payload``] [``timeout``] → {"id", "results", "missing"} (waits);
* ``setting_set`` ``name`` ``value`` (null deletes) / ``setting_get`` ``name`` / ``settings``;
* ``registry_set`` ``ip`` ``port`` ``key`` / ``registry_get``; ``steward_set`` ``ip``
  ``port`` / ``steward_get``.

HTTP (read-only, like the rest of the HTTP API): ``GET /v1/facts`` (``?node=NAME``),
``GET /v1/versions``, ``GET /v1/settings``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from covey.runtime.control.server import ControlError
from covey.runtime.features.base import CONTROL_OPS, HTTP_ROUTES, json_response

if TYPE_CHECKING:
    from aiohttp import web

    from covey.runtime.agent import Agent

#: Longest wait an action request may ask for.
MAX_ACTION_TIMEOUT = 300.0


def _text(request: dict[str, Any], field: str, *, optional: bool = False) -> Any:
    value = request.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ControlError(f'"{field}" must be text')
    return value


def _port(request: dict[str, Any]) -> int:
    port = request.get("port")
    if type(port) is not int:
        raise ControlError('"port" must be an integer')
    return port


def _guard(fn: Any) -> Any:
    """Turn the API's ValueErrors (they name the field) into refusals."""
    try:
        return fn()
    except ValueError as exc:
        raise ControlError(str(exc)) from None


def _facts(agent: Agent, r: dict[str, Any]) -> object:
    return agent.facts(_text(r, "node", optional=True))


def _fact_set(agent: Agent, r: dict[str, Any]) -> object:
    key, value = _text(r, "key"), _text(r, "value")
    return {"changed": _guard(lambda: agent.set_fact(key, value))}


def _fact_delete(agent: Agent, r: dict[str, Any]) -> object:
    key = _text(r, "key")
    return {"changed": _guard(lambda: agent.delete_fact(key))}


def _versions(agent: Agent, r: dict[str, Any]) -> object:
    return agent.versions()


def _version_set(agent: Agent, r: dict[str, Any]) -> object:
    version = _text(r, "version")
    _guard(lambda: agent.set_local_version(version))
    return agent.versions()


def _action(agent: Agent, r: dict[str, Any]) -> Awaitable[object]:
    name = _text(r, "name")
    payload = _text(r, "payload", optional=True) or ""
    timeout = r.get("timeout", 10.0)
    if type(timeout) not in (int, float) or not 0 < timeout <= MAX_ACTION_TIMEOUT:
        raise ControlError(f'"timeout" must be a number in (0, {MAX_ACTION_TIMEOUT:g}]')

    async def run() -> object:
        try:
            return await agent.run_action(name, payload, float(timeout))
        except ValueError as exc:
            raise ControlError(str(exc)) from None

    return run()


def _setting_set(agent: Agent, r: dict[str, Any]) -> object:
    name, value = _text(r, "name"), _text(r, "value", optional=True)
    _guard(lambda: agent.set_setting(name, value))
    return {"name": name, "value": agent.get_setting(name)}


def _setting_get(agent: Agent, r: dict[str, Any]) -> object:
    name = _text(r, "name")
    return {"name": name, "value": agent.get_setting(name)}


def _settings(agent: Agent, r: dict[str, Any]) -> object:
    return agent.settings()


def _registry_set(agent: Agent, r: dict[str, Any]) -> object:
    ip, port, key = _text(r, "ip"), _port(r), _text(r, "key")
    _guard(lambda: agent.set_registry(ip, port, key))
    return agent.get_registry()


def _steward_set(agent: Agent, r: dict[str, Any]) -> object:
    ip, port = _text(r, "ip"), _port(r)
    _guard(lambda: agent.set_steward(ip, port))
    return agent.get_steward()


CONTROL_OPS.update(
    {
        "facts": _facts,
        "fact_set": _fact_set,
        "fact_delete": _fact_delete,
        "versions": _versions,
        "version_set": _version_set,
        "action": _action,
        "setting_set": _setting_set,
        "setting_get": _setting_get,
        "settings": _settings,
        "registry_set": _registry_set,
        "registry_get": lambda agent, r: agent.get_registry(),
        "steward_set": _steward_set,
        "steward_get": lambda agent, r: agent.get_steward(),
    }
)


def _agent(request: web.Request) -> Agent:
    from covey.api.http import AGENT_KEY

    return request.app[AGENT_KEY]


async def _http_facts(request: web.Request) -> web.Response:
    return json_response(_agent(request).facts(request.query.get("node")))


async def _http_versions(request: web.Request) -> web.Response:
    return json_response(_agent(request).versions())


async def _http_settings(request: web.Request) -> web.Response:
    return json_response(_agent(request).settings())


HTTP_ROUTES.extend(
    [
        ("GET", "/v1/facts", _http_facts),
        ("GET", "/v1/versions", _http_versions),
        ("GET", "/v1/settings", _http_settings),
    ]
)
