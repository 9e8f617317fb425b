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
   own. ``quorum = expected // 2 + 1``. ``expected`` is either configured
   (``expected_votes``, the same on every node: a mismatch is invalid shared
   configuration, panic) or, by default, *tracked*: the largest membership seen alive,
   carried in every vote and heartbeat and only ratcheted up across the cluster, lowered
   by ``covey expect`` or a graceful leave (:mod:`covey.core.election.size`); a tracked
   node collects peers for ``bootstrap`` seconds after it starts before it stands.
3. Elected, the leader holds a *lease*: ``lease_until = sent + lease`` for the latest
   vote round or heartbeat that a quorum accepted, on its monotonic clock. When the
   lease runs out it steps down by itself.

Safety (docs/protocol.md, "Election"): a member that accepted a heartbeat or granted a
vote at time *r* refuses every vote until *r* + ``follower_wait``; a node refuses votes
for ``follower_wait`` after it starts. Since ``lease < follower_wait``, any quorum that
elects a new leader shares one member with the quorum behind the old lease, and that
member grants its vote only after the old lease ended. Two leaders with valid leases
never coexist, whatever the terms, losses, pauses or restarts.

Structure. :class:`Election` is the capability the node drives, a facade over one
:class:`~covey.core.election.state.ElectionState` (term and vote, role, leader, lease,
vote round, timers) and three parts that share it, each called from here:
:class:`~covey.core.election.voting.Voting` (standing, vote rounds, answering
candidates), :class:`~covey.core.election.lease.Heartbeats` (heartbeats, acks, the lease)
and :class:`~covey.core.election.fence.Fencing` (fencing, the heartbeat disk, panic
mode). The role changes only in :mod:`covey.core.election.roles`; the quorum rules
(majority, two-node mode with wait_for_all and the tie-breaker, the lease's quorum-th
acceptance) are pure functions in :mod:`covey.core.election.quorum`; the settings are
:class:`ElectionConfig` (:mod:`covey.core.election.config`). Every public name stays
importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping

from covey.core.election.config import ElectionConfig as ElectionConfig
from covey.core.election.events import DiskSlot
from covey.core.election.fence import Fencing
from covey.core.election.lease import HEART_TRACE_EVERY as HEART_TRACE_EVERY
from covey.core.election.lease import Heartbeats
from covey.core.election.messages import (
    ELECTION_MESSAGES,
    Expect,
    Heartbeat,
    HeartbeatAck,
    Info,
    Recover,
    VoteReply,
    VoteRequest,
)
from covey.core.election.quorum import seen_together
from covey.core.election.roles import become_follower
from covey.core.election.size import SaveSize as SaveSize
from covey.core.election.size import SizeStore as SizeStore
from covey.core.election.sizing import Sizing
from covey.core.election.state import ElectionState as ElectionState
from covey.core.election.state import Role as Role
from covey.core.election.state import SaveVote as SaveVote
from covey.core.election.state import VoteRound as VoteRound
from covey.core.election.state import VoteStore as VoteStore
from covey.core.election.voting import ELIGIBLE_TAG as ELIGIBLE_TAG
from covey.core.election.voting import PRIORITY_TAG as PRIORITY_TAG
from covey.core.election.voting import Voting
from covey.core.events import MemberEvent, TraceOp
from covey.core.member import MemberInfo
from covey.core.plugin import Extension, ExtensionMessage, Handle
from covey.core.types import Address


