"""The facts extension's events, listener type and store protocol (see ``capability``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from covey.core.plugin import ExtensionEvent

Entry = tuple[int, str | None]  # (seq, value or None for deleted)


class FactStore(Protocol):
    """Where a node keeps its own facts across restarts (the runtime's SQLite file)."""

    def load(self) -> tuple[int, dict[str, Entry]]:
        """(counter, key → (seq, value or None)) as last saved."""
        ...

    def save(self, seq: int, key: str, value: str | None) -> None:
        """Record one change of our own facts."""
        ...


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class LowestVersionChanged(ExtensionEvent):
    """The cluster's lowest version changed (None: unknown for now)."""

    old: str | None
    new: str | None
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"event": "lowest_version", "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class NodeFactsDropped(ExtensionEvent):
    """Every fact of ``node`` was dropped: it left or was reaped."""

    node: str
    node_id: bytes
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"event": "facts_dropped", "node": self.node, "id": self.node_id.hex()}


FactsEvent = FactChanged | LowestVersionChanged | NodeFactsDropped
Listener = Callable[[FactsEvent], None]
