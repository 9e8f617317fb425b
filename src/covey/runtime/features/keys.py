"""Cluster-wide key rotation (Serf's ``keys``): install, use, remove and list keyring keys on
every member at once.

An operation travels as a cluster-wide action (core/state/actions.py) named
:data:`KEYS_ACTION`, so it is sealed with the cluster's current keys like every frame (only
a member can start one), runs exactly once per member, and each member's outcome comes
back to the origin. Actions are not held for ordering (see core/state/actions.py): a
rotation's steps are ordered by the operator, who starts ``use`` once ``install`` has been
answered; a member that has not installed the key yet refuses ``use``. Its payload is JSON
``{"op": "install"|"use"|"remove"|"list", "key": "<Fernet key>"}``. A member answers

* ``install``: adds the key after its others (it opens frames, does not seal yet);
* ``use``: makes an installed key the one that seals (refused when not installed);
* ``remove``: drops the key (refused for the primary key);
* ``list``: its keys, primary first, as JSON ``{"keys": [...]}``.

A change is written to ``<data_dir>/keyring.json`` (mode 0600, runtime/stores/keyring_file.py)
before it is answered as done; if the write fails the change is undone and refused. An
agent without a data directory keeps the change in memory until it restarts, and says so.

Control operations (``covey keys``): ``keys_local`` (this member's keys, no cluster
round), ``keys_list``, ``keys_install``, ``keys_use``,
``keys_remove`` (``key``, optional ``timeout``). They answer the members' results, the
count of members that succeeded (``ok``) out of those asked (``total``); ``keys_list``
also the keys with how many members hold them. The control socket (mode 0700) shows the
keys themselves; ``GET /v1/keys`` only this member's fingerprints (core/crypto/keyring.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from covey.core.crypto.keyring import KeyError_, Keyring, check_key, fingerprint
from covey.runtime.control.server import ControlError
from covey.runtime.features.base import ControlHandler, Feature, HttpRoute
from covey.runtime.stores.keyring_file import keyring_path, save_keyring

if TYPE_CHECKING:
    from aiohttp import web

    from covey.runtime.config.model import AgentConfig
    from covey.runtime.features.shared import SharedRuntime
    from covey.runtime.features.shared_api import ActionsAPI

log = logging.getLogger("covey.keys")

#: The name of the cluster-wide action that carries key operations (reserved).
KEYS_ACTION = "covey.keys"
#: The operations a member applies.
OPS = ("install", "use", "remove", "list")
#: Longest wait an operation may ask for.
MAX_TIMEOUT = 300.0
#: What an answer says when there is no data directory to keep the keyring in.
MEMORY_ONLY = "in memory only: lost at restart (no data directory)"


class KeysAPI:
    """``agent.keys``: this member's keyring, and the cluster-wide operations.

    Args:
        config: the agent's configuration (where the keyring is stored).
        keyring: the core's keyring.
        actions: the shared state's actions facade (carries the operations).
    """

    def __init__(self, config: AgentConfig, keyring: Keyring, actions: ActionsAPI) -> None:
        self._keyring = keyring
        self._path = keyring_path(config)
        self._actions = actions

    @property
    def persistent(self) -> bool:
        """True when changes are written to ``<data_dir>/keyring.json``."""
        return self._path is not None

    def local(self) -> list[bytes]:
        """This member's keys, the primary (sealing) one first."""
        return self._keyring.key_list()

    def replace(self, keys: list[bytes]) -> None:
        """Replace this member's keys (a SIGHUP with a changed key file) and store them.

        Raises:
            KeyError_: a bad key, or plain-text mode.
            OSError: the keyring could not be written (the keys are left as they were).
        """
        self._change(lambda: self._keyring.replace_keys(keys))

    def apply(self, op: str, key: bytes) -> bool:
        """Apply ``op`` (install, use, remove) with ``key`` here only and store the result;
        False when it changed nothing (installed already, not installed, primary already).

        Raises:
            KeyError_: the op is refused (bad key, not installed, the primary key...).
            OSError: the keyring could not be written (nothing changed).
        """
        ring = self._keyring
        fn = {"install": ring.install, "use": ring.use, "remove": ring.remove}.get(op)
        if fn is None:
            raise KeyError_(f"unknown key operation {op!r}")
        changed: list[bool] = []
        self._change(lambda: changed.append(fn(key)))
        return changed[0]

    def _change(self, fn: Any) -> None:
        before = self._keyring.key_list()
        fn()
        after = self._keyring.key_list()
        if self._path is None or after == before:
            return
        try:
            save_keyring(self._path, after)
        except OSError:
            self._keyring.replace_keys(before)  # not stored: not applied
            raise

    def handle(self, payload: str) -> str:
        """Answer one delivered :data:`KEYS_ACTION` (an exception reports failure)."""
        try:
            request = json.loads(payload)
            op, key = request["op"], request.get("key", "")
        except (ValueError, KeyError, TypeError):
            raise KeyError_("malformed key operation") from None
        if op == "list":
            text = json.dumps({"keys": [k.decode() for k in self.local()]})
            if len(text) > 1024:
                raise KeyError_(f"too many keys to list ({len(self.local())})")
            return text
        if not isinstance(op, str) or not isinstance(key, str):
            raise KeyError_("malformed key operation")
        try:
            changed = self.apply(op, key.encode())
        except OSError as exc:
            raise KeyError_(f"keyring not written: {exc.strerror or exc}") from None
        fp = fingerprint(key.encode())
        past = {"install": "installed", "use": "in use", "remove": "removed"}[op]
        text = f"{fp} {past}" if changed else f"{fp} {past} already"
        if op == "remove" and not changed:
            text = f"{fp} was not installed"
        if changed and not self.persistent:
            text += f" ({MEMORY_ONLY})"
        log.info("key %s: %s", op, text)
        return text

    async def run(self, op: str, key: str = "", timeout: float = 10.0) -> dict[str, Any]:
        """Apply ``op`` on every live member; their results, ``ok`` of ``total``.

        ``list`` adds ``keys``: {key: {"fingerprint", "members", "primary"}} (how many
        members hold it, and how many seal with it).

        Raises:
            KeyError_: a malformed key, an unknown op, or (``remove``) the key is this
                member's primary key: refused before anything is sent.
        """
        if op not in OPS:
            raise KeyError_(f"unknown key operation {op!r}")
        payload: dict[str, str] = {"op": op}
        if op != "list":
            raw = check_key(key)
            if op == "remove" and raw == self._keyring.primary:
                raise KeyError_(f"key {fingerprint(raw)} is the primary key: use another first")
            if op == "use" and raw not in self._keyring.key_list():
                raise KeyError_(f"key {fingerprint(raw)} is not installed here: install it first")
            payload["key"] = raw.decode()
        out = await self._actions.run(KEYS_ACTION, json.dumps(payload), timeout)
        results: dict[str, Any] = out["results"]
        ok = sum(1 for r in results.values() if r["ok"])
        answer: dict[str, Any] = {
            "op": op,
            "ok": ok,
            "total": len(results) + len(out["missing"]),
            "results": results,
            "missing": out["missing"],
        }
        if op != "list":
            answer["fingerprint"] = fingerprint(payload["key"].encode())
        else:
            answer["keys"] = _tally(results)
        return answer


