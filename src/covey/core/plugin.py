"""The plug-in contract: what a capability (election, facts, deliveries...) may see and do.

A capability never gets the :class:`~covey.core.membership.node.Node`. It gets a
:class:`Handle`, a narrow :class:`typing.Protocol` that the node implements:

* who we are (``node_id``, ``name``, ``cluster``, ``config``) and our ``rng``;
* a read-only view of the members (:class:`MemberDirectory` of :class:`MemberView`);
* what it may do: ``send`` a datagram, ``gossip`` news, ``open_stream`` for a TCP
  exchange, ``emit`` an event, ``persist`` a durable :class:`~covey.core.effects.Effect`;
* the ``payload_limit`` of one datagram and the node's ``datagrams_received`` count.

The node calls the capability (see :class:`Capability`): ``on_start`` / ``on_leave``;
``on_message`` / ``on_stream`` for every authenticated message of the types it declared
(registered per node: two nodes in one process may run different capabilities);
``on_member_event`` at the moment each membership change is applied, whatever caused it
(a datagram, a timer, a local ``set_tags``); ``on_timer`` when ``next_deadline`` is due;
``sync_state`` / ``merge_sync_state`` in every push-pull, both ways. Like the rest of the
core it reads no clock and draws no random numbers of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

if TYPE_CHECKING:
    from covey.core.config import CoreConfig
    from covey.core.effects import Effect
    from covey.core.events import Event, MemberEvent
    from covey.core.member import MemberInfo
    from covey.core.types import Address, BeaconState, MemberState, Rng

#: Lowest message type number an extension may register.
FIRST_EXTENSION_TYPE = 32


class ExtensionMessage:
    """Base of extension messages: a type number and an array form.

    Subclasses set ``TYPE``, implement ``to_array`` (the fields after the type number) and
    ``from_array`` (which must raise ``MalformedMessage`` on any deviation), and are
    registered with :func:`covey.core.wire.messages.register_message`.
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


class MemberView(Protocol):
    """What a capability may read of one member (the node's record, never to be changed)."""

    @property
    def node_id(self) -> bytes: ...
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> Address: ...
    @property
    def incarnation(self) -> int: ...
    @property
    def state(self) -> MemberState: ...
    @property
    def state_change(self) -> float: ...
    @property
    def tags(self) -> Mapping[str, str]: ...
    @property
    def beacon_state(self) -> BeaconState | None: ...
    def snapshot(self) -> MemberInfo:
        """A frozen copy of the record."""
        ...


class MemberDirectory(Protocol):
    """A read-only view of the node's member table, this node included."""

    @property
    def local(self) -> MemberView: ...
    @property
    def members(self) -> Mapping[bytes, MemberView]: ...
    @property
    def live_count(self) -> int: ...
    def get(self, node_id: bytes) -> MemberView | None: ...
    def live(self) -> Iterator[MemberView]: ...


class Handle(Protocol):
    """The narrow view of its node that a capability is given (see the module docstring)."""

    @property
    def node_id(self) -> bytes: ...
    @property
    def name(self) -> str: ...
    @property
    def cluster(self) -> str: ...
    @property
    def config(self) -> CoreConfig: ...
    @property
    def rng(self) -> Rng: ...
    @property
    def members(self) -> MemberDirectory: ...
    @property
    def payload_limit(self) -> int:
        """Largest message body one datagram carries after sealing (octets)."""
        ...

    @property
    def health(self) -> int:
        """The node's Lifeguard health score: 0 is healthy, higher means its probes fail."""
        ...

    @property
    def datagrams_received(self) -> int:
        """Authenticated-or-not datagrams the node has received so far (a liveness hint)."""
        ...

    def send(self, addr: Address | None, msgs: list[Any], *, now: float) -> None:
        """Send ``msgs`` in one datagram to ``addr`` (None: the discovery group)."""
        ...

    def gossip(
        self, key: bytes, msg: ExtensionMessage, *, now: float, direct: bool = False
    ) -> None:
        """Spread ``msg`` by gossip; a later message with the same ``key`` replaces it.

        With ``direct`` (news that originates here) a small cluster also gets it at once.
        """
        ...

    def open_stream(self, addr: Address, msgs: list[ExtensionMessage], *, now: float) -> None:
        """Send ``msgs`` over TCP; the reply's messages come back through ``on_message``."""
        ...

    def emit(self, event: Event) -> None:
        """Hand an event to the node's caller."""
        ...

    def persist(self, effect: Effect) -> None:
        """Ask for ``effect`` to be durable before anything of this step leaves the node."""
        ...


class Capability:
    """A protocol capability plugged into a node through a :class:`Handle`.

    Attributes:
        name: unique per node; keys its part of the push-pull state.
        message_types: the ExtensionMessage classes it handles (registered per node).
    """

    name: ClassVar[str] = ""
    message_types: ClassVar[tuple[type[ExtensionMessage], ...]] = ()

    def __init__(self) -> None:
        self._handle: Handle | None = None

    @property
    def handle(self) -> Handle:
        """The node's narrow view given to this capability."""
        if self._handle is None:
            raise RuntimeError(f"capability {self.name!r} is not attached")
        return self._handle

    def attach(self, handle: Handle) -> None:
        """Called once by the node when the capability is added."""
        self._handle = handle

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
        """The node applied a membership change (called at the moment it happens)."""

    def next_deadline(self) -> float | None:
        """When ``on_timer`` must next run, or None."""
        return None

    def next_soft_deadline(self) -> float | None:
        """When ``on_timer`` should next run for a duty that may be up to a probe interval
        late (a periodic sweep): the node runs it on a wake-up another duty needs, so an
        idle node wakes less often. None (the default): no such duty."""
        return None

    def on_timer(self, now: float) -> None:
        """A deadline given by ``next_deadline`` or ``next_soft_deadline`` is due."""

    def sync_state(self) -> Any:
        """This extension's full state for a push-pull (msgpack-ready), or None."""
        return None

    def merge_sync_state(self, state: Any, sender: bytes, now: float) -> None:
        """Merge a peer's ``sync_state``; must tolerate any value (validate, never raise)."""


#: Transitional name of :class:`Capability`.
Extension = Capability
