"""The member record a node keeps for every node it knows, itself included."""

from __future__ import annotations

from dataclasses import field

from covey.core.records import record
from covey.core.types import Address, BeaconState, MemberState, format_address


@record(frozen=False)
class Member:
    """Mutable per-node view of one member. Owned by the core; callers get :class:`MemberInfo`."""

    node_id: bytes
    name: str
    address: Address
    incarnation: int
    state: MemberState
    state_change: float
    tags: dict[str, str] = field(default_factory=dict)
    #: False when an alive message arrived without the (large) tags; a full sync is owed.
    tags_complete: bool = True
    beacon_state: BeaconState | None = None
    #: Whether the id sits in the node's probe order (a flag here, not a set per node:
    #: simulations keep N^2 member records, so every object per record counts).
    in_probe_order: bool = False
    #: When we last opened an authenticated datagram from it: a failed verdict from
    #: another node about a member we heard from lately is checked, not taken.
    heard_at: float = float("-inf")

    def snapshot(self) -> MemberInfo:
        """Return an immutable copy for callers."""
        return MemberInfo(
            node_id=self.node_id,
            name=self.name,
            address=self.address,
            incarnation=self.incarnation,
            state=self.state,
            state_change=self.state_change,
            tags=dict(self.tags),
        )


@record
class MemberInfo:
    """An immutable snapshot of a member as seen by one node.

    Attributes:
        node_id: the member's 16-byte UUID.
        name: its human-readable name (unique by convention, not enforced).
        address: the (host, port) it advertises for UDP and TCP.
        incarnation: its refutation counter; only grows.
        state: alive, suspect, failed or left.
        state_change: the ``now`` at which this node last saw the state change.
        tags: its key/value metadata.
    """

    node_id: bytes
    name: str
    address: Address
    incarnation: int
    state: MemberState
    state_change: float
    tags: dict[str, str]

    @property
    def id_hex(self) -> str:
        """The node id as 32 hex digits."""
        return self.node_id.hex()

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (the shape of ``covey members --json``)."""
        return {
            "name": self.name,
            "id": self.node_id.hex(),
            "address": format_address(self.address),
            "state": self.state.label,
            "incarnation": self.incarnation,
            "tags": dict(self.tags),
        }
