"""Control operations and HTTP routes of the shared state (facts, versions, settings, actions).

Control (``covey`` CLI, JSON lines; see runtime/control/server.py):

* ``facts`` [``node``] → {node: {key: value}} of every live node;
* ``fact_set`` ``key`` ``value`` / ``fact_delete`` ``key`` → {"changed": bool};
* ``versions`` → {"local", "lowest", "nodes", "count_failed"}; ``version_set`` ``version``;
* ``action`` ``name`` [``payload``] [``timeout``] → {"id", "results", "missing"} (waits);
* ``setting_set`` ``name`` ``value`` (null deletes) / ``setting_get`` ``name`` / ``settings``;
* ``registry_set`` ``ip`` ``port`` ``key`` / ``registry_get``; ``steward_set`` ``ip``
  ``port`` / ``steward_get``.

HTTP: see shared_routes.py (the same operations; the registry's key only with the token).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from covey.runtime.control.server import ControlError
from covey.runtime.features.base import ControlHandler, HttpRoute

if TYPE_CHECKING:
    from covey.runtime.features.shared_api import ActionsAPI, FactsAPI, SettingsAPI

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


#: What the unauthenticated HTTP API shows instead of a secret.
REDACTED = "(redacted: read it with covey registry get, or over HTTP with the token)"


def redact_settings(settings: dict[str, str]) -> dict[str, str]:
    """The settings without the registry's ``key`` (seed 003's registry carries one), for
    an HTTP caller without the agent's token (the control socket is access-controlled)."""
    out = dict(settings)
    text = out.get("registry")
    if text is not None:
        try:
            value = json.loads(text)
        except ValueError:
            return out
        if isinstance(value, dict) and "key" in value:
            value["key"] = REDACTED
            out["registry"] = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return out


class SharedOps:
    """The shared state's operations and routes, answered by its three facades."""

    def __init__(self, facts: FactsAPI, settings: SettingsAPI, actions: ActionsAPI) -> None:
        self.facts, self.settings, self.actions = facts, settings, actions

    def control_ops(self) -> dict[str, ControlHandler]:
        """Control operations by name (see the module docstring)."""
        s = self.settings
        return {
            "facts": self._facts,
            "fact_set": self._fact_set,
            "fact_delete": self._fact_delete,
            "versions": lambda r: self.facts.versions(),
            "version_set": self._version_set,
            "action": self._action,
            "setting_set": self._setting_set,
            "setting_get": self._setting_get,
            "settings": lambda r: s(),
            "registry_set": self._registry_set,
            "registry_get": lambda r: s.get_registry(),
            "steward_set": self._steward_set,
            "steward_get": lambda r: s.get_steward(),
        }

    def http_routes(self) -> list[HttpRoute]:
        """The HTTP routes (see shared_routes.py)."""
        from covey.runtime.features.shared_routes import shared_routes

        return shared_routes(self)

    def _facts(self, r: dict[str, Any]) -> object:
        return self.facts(_text(r, "node", optional=True))

    def _fact_set(self, r: dict[str, Any]) -> object:
        key, value = _text(r, "key"), _text(r, "value")
        return {"changed": _guard(lambda: self.facts.set(key, value))}

    def _fact_delete(self, r: dict[str, Any]) -> object:
        key = _text(r, "key")
        return {"changed": _guard(lambda: self.facts.delete(key))}

    def _version_set(self, r: dict[str, Any]) -> object:
        version = _text(r, "version")
        _guard(lambda: self.facts.set_local_version(version))
        return self.facts.versions()

    def _action(self, r: dict[str, Any]) -> Awaitable[object]:
        name = _text(r, "name")
        payload = _text(r, "payload", optional=True) or ""
        timeout = r.get("timeout", 10.0)
        if type(timeout) not in (int, float) or not 0 < timeout <= MAX_ACTION_TIMEOUT:
            raise ControlError(f'"timeout" must be a number in (0, {MAX_ACTION_TIMEOUT:g}]')

        async def run() -> object:
            try:
                return await self.actions.run(name, payload, float(timeout))
            except ValueError as exc:
                raise ControlError(str(exc)) from None

        return run()

    def _setting_set(self, r: dict[str, Any]) -> object:
        name, value = _text(r, "name"), _text(r, "value", optional=True)
        _guard(lambda: self.settings.set(name, value))
        return {"name": name, "value": self.settings.get(name)}

    def _setting_get(self, r: dict[str, Any]) -> object:
        name = _text(r, "name")
        return {"name": name, "value": self.settings.get(name)}

    def _registry_set(self, r: dict[str, Any]) -> object:
        ip, port, key = _text(r, "ip"), _port(r), _text(r, "key")
        _guard(lambda: self.settings.set_registry(ip, port, key))
        return self.settings.get_registry()

    def _steward_set(self, r: dict[str, Any]) -> object:
        ip, port = _text(r, "ip"), _port(r)
        _guard(lambda: self.settings.set_steward(ip, port))
        return self.settings.get_steward()