def _tally(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{key: {"fingerprint", "members", "primary"}} from the members' list answers."""
    keys: dict[str, dict[str, Any]] = {}
    for r in results.values():
        if not r["ok"]:
            continue
        try:
            held = json.loads(r["result"])["keys"]
        except (ValueError, KeyError, TypeError):
            continue
        for i, k in enumerate(held if isinstance(held, list) else []):
            entry = keys.setdefault(
                str(k), {"fingerprint": fingerprint(str(k).encode()), "members": 0, "primary": 0}
            )
            entry["members"] += 1
            entry["primary"] += i == 0
    return dict(sorted(keys.items(), key=lambda kv: (-kv[1]["primary"], -kv[1]["members"])))


class KeysFeature(Feature):
    """Cluster-wide key rotation (see the module docstring).

    Args:
        config: the agent's configuration.
        keyring: the core's keyring (the agent built it from runtime/stores/keyring_file.py).
        shared: the shared state's runtime (its actions carry the operations).
    """

    name = "keyring"

    def __init__(self, config: AgentConfig, keyring: Keyring, shared: SharedRuntime) -> None:
        from covey.runtime.features.shared_api import ActionsAPI

        self.api = KeysAPI(config, keyring, ActionsAPI(shared))
        self._plaintext = config.plaintext
        shared.action_fns[KEYS_ACTION] = self.api.handle

    def info(self) -> Mapping[str, object]:
        keys = self.api.local()
        return {
            "keys": [fingerprint(k) for k in keys],
            "stored": self.api.persistent,
        }

    def control_ops(self) -> Mapping[str, ControlHandler]:
        ops = {f"keys_{op}": self._op(op) for op in OPS}
        ops["keys_local"] = lambda r: {
            "keys": [k.decode() for k in self.api.local()],
            "stored": self.api.persistent,
        }
        return ops

    def _op(self, op: str) -> ControlHandler:
        def handler(request: dict[str, Any]) -> object:
            if self._plaintext:
                raise ControlError("plain-text cluster: there is no keyring to change")
            key = request.get("key", "")
            timeout = request.get("timeout", 10.0)
            if not isinstance(key, str):
                raise ControlError('"key" must be text')
            if type(timeout) not in (int, float) or not 0 < timeout <= MAX_TIMEOUT:
                raise ControlError(f'"timeout" must be a number in (0, {MAX_TIMEOUT:g}]')
            try:
                if op != "list":
                    check_key(key)
            except KeyError_ as exc:
                raise ControlError(f"key: {exc}") from None

            async def run() -> object:
                try:
                    return await self.api.run(op, key, float(timeout))
                except KeyError_ as exc:
                    raise ControlError(str(exc)) from None

            return run()

        return handler

    def http_routes(self) -> Sequence[HttpRoute]:
        from covey.runtime.http.routes import BOOL, STR, Route, arr, json_response, obj

        async def keys(request: web.Request) -> web.Response:
            # This member's keyring only: a GET must not start a cluster-wide action (an
            # unauthenticated reader would make every member answer); covey keys list does.
            return json_response(
                {
                    "fingerprints": [fingerprint(k) for k in self.api.local()],
                    "stored": self.api.persistent,
                }
            )

        return [
            Route(
                "GET",
                "/v1/keys",
                keys,
                "This member's keyring by fingerprint, the primary (sealing) key first "
                "(never the keys themselves); every member's: covey keys list.",
                obj({"fingerprints": arr(STR), "stored": BOOL}),
                tag="keys",
            )
        ]
