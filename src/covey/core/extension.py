"""Extensions: protocol features layered on membership (election, shared facts, ...).

An extension owns message types (numbers >= 32), deadlines, a piece of the full-state
exchange, and events of its own. The node calls it:

* ``on_start`` / ``on_leave`` when the node starts and leaves;
* ``on_message`` for every authenticated message of its types, datagram or stream;
* ``on_member_event`` after every membership change the node applied;
* ``on_timer`` when ``next_deadline`` is due;
* ``sync_state`` / ``merge_sync_state`` in every push-pull, both ways.

Through ``self.node`` it may send (``send``), gossip (``gossip``), emit events (``emit``)
and read the member table. Like the rest of the core it reads no clock and draws no
random numbers of its own (``self.node.rng``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:
    from .events import MemberEvent
    from .node import Node
    from .types import Address

#: Lowest message type number an extension may register.
FIRST_EXTENSION_TYPE = 32


class ExtensionMessage:
    """Base of extension messages: a type number and an array form.

    Subclasses set ``TYPE``, implement ``to_array`` (the fields after the type number) and
    ``from_array`` (which must raise ``MalformedMessage`` on any deviation), and are
    registered with :func:`covey.core.messages.register_message`.
    """

    TYPE: ClassVar[int] = 0

    def to_array(self) -> list[Any]:
        """The message's fields, msgpack-ready, without the type number."""
        raise NotImplementedError

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        """Build the message from ``to_array``'s output; raise MalformedMessage if off."""
        raise NotImplementedError


class ExtensionEvent:
    """Base of events an extension emits through ``Node.pop_events``."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, with at least an ``"event"`` key naming the event."""
        raise NotImplementedError


class Extension:
    """A protocol feature plugged into a :class:`~covey.core.node.Node`.

    Attributes:
        name: unique name; keys its part of the push-pull state.
        message_types: the ExtensionMessage classes it handles.
    """

    name: ClassVar[str] = ""
    message_types: ClassVar[tuple[type[ExtensionMessage], ...]] = ()

    def __init__(self) -> None:
        self._node: Node | None = None

    @property
    def node(self) -> Node:
        """The node this extension is attached to."""
        if self._node is None:
            raise RuntimeError(f"extension {self.name!r} is not attached")
        return self._node

    def attach(self, node: Node) -> None:
        """Called once by ``Node.add_extension``."""
        self._node = node

    def on_start(self, now: float) -> None:
        """The node started."""

    def on_leave(self, now: float) -> None:
        """The node is leaving (before its leave messages go out)."""

    def on_message(self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float) -> None:
        """An authenticated message of one of ``message_types`` arrived."""

    def on_stream(
        self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float
    ) -> list[ExtensionMessage]:
        """A message arrived on a stream; return the reply messages (default: handle, none)."""
        self.on_message(msg, sender, addr, now)
        return []

    def on_member_event(self, event: MemberEvent, now: float) -> None:
        """The node applied a membership change."""

    def next_deadline(self) -> float | None:
        """When ``on_timer`` must next run, or None."""
        return None

    def on_timer(self, now: float) -> None:
        """A deadline given by ``next_deadline`` is due."""

    def sync_state(self) -> Any:
        """This extension's full state for a push-pull (msgpack-ready), or None."""
        return None

    def merge_sync_state(self, state: Any, sender: bytes, now: float) -> None:
        """Merge a peer's ``sync_state``; must tolerate any value (validate, never raise)."""
