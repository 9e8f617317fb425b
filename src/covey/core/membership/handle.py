"""The node's side of the plug-in contract: the :class:`~covey.core.plugin.Handle` it gives
every capability.

A capability reads the member table through :class:`MemberTable`'s read-only surface and
acts through the node's public methods; it never sees the node's private state, so the
node's internals can change without touching any capability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from covey.core.plugin import ExtensionMessage

if TYPE_CHECKING:
    from covey.core.config import CoreConfig
    from covey.core.effects import Effect
    from covey.core.events import Event
    from covey.core.membership.node import Node
    from covey.core.plugin import MemberDirectory
    from covey.core.types import Address, Rng


class NodeHandle:
    """A :class:`~covey.core.plugin.Handle` onto one node (one per node, shared by its
    capabilities: it holds no state of its own)."""

    __slots__ = ("_node",)

    def __init__(self, node: Node) -> None:
        self._node = node

    @property
    def node_id(self) -> bytes:
        return self._node.config.node_id

    @property
    def name(self) -> str:
        return self._node.config.name

    @property
    def cluster(self) -> str:
        return self._node.config.cluster

    @property
    def config(self) -> CoreConfig:
        return self._node.config

    @property
    def rng(self) -> Rng:
        return self._node.rng

    @property
    def members(self) -> MemberDirectory:
        return self._node.table

    @property
    def payload_limit(self) -> int:
        return self._node.payload_limit

    @property
    def health(self) -> int:
        return self._node.awareness.score

    @property
    def datagrams_received(self) -> int:
        return self._node.counters.datagrams_received

    def send(self, addr: Address | None, msgs: list[Any], *, now: float) -> None:
        self._node.send(addr, msgs, now=now)

    def gossip(
        self, key: bytes, msg: ExtensionMessage, *, now: float, direct: bool = False
    ) -> None:
        self._node.gossip_message(key, msg, now=now, direct=direct)

    def open_stream(self, addr: Address, msgs: list[ExtensionMessage], *, now: float) -> None:
        self._node.open_stream(addr, list(msgs), now=now)

    def emit(self, event: Event) -> None:
        self._node.emit(event)

    def persist(self, effect: Effect) -> None:
        self._node.persist(effect)
