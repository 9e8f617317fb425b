"""Election events (frozen dataclasses) and the heartbeat-disk observation record.

The runtime acts on :class:`FenceDecision` (runs the fencing command) and shows every
event in ``covey monitor``; the simulator's chaos test checks them against invariants.
"""

from __future__ import annotations

from typing import Any

from covey.core.plugin import ExtensionEvent
from covey.core.records import record
from covey.core.types import Address, format_address


@record
class LeaderChanged(ExtensionEvent):
    """The leader this node knows changed (``leader`` None: no leader right now)."""

    at: float
    term: int
    leader: str | None
    leader_id: bytes | None

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "leader-changed",
            "term": self.term,
            "leader": self.leader,
            "leader_id": self.leader_id.hex() if self.leader_id else None,
        }


@record
class FenceDecision(ExtensionEvent):
    """The leader of ``term`` decided to fence a failed node; ``term`` is the fencing token."""

    at: float
    node: str
    node_id: bytes
    address: Address
    incarnation: int
    term: int

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "fence",
            "node": self.node,
            "id": self.node_id.hex(),
            "address": format_address(self.address),
            "incarnation": self.incarnation,
            "term": self.term,
        }


@record
class NodePartitioned(ExtensionEvent):
    """A node is silent on the network but still writes its heartbeat-disk slot: not fenced."""

    at: float
    node: str
    node_id: bytes
    term: int

    def to_json(self) -> dict[str, Any]:
        return {"event": "partitioned", "node": self.node, "id": self.node_id.hex()}


@record
class PanicEntered(ExtensionEvent):
    """This node entered panic mode: no fencing or failover decisions until recovered."""

    at: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"event": "panic", "reason": self.reason}


@record
class Recovered(ExtensionEvent):
    """This node left panic mode (operator ``covey recover``, spread by the leader)."""

    at: float
    recover_gen: int

    def to_json(self) -> dict[str, Any]:
        return {"event": "recovered", "recover_gen": self.recover_gen}


@record
class ElectionInfo(ExtensionEvent):
    """Another node sent its election view (``covey candidate``)."""

    at: float
    sender: str
    term: int
    leader: str | None
    role: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "election-info",
            "from": self.sender,
            "term": self.term,
            "leader": self.leader,
            "role": self.role,
        }


@record
class DiskSlot:
    """One node's heartbeat-disk slot as read: any change of its content means "alive".

    ``stamp`` is the writer's wall-clock timestamp; it is only compared for change, never
    against our clock, so clock skew between nodes does not matter.
    """

    node_id: bytes
    name: str
    stamp: float
    term: int
    incarnation: int
