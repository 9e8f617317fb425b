"""What the ZRE side of an agent tells its subscribers: peers entering and leaving, group
changes, and the SHOUT and WHISPER messages they send us.

These are :class:`~covey.core.plugin.ExtensionEvent` objects, so the agent's event stream
(``agent.events()``), ``covey monitor`` and the event handlers show them as they show
the core's: ``{"event": "zre-shout", "peer": ..., "name": ..., ...}``. They concern
foreign ZRE nodes only; no covey member state changes with them.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from covey.core.plugin import ExtensionEvent
from covey.core.records import record


def _text(content: tuple[bytes, ...]) -> list[str]:
    return [c.decode("utf-8", "replace") for c in content]


@record
class ZreEnter(ExtensionEvent):
    """A ZRE peer said HELLO: it is listed (``kind: zre``) from now on."""

    at: float
    peer: bytes
    name: str
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "zre-enter",
            "peer": self.peer.hex(),
            "name": self.name,
            "endpoint": self.endpoint,
            "headers": dict(self.headers),
            "groups": list(self.groups),
        }


@record
class ZreExit(ExtensionEvent):
    """A ZRE peer is gone: ``reason`` is ``left`` (its port-0 beacon), ``expired`` (silent
    too long), ``restarted`` (a new HELLO) or ``lost_messages`` (a sequence gap)."""

    at: float
    peer: bytes
    name: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "zre-exit",
            "peer": self.peer.hex(),
            "name": self.name,
            "reason": self.reason,
        }


@record
class ZreGroupChange(ExtensionEvent):
    """A ZRE peer joined (``joined`` True) or left a group."""

    at: float
    peer: bytes
    name: str
    group: str
    joined: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "zre-join" if self.joined else "zre-leave",
            "peer": self.peer.hex(),
            "name": self.name,
            "group": self.group,
        }


@record
class ZreReceived(ExtensionEvent):
    """A SHOUT to one of our groups (``group`` set) or a WHISPER to us (``group`` None).

    Attributes:
        content: the message's frames as they came.
    """

    at: float
    peer: bytes
    name: str
    group: str | None
    content: tuple[bytes, ...]

    @property
    def kind(self) -> str:
        """``shout`` or ``whisper``."""
        return "whisper" if self.group is None else "shout"

    @property
    def text(self) -> str:
        """The frames as UTF-8 text (undecodable bytes replaced), joined by newlines."""
        return "\n".join(_text(self.content))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": f"zre-{self.kind}",
            "peer": self.peer.hex(),
            "name": self.name,
            "content": _text(self.content),
        }
        if self.group is not None:
            out["group"] = self.group
        return out


ZreEvent = ZreEnter | ZreExit | ZreGroupChange | ZreReceived

__all__ = ["ZreEnter", "ZreEvent", "ZreExit", "ZreGroupChange", "ZreReceived"]
