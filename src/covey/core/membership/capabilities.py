"""The capabilities plugged into one node, and the node's calls into them.

A :class:`~covey.core.plugin.Capability` is registered under a unique name with the
extension message types it handles (registered per node, in the node's
:class:`~covey.core.wire.messages.MessageTypes`). The registry is the node's dispatch
table for those types, and it fans every node-wide happening out to the capabilities in
the order they were added: membership events, start, leave, timers, and their shares of
the push-pull state.
"""

from __future__ import annotations

from typing import Any

from covey.core.events import MemberEvent
from covey.core.plugin import Capability, Handle
from covey.core.wire.messages import MessageTypes


class Capabilities:
    """One node's capabilities, by name and by the message types they handle.

    Args:
        message_types: the node's message types, extended by each capability's own.
    """

    def __init__(self, message_types: MessageTypes) -> None:
        self._types = message_types
        self._by_name: dict[str, Capability] = {}
        self._by_type: dict[int, Capability] = {}

    def add(self, capability: Capability, handle: Handle) -> None:
        """Register ``capability`` and its message types, and attach it to ``handle``."""
        if not capability.name or capability.name in self._by_name:
            raise ValueError(f"extension name {capability.name!r} is empty or taken")
        for cls in capability.message_types:
            if cls.TYPE in self._by_type:
                raise ValueError(f"message type {cls.TYPE} is handled twice")
            self._types.add(cls)
            self._by_type[cls.TYPE] = capability
        self._by_name[capability.name] = capability
        capability.attach(handle)

    def get(self, name: str) -> Capability | None:
        """The capability registered under ``name``."""
        return self._by_name.get(name)

    def handler(self, message_type: int) -> Capability | None:
        """The capability that handles extension messages of ``message_type``."""
        return self._by_type.get(message_type)

    # ---------------------------------------------------------------- fan-out

    def on_member_event(self, event: MemberEvent) -> None:
        """Tell every capability about a membership change, at the moment it happens."""
        for capability in self._by_name.values():
            capability.on_member_event(event, event.at)

    def on_start(self, now: float) -> None:
        """The node started."""
        for capability in self._by_name.values():
            capability.on_start(now)

    def on_leave(self, now: float) -> None:
        """The node is leaving (its leave messages are not out yet)."""
        for capability in self._by_name.values():
            capability.on_leave(now)

    def deadlines(self) -> list[float | None]:
        """Each capability's next deadline."""
        return [capability.next_deadline() for capability in self._by_name.values()]

    def soft_deadlines(self) -> list[float | None]:
        """Each capability's next soft deadline (see ``Extension.next_soft_deadline``)."""
        return [capability.next_soft_deadline() for capability in self._by_name.values()]

    def on_timer(self, now: float) -> None:
        """Run the timer of every capability whose deadline (hard or soft) is due."""
        for capability in self._by_name.values():
            d = capability.next_deadline()
            s = capability.next_soft_deadline()
            if (d is not None and d <= now) or (s is not None and s <= now):
                capability.on_timer(now)

    # ----------------------------------------------------------- push-pull state

    def sync_state(self) -> dict[str, Any] | None:
        """Every capability's share of a push-pull, by name (None: no capability has one)."""
        out = {}
        for name, capability in self._by_name.items():
            state = capability.sync_state()
            if state is not None:
                out[name] = state
        return out or None

    def merge_sync_state(self, states: dict[str, Any], sender: bytes, now: float) -> None:
        """Hand each known capability its share of a peer's push-pull state."""
        for name, state in states.items():
            capability = self._by_name.get(name)
            if capability is not None:
                capability.merge_sync_state(state, sender, now)
