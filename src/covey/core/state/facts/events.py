"""The facts capability's events, listener type and durable effect (see ``capability``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from covey.core.effects import Effect
from covey.core.plugin import ExtensionEvent
from covey.core.records import record

Entry = tuple[int, str | None]  # (seq, value or None for deleted)
#: What a node's store held of its own facts at start: (counter, key → entry).
Restored = tuple[int, dict[str, Entry]]


@record
class SaveFact(Effect):
    """Make one change of our own facts durable: ``key`` is ``value`` (None: deleted) at
    ``seq``, which is also the node's fact counter from now on."""

    seq: int
    key: str
    value: str | None


@record
class FactChanged(ExtensionEvent):
    """A fact of ``node`` was set (``value``) or deleted (``value`` None)."""

    node: str
    node_id: bytes
    key: str
    value: str | None
    seq: int
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "fact",
            "node": self.node,
            "id": self.node_id.hex(),
            "key": self.key,
            "value": self.value,
            "seq": self.seq,
        }


@record
class LowestVersionChanged(ExtensionEvent):
    """The cluster's lowest version changed (None: unknown for now)."""

    old: str | None
    new: str | None
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"event": "lowest_version", "old": self.old, "new": self.new}


@record
class NodeFactsDropped(ExtensionEvent):
    """Every fact of ``node`` was dropped: it left or was reaped."""

    node: str
    node_id: bytes
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"event": "facts_dropped", "node": self.node, "id": self.node_id.hex()}


FactsEvent = FactChanged | LowestVersionChanged | NodeFactsDropped
Listener = Callable[[FactsEvent], None]