class Election(Extension):
    """The election capability of one node (see the module docstring).

    Attributes:
        state: the state the parts share (the properties below read it).
        fencing: fencing, heartbeat disk and panic mode.
        heartbeats: heartbeats and the lease.
        voting: standing and voting.
        sizing: the expected size (configured or tracked) in messages and commands.

    Args:
        config: the settings.
        store: term and vote as last saved.
        size: the tracked expected size as last saved (tracked rule only).
    """

    name = "election"
    message_types = ELECTION_MESSAGES

    def __init__(
        self,
        config: ElectionConfig,
        store: VoteStore | None = None,
        size: SizeStore | None = None,
    ) -> None:
        super().__init__()
        self.state = ElectionState(config, store if store is not None else VoteStore())
        if size is not None:
            self.state.size.store = size
        self.fencing = Fencing(self.state)
        self.sizing = Sizing(self.state, self.fencing)
        self.heartbeats = Heartbeats(self.state, self.fencing, self.sizing)
        self.voting = Voting(self.state, self.fencing, self.heartbeats, self.sizing)

    def attach(self, handle: Handle) -> None:
        super().attach(handle)
        self.state.bind(handle)

    # --------------------------------------------------------------- read side

    @property
    def cfg(self) -> ElectionConfig:
        """The settings every part uses."""
        return self.state.cfg

    @cfg.setter
    def cfg(self, config: ElectionConfig) -> None:
        # Replacing the settings replaces them for every part (the chaos test does so to
        # break safety on purpose and see the checker catch it).
        self.state.cfg = config

    @property
    def store(self) -> VoteStore:
        """Term and vote (the runtime makes their :class:`SaveVote` effects durable)."""
        return self.state.store

    @property
    def term(self) -> int:
        """The current term (only grows)."""
        return self.state.term

    @property
    def role(self) -> Role:
        """What this node is now (a leader whose lease ran out is one until its timer)."""
        return self.state.role

    @property
    def leader_id(self) -> bytes | None:
        """The leader this node follows (or itself), None if none."""
        return self.state.leader_id

    @property
    def lease_until(self) -> float:
        """The leader's lease end (-inf when not leader)."""
        return self.state.lease_until

    @property
    def leader_stable(self) -> bool:
        """Leadership is stable (enough heartbeats accepted by a quorum)."""
        return self.state.leader_stable

    @property
    def elections(self) -> int:
        """Real vote rounds this node started."""
        return self.state.elections

    @property
    def panic_reason(self) -> str | None:
        """Why this node is in panic, or None in normal mode."""
        return self.fencing.panic_reason

    @property
    def recover_gen(self) -> int:
        """Operator recoveries applied by leaders so far (only grows)."""
        return self.fencing.recover_gen

    @property
    def partitioned(self) -> dict[bytes, MemberInfo]:
        """Members silent on the network but alive on the heartbeat disk."""
        return self.fencing.partitioned

    @property
    def _round(self) -> VoteRound | None:
        """The vote round under way (read by the chaos checker)."""
        return self.state.round

    @property
    def _election_at(self) -> float | None:
        """When the election timer fires, None if not armed (read by the chaos checker)."""
        return self.state.election_at

    def is_leader(self, now: float) -> bool:
        """True while this node leads with a valid lease."""
        return self.state.is_leader(now)

    def current_leader(self, now: float) -> bytes | None:
        """The leader this node believes in right now, or None."""
        return self.state.current_leader(now)

    def role_now(self, now: float) -> str:
        """``leader`` (with a valid lease), ``candidate`` or ``follower``."""
        role = self.state.role
        if role is Role.LEADER:
            return "leader" if self.is_leader(now) else "follower"
        return str(role.value)

    @property
    def expected(self) -> int:
        """The size the quorum is a majority of now (configured, or tracked)."""
        return self.state.expected

    def quorum(self) -> int:
        """Votes (or heartbeat acceptances, self included) that make a majority."""
        return self.state.quorum()

    def priority(self, tags: Mapping[str, str] | None = None) -> int:
        """A member's priority tag (ours by default; higher stands first); bad ones count 0."""
        return self.state.priority(tags)

    def names(self, now: float) -> dict[str, object]:
        """Seed 003's GetNames: cluster, leader, stable, node, term (plus mode and role)."""
        s = self.state
        leader = self.current_leader(now)
        # Tracked: not stable while the membership still moves (a bootstrap window).
        steady = not self.cfg.tracked or s.size.steady(now, self.cfg.bootstrap)
        return {
            "cluster": self.handle.config.cluster,
            "leader": s.name_of(leader) if leader is not None else None,
            "stable": leader is not None and s.leader_stable and steady,
            "node": self.handle.config.name,
            "term": self.term,
            "role": self.role_now(now),
            "mode": "panic" if self.panic_reason is not None else "normal",
            "panic_reason": self.panic_reason,
            "expected_votes": s.expected,
            "expected_rule": "tracked" if self.cfg.tracked else "configured",
            "quorum": self.quorum(),
            "partitioned": sorted(s.name_of(n) for n in self.fencing.partitioned),
        }

    # --------------------------------------------------------------- lifecycle

    def on_start(self, now: float) -> None:
        s = self.state
        # A (re)started node may have accepted a heartbeat just before it died: it refuses
        # votes for follower_wait, which keeps the lease argument true without a disk.
        s.leader_heard = now
        s.heard_from = None
        self.sizing.on_start(now)
        # Tracked: collect peers for the bootstrap window before standing.
        wait = max(self.cfg.follower_wait, self.cfg.bootstrap if self.cfg.tracked else 0.0)
        s.election_at = now + wait + s.backoff()

    def on_leave(self, now: float) -> None:
        become_follower(self.state, now, "leave")
        self.state.election_at = None  # a node that left never stands again
        self.sizing.on_leave(now)  # after stepping out: then every member lowers by one

    # --------------------------------------------------------------- timers

    def next_deadline(self) -> float | None:
        s = self.state
        times = [s.election_at]
        if s.role is Role.LEADER:
            times += [s.next_hb, s.lease_until]
        if s.round is not None:
            times += [s.round.deadline, s.round.resend_at]
        return min((t for t in times if t is not None), default=None)

    def on_timer(self, now: float) -> None:
        s = self.state
        if s.role is Role.LEADER:
            if now >= s.lease_until:
                become_follower(s, now, "lease expired")
                # Our followers still back us (we are whom they heard last), so standing
                # again at once is safe and, under loss, wins back a lapsed lease before
                # their follower_wait runs out. (Set after become_follower armed its own
                # timer: the rng draws stay in their order.)
                s.election_at = now + s.backoff()
            elif s.next_hb is not None and now >= s.next_hb:
                self.heartbeats.send(now)
        rnd = s.round
        if rnd is not None and now >= rnd.deadline:
            self.voting.round_failed(rnd, now)
        elif rnd is not None and now >= rnd.resend_at:
            self.voting.resend_round(rnd, now)
        if s.election_at is not None and now >= s.election_at:
            self.voting.maybe_stand(now)

    # --------------------------------------------------------------- messages

    def on_message(self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float) -> None:
        match msg:
            case VoteRequest():
                if now >= self.state.quiet_until:
                    self.voting.on_vote_request(msg, sender, addr, now)
            case VoteReply():
                self.voting.on_vote_reply(msg, sender, now)
            case Heartbeat():
                self.heartbeats.on_heartbeat(msg, sender, addr, now)
            case HeartbeatAck():
                self.heartbeats.on_ack(msg, sender, now)
            case Recover():
                self.fencing.on_recover(msg, sender, now)
            case Info():
                self.fencing.on_info(msg, sender, now)
            case Expect():
                self.sizing.on_expect(msg, sender, addr, now)

    def on_member_event(self, event: MemberEvent, now: float) -> None:
        self.fencing.on_member_event(event, now)
        self.sizing.on_member_event(event, now)
        s = self.state
        if self.cfg.two_node and not s.both_seen:
            s.both_seen = seen_together(self.handle.members.live_count)

    # --------------------------------------------------------------- operator commands

    def reboot(self, now: float) -> float:
        """Seed 003's CmdReboot: leave the election, come back after a random delay.

        Returns the time participation resumes.
        """
        s = self.state
        become_follower(s, now, "reboot")
        s.leader_id = None
        s.quiet_until = now + self.cfg.reboot_delay * self.handle.rng.random()
        s.leader_heard = s.quiet_until  # then refuse votes one more follower_wait
        s.heard_from = None
        s.election_at = s.quiet_until + self.cfg.follower_wait + s.backoff()
        s.trace(TraceOp.REBOOT, now, "election reboot", self.term)
        s.announce(now)
        return s.quiet_until

    def send_info(self, addr: Address, now: float) -> None:
        """Seed 003's CmdCandidate: send our election view to the node at ``addr``."""
        leader = self.current_leader(now) or b""
        s = self.state
        info = Info(s.term, leader, s.role.value, s.expected, s.priority())
        self.handle.send(addr, [info], now=now)

    def expect(self, n: int, now: float) -> str:
        """The operator's ``covey expect N``: lower the tracked size cluster-wide.

        Raises:
            ValueError: the size is configured, or ``n`` is below 1 or the live count.
        """
        return self.sizing.expect(n, now)

    def recover(self, now: float) -> str:
        """The operator's ``covey recover``: applied by the leader, forwarded by others.

        Returns what happened, for the operator.
        """
        return self.fencing.recover(now)

    def observe_disk(self, now: float, slots: list[DiskSlot] | None) -> None:
        """Feed one read of the heartbeat disk (``None``: the read failed)."""
        self.fencing.observe_disk(now, slots)
