"""What the election mixins share: the state and helpers of :class:`Election`, declared once.

:class:`~covey.core.election.voting.VotingMixin`, :class:`~covey.core.election.lease.LeaseMixin`
and :class:`~covey.core.election.fence.FenceMixin` each use attributes and methods that
:class:`~covey.core.election.election.Election` (or a sibling mixin) defines. They derive from
:class:`ElectionState`, which declares them for the type checker only: at run time it is
an empty class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from covey.core.election.election import ElectionConfig
    from covey.core.election.voting import Role, VoteStore, _Round
    from covey.core.events import TraceOp
    from covey.core.plugin import ExtensionMessage, Handle


class ElectionState:
    """Typing-only declarations of the election's state for its mixins."""

    if TYPE_CHECKING:
        cfg: ElectionConfig
        store: VoteStore
        role: Role
        leader_id: bytes | None
        leader_heard: float
        heard_from: bytes | None
        lease_until: float
        stable_count: int
        leader_stable: bool
        elections: int
        member_acks: dict[bytes, float]
        panic_reason: str | None
        panic_gen: int
        recover_gen: int
        _round: _Round | None
        _election_at: float | None
        _next_hb: float | None
        _hb_seq: int
        _hb_sent: dict[int, float]
        _acked: dict[bytes, float]
        _stable_seq: int
        _quiet_until: float

        @property
        def handle(self) -> Handle: ...

        @property
        def term(self) -> int: ...

        def is_leader(self, now: float) -> bool: ...
        def current_leader(self, now: float) -> bytes | None: ...
        def quorum(self) -> int: ...
        def _broadcast(self, msg: ExtensionMessage, now: float) -> None: ...
        def _announce(self, now: float) -> None: ...
        def _name_of(self, node_id: bytes) -> str: ...
        def _trace(self, op: TraceOp, now: float, detail: str, n: int = 0) -> None: ...
        def _adopt_term(self, term: int, now: float) -> None: ...
        def _send_heartbeat(self, now: float) -> None: ...
        def _on_leadership(self, now: float) -> None: ...
        def _note_silence(self, rnd: _Round, now: float) -> None: ...
        def _config_agrees(self, expected: int, sender: bytes, now: float) -> bool: ...
        def _panic(self, now: float, reason: str) -> None: ...
        def _follow_panic(self, panic: str, gen: int, now: float) -> None: ...
