"""What the node's mixins share: the state and helpers of :class:`Node`, declared once.

:class:`~.inbound.ReceiveMixin`, :class:`~.gossip.DisseminationMixin`,
:class:`~.probe.ProbeMixin` and :class:`~.sync.SyncMixin` each use
attributes and methods that :class:`~.node.Node` (or a sibling mixin) defines.
They derive from :class:`NodeState`, which declares them for the type checker only: at
run time it is an empty class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from covey.core.config import CoreConfig
    from covey.core.crypto.keyring import Keyring
    from covey.core.effects import Datagram, StreamPurpose, StreamRequest
    from covey.core.events import TraceOp
    from covey.core.member import Member
    from covey.core.membership.awareness import Awareness
    from covey.core.membership.gossip_queue import GossipQueue
    from covey.core.membership.stats import Counters
    from covey.core.membership.table import MemberTable
    from covey.core.plugin import Capability
    from covey.core.types import Address, Rng
    from covey.core.wire.frame import FrameType
    from covey.core.wire.messages import (
        Alive,
        Beacon,
        Dead,
        Message,
        MessageTypes,
        PingReq,
        PushPull,
        Suspect,
    )


class NodeState:
    """Typing-only declarations of the node's state for its mixins."""

    if TYPE_CHECKING:
        config: CoreConfig
        keyring: Keyring
        rng: Rng
        table: MemberTable
        gossip: GossipQueue
        counters: Counters
        awareness: Awareness
        wall_offset: float
        left: bool
        joined: bool
        joins_in_flight: int
        _started: bool
        _extensions: dict[str, Capability]
        _ext_by_type: dict[int, Capability]
        message_types: MessageTypes
        _stranger_after: float
        _told_suspect: dict[bytes, float]
        _max_body: int
        _prefix: bytes
        _outbox: list[Datagram]
        _streams: list[StreamRequest]
        _next_gossip: float
        _eager_at: float | None
        _beacon_step: int
        _next_beacon: float | None
        _probe_order: list[bytes]

        @property
        def node_id(self) -> bytes: ...

        def push_pull_scale(self) -> float: ...
        def _trace(self, op: TraceOp, now: float, detail: str, n: int = 0) -> None: ...
        def _apply(
            self,
            msg: Alive | Suspect | Dead,
            now: float,
            *,
            gossip: bool = True,
            bulk: bool = False,
        ) -> None: ...
        def _about_self(self, msg: Alive | Suspect | Dead, now: float) -> bool: ...
        def _self_alive(self) -> Alive: ...
        def _on_new_member_maybe(self, node_id: bytes, now: float) -> None: ...
        def _emit(
            self, addr: Address | None, encoded: list[bytes], now: float, *, piggyback: bool = True
        ) -> None: ...
        def _seal_frame(self, ftype: FrameType, msgs: list[Message], now: float) -> bytes: ...
        def _open(
            self, data: bytes, want: FrameType, limit: int, now: float
        ) -> tuple[bytes, list[Message]] | None: ...
        def _dispatch(self, msg: Message, addr: Address, sender: bytes, now: float) -> None: ...
        def _random_members(self, k: int, exclude: bytes | None) -> list[Member]: ...
        def _on_beacon(self, b: Beacon, now: float) -> None: ...
        def _on_ack(self, seq: int, now: float) -> None: ...
        def _on_nack(self, seq: int) -> None: ...
        def _on_ping_req(self, msg: PingReq, requester: Address, now: float) -> None: ...
        def _want_sync_with(self, m: Member, now: float) -> None: ...
        def _open_stream(
            self,
            addr: Address,
            data: bytes,
            purpose: StreamPurpose,
            node_id: bytes | None,
            now: float,
        ) -> None: ...
        def _open_push_pull(
            self, addr: Address, purpose: StreamPurpose, node_id: bytes | None, now: float
        ) -> None: ...
        def _merge_state(self, pp: PushPull, sender: bytes, now: float) -> None: ...
        def _push_pull_message(self, *, reply: bool, join: bool) -> PushPull: ...
