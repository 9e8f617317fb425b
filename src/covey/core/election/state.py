"""The election's state: one object that every part of the election reads and changes.

:class:`ElectionState` holds what the parts share: the durable :class:`VoteStore` (term
and vote), the role, the leader this node follows, the lease, the vote round under way,
the election timer, the current leadership's heartbeat bookkeeping and the heartbeat-disk
observations. The parts (:mod:`~covey.core.election.voting`,
:mod:`~covey.core.election.lease`, :mod:`~covey.core.election.fence`) are given this one
object; only :mod:`~covey.core.election.roles` changes :attr:`ElectionState.role`.

It also holds the node's :class:`~covey.core.plugin.Handle` (bound when the election is
attached) and the few helpers every part uses on it: trace, announce, broadcast, the
priority tag and the random back-off.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import field

from covey.core.effects import Effect
from covey.core.election.config import ElectionConfig
from covey.core.election.events import LeaderChanged
from covey.core.election.messages import VoteRequest
from covey.core.election.quorum import alone_quorate, lowest_peer, quorum_size
from covey.core.election.size import SaveSize, SizeTracking
from covey.core.events import TraceOp, TraceRecord
from covey.core.plugin import ExtensionMessage, Handle
from covey.core.records import record
from covey.core.types import Address, MemberState

#: Tag carrying a member's election priority (integer, higher stands first; default 0).
PRIORITY_TAG = "covey.priority"


class Role(enum.Enum):
    """What this node is in the election."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


@record(frozen=False)
class VoteStore:
    """The durable part of the election: the current term and the vote given in it.

    The election holds it in memory and, after every change, hands out a
    :class:`SaveVote` effect; the runtime writes it (fsync'd) before any datagram of that
    step leaves, so a vote is never sent before it is on disk. At start the runtime
    passes what it read back.
    """

    term: int = 0
    voted_for: bytes | None = None


@record
class SaveVote(Effect):
    """Make the election's term and vote durable before this step's messages leave."""

    term: int
    voted_for: bytes | None


@record(frozen=False)
class VoteRound:
    """One vote round under way: a pre-vote (changes nobody's state) or a real vote.

    Attributes:
        pre: a pre-vote round.
        term: the term asked for.
        started: when the round began (a won real vote's lease runs from here).
        deadline: when the round fails.
        resend_at: when the request is next sent to whoever has not answered.
        request: the request sent (None until sent).
        received: the node's datagram count when the round began (a liveness hint).
        votes: who granted (ourselves included).
        replies: who answered at all.
        max_term: the highest term a voter reported.
    """

    pre: bool
    term: int
    started: float
    deadline: float
    resend_at: float
    request: VoteRequest | None = None
    received: int = 0
    votes: set[bytes] = field(default_factory=set)
    replies: set[bytes] = field(default_factory=set)
    max_term: int = 0


@record(frozen=False)
class Leadership:
    """The bookkeeping of one leadership; :func:`~covey.core.election.roles.become_leader`
    starts a fresh one.

    Attributes:
        sent: heartbeat seq -> send time (the lease's last ``lease`` seconds of them).
        acked: member -> send time of the latest heartbeat it accepted.
        stable_seq: the latest heartbeat counted towards stability.
        stable_count: heartbeats accepted by a quorum so far.
    """

    sent: dict[int, float] = field(default_factory=dict)
    acked: dict[bytes, float] = field(default_factory=dict)
    stable_seq: int = 0
    stable_count: int = 0


@record(frozen=False)
class DiskView:
    """What the heartbeat disk showed: when each node's slot last changed.

    Attributes:
        enabled: a disk is configured (some read was fed in).
        seen: node id -> (slot content, when it last changed).
        now: the time of the latest read.
        fail_since: since when reads fail (None: the latest read worked).
    """

    enabled: bool = False
    seen: dict[bytes, tuple[tuple[float, int, int], float]] = field(default_factory=dict)
    now: float = -math.inf
    fail_since: float | None = None

    def dead(self, node_id: bytes, timeout: float) -> bool:
        """True when ``node_id``'s slot has not changed for ``timeout`` (and a disk is on)."""
        entry = self.seen.get(node_id)
        return self.enabled and entry is not None and self.now - entry[1] >= timeout


