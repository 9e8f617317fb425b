"""Cluster-wide settings: set on any node, read on any node (seed 003's registry/steward).

Theory of operation. A setting is a last-writer-wins register. Each write carries a
Lamport time and the writer's node id: ``stamp = (lamport, writer)``. Every node keeps, per
name, the write with the highest stamp, so concurrent writes on different nodes end with
the same value everywhere whatever order the messages arrive in (the node id breaks ties
between equal Lamport times). A node's Lamport clock moves past every stamp it sees, so a
write made after seeing another one always wins over it.

Writes spread by gossip (``SettingUpdate``, keyed by name) and every push-pull carries
the whole table (settings are few and small), which repairs what gossip lost. Deleting a
setting writes a tombstone (value None) that wins like any other write.

Well-known settings: ``registry`` (``{"ip", "port", "key"}``) and ``steward``
(``{"ip", "port"}``), stored as JSON text; see :func:`encode_endpoint`.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

from covey.core.plugin import Extension, ExtensionEvent, ExtensionMessage
from covey.core.records import record
from covey.core.state.messages import MAX_COUNTER, LimitError, SettingUpdate, check_key, check_value
from covey.core.wire.messages import MalformedMessage

if TYPE_CHECKING:
    from covey.core.types import Address

#: Most settings a cluster holds.
MAX_SETTINGS = 256


@record
class SettingChanged(ExtensionEvent):
    """The winning value of setting ``name`` changed (``value`` None: deleted)."""

    name: str
    value: str | None
    lamport: int
    writer: bytes
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "setting",
            "name": self.name,
            "value": self.value,
            "lamport": self.lamport,
            "writer": self.writer.hex(),
        }


class ClusterSettings(Extension):
    """Last-writer-wins cluster settings ordered by Lamport time, node id as tie-break."""

    name = "settings"
    message_types = (SettingUpdate,)

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, SettingUpdate] = {}
        self.clock = 0

    def set(self, name: str, value: str | None, now: float) -> SettingUpdate:
        """Write setting ``name`` (None deletes it); returns the write.

        Raises:
            LimitError: bad name or value, or too many settings.
        """
        check_key(name, "name")
        if value is not None:
            check_value(value)
        if name not in self.values and len(self.values) >= MAX_SETTINGS:
            raise LimitError(f"name: {MAX_SETTINGS} settings exist already")
        self.clock += 1
        upd = SettingUpdate(name, value, self.clock, self.handle.node_id)
        self._merge(upd, now)
        return upd

    def get(self, name: str) -> str | None:
        """The current value of setting ``name`` (None if unset or deleted)."""
        upd = self.values.get(name)
        return None if upd is None else upd.value

    def items(self) -> dict[str, str]:
        """Every setting that has a value."""
        return {n: u.value for n, u in sorted(self.values.items()) if u.value is not None}

    def _merge(self, upd: SettingUpdate, now: float) -> bool:
        self.clock = max(self.clock, upd.lamport)
        old = self.values.get(upd.name)
        if old is not None and old.stamp >= upd.stamp:
            return False
        if old is None and len(self.values) >= MAX_SETTINGS:
            return False
        self.values[upd.name] = upd
        self.handle.gossip(b"s" + upd.name.encode(), upd, now=now)
        self.handle.emit(SettingChanged(upd.name, upd.value, upd.lamport, upd.writer, now))
        return True

    def on_message(self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float) -> None:
        if isinstance(msg, SettingUpdate):
            self._merge(msg, now)

    def sync_state(self) -> Any:
        return [u.to_array() for u in self.values.values()] or None

    def merge_sync_state(self, state: Any, sender: bytes, now: float) -> None:
        if not isinstance(state, list) or len(state) > MAX_SETTINGS:
            return
        for arr in state:
            try:
                upd = SettingUpdate.from_array(arr)
            except MalformedMessage:
                continue
            if upd.lamport < MAX_COUNTER:
                self._merge(upd, now)


def encode_endpoint(ip: str, port: int, key: str | None = None) -> str:
    """The JSON text of a registry (with ``key``) or steward (without) setting.

    Raises:
        ValueError: ``ip`` is not an IP address or ``port`` not in 1..65535.
    """
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"ip: {ip!r} is not an IP address") from None
    if type(port) is not int or not 1 <= port <= 65535:
        raise ValueError(f"port: {port!r} must be 1..65535")
    obj: dict[str, Any] = {"ip": ip, "port": port}
    if key is not None:
        if not isinstance(key, str):
            raise ValueError("key: must be text")
        obj["key"] = key
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def decode_endpoint(text: str | None) -> dict[str, Any] | None:
    """The dict of a registry/steward setting, or None if unset or not such JSON."""
    if text is None:
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None
