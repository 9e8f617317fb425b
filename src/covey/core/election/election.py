"""Leader election with terms, quorum and leases: at most one leader, never two.

Theory of operation. Every node is a *follower*; the *leader* heartbeats every member
each ``heartbeat_interval`` and every member acknowledges (the two heartbeats of seed
001). A follower that has heard no leader for ``follower_wait`` waits a random back-off
(longer when a live member has a higher ``covey.priority`` tag; ``covey.eligible=no``
never stands) and becomes a *candidate*:

1. *Pre-vote* for term+1, which changes nobody's state, so a node cut off from the
   cluster does not inflate terms and unseat a healthy leader when it comes back.
2. With a quorum of pre-votes, the real vote: the term grows, the candidate votes for
   itself and asks everyone. A node votes at most once per term (the vote is kept in a
   :class:`VoteStore`, which the runtime writes to disk) and only for a term at least its
   own. ``quorum = expected_votes // 2 + 1``; ``expected_votes`` is configured explicitly
   and must match on every node (a mismatch is invalid shared configuration: panic).
3. Elected, the leader holds a *lease*: ``lease_until = sent + lease`` for the latest
   vote round or heartbeat that a quorum accepted, on its monotonic clock. When the
   lease runs out it steps down by itself.

Safety (docs/protocol.md, "Election"): a member that accepted a heartbeat or granted a
vote at time *r* refuses every vote until *r* + ``follower_wait``; a node refuses votes
for ``follower_wait`` after it starts. Since ``lease < follower_wait``, any quorum that
elects a new leader shares one member with the quorum behind the old lease, and that
member grants its vote only after the old lease ended. Two leaders with valid leases
never coexist, whatever the terms, losses, pauses or restarts.

Fencing, the heartbeat disk and panic mode live in :mod:`covey.core.election.fence`;
candidacy and voting in :mod:`covey.core.election.voting`; heartbeats and the lease in
:mod:`covey.core.election.lease`. Every public name stays importable from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from covey.core.config import ConfigError
from covey.core.election.events import LeaderChanged
from covey.core.election.fence import FenceMixin
from covey.core.election.lease import HEART_TRACE_EVERY as HEART_TRACE_EVERY
from covey.core.election.lease import LeaseMixin
from covey.core.election.messages import (
    ELECTION_MESSAGES,
    Heartbeat,
    HeartbeatAck,
    Info,
    Recover,
    VoteReply,
    VoteRequest,
)
from covey.core.election.voting import ELIGIBLE_TAG as ELIGIBLE_TAG
from covey.core.election.voting import PRIORITY_TAG as PRIORITY_TAG
from covey.core.election.voting import Role as Role
from covey.core.election.voting import VoteStore as VoteStore
from covey.core.election.voting import VotingMixin
from covey.core.election.voting import _Round as _Round
from covey.core.events import MemberEvent, TraceOp, TraceRecord
from covey.core.plugin import Extension, ExtensionMessage
from covey.core.types import Address, MemberState


@dataclass(frozen=True, slots=True)
class ElectionConfig:
    """Election settings; timings in seconds of the monotonic clock.

    Attributes:
        expected_votes: cluster size the quorum is computed from (same on every node).
        two_node: Corosync-like two-node mode (``expected_votes`` must be 2): after both
            nodes were seen together once (wait_for_all), the node with the lower id is
            quorate alone, and so is the other one when the heartbeat disk shows its peer
            dead. Without the disk, only the tie-breaker can take over.
        heartbeat_interval: leader heartbeat period.
        lease: how long a quorum's acceptance keeps the leader leader.
        follower_wait: silence after which a follower stands; must exceed ``lease``.
        backoff: upper bound of the random wait before standing.
        vote_timeout: how long a candidate waits for a vote round.
        stable_after: heartbeats accepted by a quorum before leadership counts as stable.
        reboot_delay: upper bound of the random pause of ``reboot``.
        disk_timeout: a heartbeat-disk slot unchanged this long is stale.
        silent_rounds: unanswered vote rounds, while a quorum looks alive, before panic.
    """

    expected_votes: int
    two_node: bool = False
    heartbeat_interval: float = 0.2
    lease: float = 0.9
    follower_wait: float = 1.2
    backoff: float = 0.3
    vote_timeout: float = 0.3
    stable_after: int = 5
    reboot_delay: float = 2.0
    disk_timeout: float = 3.0
    silent_rounds: int = 20

    def __post_init__(self) -> None:
        if type(self.expected_votes) is not int or not 1 <= self.expected_votes <= 10_000:
            raise ConfigError("expected_votes: must be an integer in 1..10000")
        if self.two_node and self.expected_votes != 2:
            raise ConfigError("two_node: needs expected_votes = 2")
        for name in ("heartbeat_interval", "lease", "follower_wait", "backoff", "vote_timeout"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{name}: must be a positive number")
        if self.lease >= self.follower_wait:
            raise ConfigError("lease: must be shorter than follower_wait (safety)")
        if self.heartbeat_interval * 2 > self.lease:
            raise ConfigError("heartbeat_interval: must be at most half the lease")
        if self.stable_after < 1 or self.silent_rounds < 1:
            raise ConfigError("stable_after: must be at least 1")

    @classmethod
    def scaled(cls, expected_votes: int, heartbeat: float, **kw: object) -> ElectionConfig:
        """Timings derived from one heartbeat interval (the defaults are ``heartbeat=0.2``)."""
        return cls(
            expected_votes,
            heartbeat_interval=heartbeat,
            lease=4.5 * heartbeat,
            follower_wait=6.0 * heartbeat,
            backoff=1.5 * heartbeat,
            vote_timeout=1.5 * heartbeat,
            disk_timeout=15.0 * heartbeat,
            reboot_delay=10.0 * heartbeat,
            **kw,  # type: ignore[arg-type]
        )


class Election(VotingMixin, LeaseMixin, FenceMixin, Extension):
    """The election extension of one node (see the module docstring)."""

    name = "election"
    message_types = ELECTION_MESSAGES

    def __init__(self, config: ElectionConfig, store: VoteStore | None = None) -> None:
        super().__init__()
        self.cfg = config
        self.store = store if store is not None else VoteStore()
        self.role = Role.FOLLOWER
        self.leader_id: bytes | None = None
        self.leader_heard = -math.inf  # last accepted heartbeat or granted vote
        self.heard_from: bytes | None = None  # whose heartbeat or candidacy that was
        self.lease_until = -math.inf
        self.stable_count = 0
        self.leader_stable = False
        self._round: _Round | None = None
        self._election_at: float | None = None
        self._next_hb: float | None = None
        self._hb_seq = 0
        self._hb_sent: dict[int, float] = {}
        self._acked: dict[bytes, float] = {}  # member -> send time of its latest ack
        self._stable_seq = 0
        self.member_acks: dict[bytes, float] = {}  # leader: member -> last ack (seed 003)
        self._quiet_until = -math.inf
        self._both_seen = False
        self._announced: bytes | None = None
        self.elections = 0
        self._init_fence()

    # --------------------------------------------------------------- read side

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

    def role_now(self, now: float) -> str:
        """``leader`` (with a valid lease), ``candidate`` or ``follower``."""
        if self.role is Role.LEADER:
            return "leader" if self.is_leader(now) else "follower"
        return str(self.role.value)

    def quorum(self) -> int:
        """Votes (or heartbeat acceptances, self included) that make a majority."""
        if self.cfg.two_node and self._alone_quorate():
            return 1
        return self.cfg.expected_votes // 2 + 1

    def names(self, now: float) -> dict[str, object]:
        """Seed 003's GetNames: cluster, leader, stable, node, term (plus mode and role)."""
        leader = self.current_leader(now)
        return {
            "cluster": self.handle.config.cluster,
            "leader": self._name_of(leader) if leader is not None else None,
            "stable": leader is not None and self.leader_stable,
            "node": self.handle.config.name,
            "term": self.term,
            "role": self.role_now(now),
            "mode": "panic" if self.panic_reason is not None else "normal",
            "panic_reason": self.panic_reason,
            "expected_votes": self.cfg.expected_votes,
            "quorum": self.quorum(),
            "partitioned": sorted(self._name_of(n) for n in self.partitioned),
        }

    # --------------------------------------------------------------- lifecycle

    def on_start(self, now: float) -> None:
        # A (re)started node may have accepted a heartbeat just before it died: it refuses
        # votes for follower_wait, which keeps the lease argument true without a disk.
        self.leader_heard = now
        self.heard_from = None
        self._election_at = now + self.cfg.follower_wait + self._backoff()

    def on_leave(self, now: float) -> None:
        self._step_down(now, "leave")
        self._election_at = None

    def _peers(self) -> list[Address]:
        me = self.handle.node_id
        return [
            m.address
            for m in self.handle.members.members.values()
            if m.node_id != me and m.state is not MemberState.LEFT
        ]

    def _broadcast(self, msg: ExtensionMessage, now: float) -> None:
        for addr in self._peers():
            self.handle.send(addr, [msg], now=now)

    # --------------------------------------------------------------- timers

    def next_deadline(self) -> float | None:
        times = [self._election_at]
        if self.role is Role.LEADER:
            times += [self._next_hb, self.lease_until]
        if self._round is not None:
            times += [self._round.deadline, self._round.resend_at]
        return min((t for t in times if t is not None), default=None)

    def on_timer(self, now: float) -> None:
        if self.role is Role.LEADER:
            if now >= self.lease_until:
                self._step_down(now, "lease expired")
                # Our followers still back us (we are whom they heard last), so standing
                # again at once is safe and, under loss, wins back a lapsed lease before
                # their follower_wait runs out.
                self._election_at = now + self._backoff()
            elif self._next_hb is not None and now >= self._next_hb:
                self._send_heartbeat(now)
        rnd = self._round
        if rnd is not None and now >= rnd.deadline:
            self._round_failed(rnd, now)
        elif rnd is not None and now >= rnd.resend_at:
            self._resend_round(rnd, now)
        if self._election_at is not None and now >= self._election_at:
            self._maybe_stand(now)

    # --------------------------------------------------------------- messages

    def on_message(self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float) -> None:
        match msg:
            case VoteRequest():
                if now >= self._quiet_until:
                    self._on_vote_request(msg, sender, addr, now)
            case VoteReply():
                self._on_vote_reply(msg, sender, now)
            case Heartbeat():
                self._on_heartbeat(msg, sender, addr, now)
            case HeartbeatAck():
                self._on_ack(msg, sender, now)
            case Recover():
                self._on_recover(msg, sender, now)
            case Info():
                self._on_info(msg, sender, now)

    def on_member_event(self, event: MemberEvent, now: float) -> None:
        self._fence_member_event(event, now)
        if self.cfg.two_node and not self._both_seen and self.handle.members.live_count >= 2:
            self._both_seen = True

    # --------------------------------------------------------------- operator commands

    def reboot(self, now: float) -> float:
        """Seed 003's CmdReboot: leave the election, come back after a random delay.

        Returns the time participation resumes.
        """
        self._step_down(now, "reboot")
        self.leader_id = None
        self._quiet_until = now + self.cfg.reboot_delay * self.handle.rng.random()
        self.leader_heard = self._quiet_until  # then refuse votes one more follower_wait
        self.heard_from = None
        self._election_at = self._quiet_until + self.cfg.follower_wait + self._backoff()
        self._trace(TraceOp.REBOOT, now, "election reboot", self.term)
        self._announce(now)
        return self._quiet_until

    def send_info(self, addr: Address, now: float) -> None:
        """Seed 003's CmdCandidate: send our election view to the node at ``addr``."""
        leader = self.current_leader(now) or b""
        info = Info(self.term, leader, self.role.value, self.cfg.expected_votes, self.priority())
        self.handle.send(addr, [info], now=now)

    # --------------------------------------------------------------- helpers

    def _alone_quorate(self) -> bool:
        if not self._both_seen:
            return False  # wait_for_all: never quorate alone before both met once
        peers = [
            m for m in self.handle.members.members.values() if m.node_id != self.handle.node_id
        ]
        if not peers:
            return False
        peer = min(peers, key=lambda m: m.node_id)
        if self.handle.node_id < peer.node_id:
            return True  # the tie-breaker
        return self._dead_on_disk(peer.node_id)

    def _announce(self, now: float) -> None:
        leader = self.leader_id if self.role is not Role.CANDIDATE else None
        if leader == self._announced:
            return
        self._announced = leader
        name = self._name_of(leader) if leader is not None else None
        self.handle.emit(LeaderChanged(now, self.term, name, leader))
        if leader is not None and leader != self.handle.node_id:
            self._trace(TraceOp.LEADER_DELTA, now, f"leader {name}", self.term)

    def _name_of(self, node_id: bytes) -> str:
        m = self.handle.members.get(node_id)
        return m.name if m is not None else node_id.hex()[:8]

    def _trace(self, op: TraceOp, now: float, detail: str, n: int = 0) -> None:
        self.handle.emit(TraceRecord(op, now, self.handle.config.name, detail, n))