@record(frozen=False, eq=False)
class ElectionState:
    """The state the parts of one node's election share (see the module docstring).

    Attributes:
        cfg: the settings.
        store: term and vote (durable through :class:`SaveVote` effects).
        role: follower, candidate or leader (changed only by ``roles``).
        leader_id: the leader this node follows (or itself as leader), None if none.
        leader_heard: last accepted heartbeat or granted vote.
        heard_from: whose heartbeat or candidacy that was.
        lease_until: the leader's lease end (-inf when not leader).
        leader_stable: leadership is stable (the leader's count, or its heartbeat's word).
        round: the vote round under way, if any.
        election_at: when the election timer fires (None: not armed).
        next_hb: when the leader's next heartbeat is due.
        quiet_until: ``reboot``: out of the election until then.
        leadership: the current leadership's heartbeat bookkeeping.
        disk: the heartbeat-disk observations.
        both_seen: two-node mode: the pair was seen together once (wait_for_all).
        announced: the leader last announced in a :class:`LeaderChanged`.
        elections: real vote rounds this node started.
        size: the tracked expected size (unused with ``expected_votes`` configured).
        started_at: when the election started (the bootstrap window runs from here).
    """

    cfg: ElectionConfig
    store: VoteStore
    role: Role = Role.FOLLOWER
    leader_id: bytes | None = None
    leader_heard: float = -math.inf
    heard_from: bytes | None = None
    lease_until: float = -math.inf
    leader_stable: bool = False
    round: VoteRound | None = None
    election_at: float | None = None
    next_hb: float | None = None
    quiet_until: float = -math.inf
    leadership: Leadership = field(default_factory=Leadership)
    disk: DiskView = field(default_factory=DiskView)
    both_seen: bool = False
    announced: bytes | None = None
    elections: int = 0
    size: SizeTracking = field(default_factory=SizeTracking)
    started_at: float = 0.0
    _handle: Handle | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- the node

    def bind(self, handle: Handle) -> None:
        """Give the state the node's handle (when the election is attached)."""
        self._handle = handle

    @property
    def handle(self) -> Handle:
        """The node's narrow view."""
        if self._handle is None:
            raise RuntimeError("the election is not attached")
        return self._handle

    # ---------------------------------------------------------------- read side

    @property
    def term(self) -> int:
        """The current term (only grows)."""
        return self.store.term

    def is_leader(self, now: float) -> bool:
        """True while this node leads with a valid lease."""
        return self.role is Role.LEADER and now < self.lease_until

    def current_leader(self, now: float) -> bytes | None:
        """The leader this node believes in right now, or None."""
        if self.is_leader(now):
            return self.handle.node_id
        if self.leader_id is not None and now < self.leader_heard + self.cfg.follower_wait:
            return self.leader_id
        return None

    @property
    def expected(self) -> int:
        """The size the quorum is a majority of: configured, or tracked."""
        ev = self.cfg.expected_votes
        return ev if ev is not None else self.size.pair[1]

    @property
    def size_pair(self) -> tuple[int, int]:
        """(size_gen, expected) as our messages carry it (generation 0 when configured)."""
        ev = self.cfg.expected_votes
        return (0, ev) if ev is not None else self.size.pair

    def quorum(self) -> int:
        """Votes (or heartbeat acceptances, self included) that make a decision now."""
        cfg = self.cfg
        if not cfg.two_node:
            return quorum_size(self.expected)
        me = self.handle.node_id
        peer = lowest_peer(me, self.handle.members.members)
        dead = peer is not None and self.disk.dead(peer, cfg.disk_timeout)
        alone = alone_quorate(me, peer, both_seen=self.both_seen, peer_dead=dead)
        return quorum_size(self.expected, two_node=True, alone=alone)

    def priority(self, tags: Mapping[str, str] | None = None) -> int:
        """A member's priority tag (ours by default); bad values count as 0."""
        raw = (tags if tags is not None else self.handle.members.local.tags).get(PRIORITY_TAG, "0")
        try:
            return max(0, min(int(raw), 1 << 31))
        except ValueError:
            return 0

    def backoff(self) -> float:
        """The random wait before standing (one rng draw), longer if a live member outranks us."""
        delay = self.cfg.backoff * self.handle.rng.random()
        mine = self.priority()
        for m in self.handle.members.live():
            if m.node_id != self.handle.node_id and self.priority(m.tags) > mine:
                return delay + self.cfg.backoff  # let the higher priority stand first
        return delay

    def name_of(self, node_id: bytes) -> str:
        """A member's name, or the start of its id when unknown."""
        m = self.handle.members.get(node_id)
        return m.name if m is not None else node_id.hex()[:8]

    # ---------------------------------------------------------------- output

    def save_vote(self) -> None:
        """Hand out the term and vote as a :class:`SaveVote` effect (saved before sending)."""
        self.handle.persist(SaveVote(self.store.term, self.store.voted_for))

    def save_size(self, effect: SaveSize | None) -> None:
        """Hand out a changed tracked size (saved before sending), if it changed."""
        if effect is not None:
            self.handle.persist(effect)

    def broadcast(self, msg: ExtensionMessage, now: float) -> None:
        """Send ``msg`` to every member but us and those that left."""
        for addr in self._peers():
            self.handle.send(addr, [msg], now=now)

    def _peers(self) -> list[Address]:
        me = self.handle.node_id
        return [
            m.address
            for m in self.handle.members.members.values()
            if m.node_id != me and m.state is not MemberState.LEFT
        ]

    def announce(self, now: float) -> None:
        """Emit :class:`LeaderChanged` if the leader we know changed since we last said."""
        leader = self.leader_id if self.role is not Role.CANDIDATE else None
        if leader == self.announced:
            return
        self.announced = leader
        name = self.name_of(leader) if leader is not None else None
        self.handle.emit(LeaderChanged(now, self.term, name, leader))
        if leader is not None and leader != self.handle.node_id:
            self.trace(TraceOp.LEADER_DELTA, now, f"leader {name}", self.term)

    def trace(self, op: TraceOp, now: float, detail: str, n: int = 0) -> None:
        """Record one trace line of this node."""
        self.handle.emit(TraceRecord(op, now, self.handle.config.name, detail, n))
