"""Full-state exchange (push-pull over TCP): joins, anti-entropy, reconnection.

A push-pull sends our whole member table and merges the peer's reply. It serves four
needs: joining through static seed addresses; periodic anti-entropy; fetching tags that
did not fit a datagram; and finding the way back after a partition (memberlist issue 222:
isolated nodes never rejoin).

A start-up join whose stream fails (refused: the seed is not up yet) is tried again soon,
after ``join_retry_interval`` (0.1 s) times 1-2 at first, the delay doubling per failure
up to ``reconnect_max``, until the node has joined: agents started together then find
each other within a fraction of a second. For the partition case, a node keeps
re-contacting, for as long as it runs, the members it holds failed, the lost ones (failed
and reaped, see :mod:`.lost`) and the static seeds that are not live members, one random
target per reconnect tick, with exponential back-off on failure (its own schedule, which
failed joins do not inflate). As serf's ``reconnect`` does, a joined node tries only with
probability ``targets / live members``: the whole cluster then makes about one attempt per
target and tick, and a settled node's share stays flat in the cluster's size.

The :class:`Syncer` owns the seeds, whether we joined, the schedules of anti-entropy and
reconnection (with its back-off) and the per-member limit on tag fetches. The stream
requests themselves are kept by the :class:`~.outbox.Outbox`, which also carries TCP
pings and capabilities' streams; each record of a peer's table goes through the node's
merge (:meth:`~.inbound.Inbound.merge`), as any other update does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from covey.core.config import CoreConfig, push_pull_scale
from covey.core.effects import StreamPurpose
from covey.core.events import TraceOp
from covey.core.member import Member
from covey.core.membership.capabilities import Capabilities
from covey.core.membership.outbox import Outbox, PendingStream
from covey.core.membership.stats import Trace
from covey.core.membership.table import MemberTable
from covey.core.types import Address, MemberState, Rng
from covey.core.wire.frame import FrameType
from covey.core.wire.messages import Alive, Dead, MemberRecord, PushPull, Suspect

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


class Merge(Protocol):
    """Merges one membership update (the node's inbound merge), ``bulk`` for mere news."""

    def __call__(self, msg: Alive | Suspect | Dead, now: float, *, bulk: bool = False) -> None:
        """Merge ``msg`` as of ``now``."""


class Syncer:
    """Full-state exchanges of one node: joins, anti-entropy, reconnection, tag fetches.

    Args:
        config: timings (push-pull and reconnect intervals) and our address.
        table: the member table sent in every exchange.
        rng: the node's randomness (one draw here: the phase of the first exchange).
        outbox: seals the requests and hands them to the IO layer.
        capabilities: the node's capabilities, for their share of the state.
        now: the current monotonic time.
        pick: picks up to k random live members (the prober's).
        merge: merges each record of a peer's table.
        trace: records a trace event.
        join_refused: looks at a join's answer before it is merged; True refuses it
            (another live node holds our name: :mod:`covey.core.membership.names`).
    """

    def __init__(
        self,
        config: CoreConfig,
        table: MemberTable,
        rng: Rng,
        outbox: Outbox,
        capabilities: Capabilities,
        *,
        now: float,
        pick: Callable[[int, bytes | None], list[Member]],
        merge: Merge,
        trace: Trace,
        join_refused: Callable[[PushPull, float], bool] | None = None,
    ) -> None:
        self._config = config
        self._table = table
        self._rng = rng
        self._outbox = outbox
        self._capabilities = capabilities
        self._pick = pick
        self._merge = merge
        self._trace = trace
        self._join_refused = join_refused
        #: Static seed addresses, re-contacted while we are alone.
        self.seeds: list[Address] = []
        #: True once any full-state exchange succeeded.
        self.joined = False
        # Stagger the first exchange so nodes started together do not sync in lockstep.
        self._next_push_pull = now + config.push_pull_interval * (0.5 + rng.random())
        self._last_push_pull = now
        self._reconnect_delay = config.reconnect_interval
        self._next_reconnect = now + self._reconnect_delay
        self._sync_after: dict[bytes, float] = {}
        # Seeds whose join failed: when to try again, and the delay after the next failure.
        self._join_due: dict[Address, float] = {}
        self._join_delay: dict[Address, float] = {}
        # Seed address -> the id of the member found there (a live seed needs no retry).
        self._seed_owner: dict[Address, bytes] = {}

    def join(self, addresses: Iterable[Address], now: float) -> None:
        """Contact seed addresses (other than ours); they are retried until one answers."""
        seeds = [a for a in addresses if a != self._config.address]
        self.seeds.extend(s for s in seeds if s not in self.seeds)
        for addr in seeds:
            self.open_push_pull(addr, StreamPurpose.JOIN, None, now)

    def deadline(self) -> float | None:
        """When :meth:`on_timer` must next run for a join retry (None: none is due).

        Join retries are kept on time: they decide how fast a node that starts beside its
        seed gets in. The periodic duties are in :meth:`soft_deadline`.
        """
        return min(self._join_due.values()) if self._join_due else None

    def soft_deadline(self) -> float:
        """When the periodic exchange or reconnection tick is next due; it may run up to
        a probe interval late, on another duty's wake-up (see ``Node.get_timer``)."""
        return min(self._next_push_pull, self._next_reconnect)

    def on_timer(self, now: float) -> None:
        """Run the periodic anti-entropy exchange, the reconnection attempts and the join
        retries when due."""
        if self._join_due:
            self._retry_joins(now)
        if now >= self._next_push_pull:
            interval = self._config.push_pull_interval * push_pull_scale(self._table.live_count)
            jitter = 0.75 + 0.5 * self._rng.random()
            if now - self._last_push_pull < 0.75 * interval:
                # Scheduled when the cluster looked smaller (at start we know only
                # ourselves): a large cluster must not sync in one burst.
                self._next_push_pull = self._last_push_pull + interval * jitter
            else:
                self._next_push_pull = now + interval * jitter
                self._last_push_pull = now
                for m in self._pick(1, None):
                    self.open_push_pull(m.address, StreamPurpose.PUSH_PULL, m.node_id, now)
        if now >= self._next_reconnect:
            self._reconnect(now)

    def _retry_joins(self, now: float) -> None:
        if self.joined:
            self._join_due.clear()  # the reconnect loop covers seeds still not live
            return
        for addr, due in list(self._join_due.items()):
            if now >= due:
                del self._join_due[addr]  # rescheduled if this one fails too
                self.open_push_pull(addr, StreamPurpose.JOIN, None, now)

    def _join_failed(self, addr: Address, now: float) -> None:
        """Schedule the seed ``addr`` again: first soon (the seed is likely starting up
        with us), then backing off, so a seed that stays away costs little."""
        cap = self._config.reconnect_max
        delay = self._join_delay.get(addr, self._config.join_retry_interval)
        self._join_due[addr] = now + min(delay * (1.0 + self._rng.random()), cap)
        self._join_delay[addr] = min(delay * 2, cap)

    def _reconnect(self, now: float) -> None:
        targets = self._reconnect_targets()
        if not targets:
            self._reconnect_delay = self._config.reconnect_interval
        elif not self.joined or self._rng.random() * self._table.live_count < len(targets):
            # serf's rule: with probability targets / live members, so the cluster makes
            # about one attempt per target and tick, whatever its size. Not joined (or
            # alone, where the probability is 1): always.
            addr, node_id = targets[self._rng.randrange(len(targets))]
            self.open_push_pull(addr, StreamPurpose.RECONNECT, node_id, now)
        jitter = 0.75 + 0.5 * self._rng.random()
        self._next_reconnect = now + self._reconnect_delay * jitter

    def _reconnect_targets(self) -> list[tuple[Address, bytes | None]]:
        """(address, member id or None for a seed) of everyone worth re-contacting:
        failed members, lost members and seeds where no live member is known."""
        targets: dict[Address, bytes | None] = {}
        for m in self._table.gone.values():
            if m.state is MemberState.FAILED:
                targets.setdefault(m.address, m.node_id)
        for m in self._table.lost:
            targets.setdefault(m.address, m.node_id)
        for seed in self.seeds:
            if seed not in targets and not self._seed_is_live(seed):
                targets[seed] = None
        return list(targets.items())

    def _seed_is_live(self, seed: Address) -> bool:
        """True when a live member is known at (or answered for) the seed address."""
        owner = self._seed_owner.get(seed)
        m = None if owner is None else self._table.get(owner)
        if m is not None and m.state in _LIVE:
            return True
        for m in self._table.live():
            if m.address == seed:
                self._seed_owner[seed] = m.node_id
                return True
        return False

    def want_sync_with(self, m: Member, now: float) -> None:
        """Exchange state with ``m`` soon, at most once per two probe intervals."""
        if self._sync_after.get(m.node_id, 0.0) > now:
            return
        self._sync_after[m.node_id] = now + 2 * self._config.probe_interval
        self.open_push_pull(m.address, StreamPurpose.PUSH_PULL, m.node_id, now)

    def push_pull_message(self, *, reply: bool, join: bool) -> PushPull:
        """Our whole table, and each capability's share of the state."""
        records = tuple(
            MemberRecord(
                m.node_id,
                m.name,
                m.address,
                m.incarnation,
                m.state,
                m.tags if m.tags_complete else None,
            )
            for m in self._table.members.values()
        )
        ext = self._capabilities.sync_state()
        return PushPull(join=join, reply=reply, members=records, ext=ext)

    def open_push_pull(
        self, addr: Address, purpose: StreamPurpose, node_id: bytes | None, now: float
    ) -> None:
        """Ask the IO layer for a push-pull exchange with ``addr``."""
        msg = self.push_pull_message(reply=False, join=purpose is StreamPurpose.JOIN)
        frame = self._outbox.seal(FrameType.STREAM_REQUEST, [msg], now)
        self._outbox.open_stream(addr, frame, purpose, node_id)

    def merge_state(self, pp: PushPull, sender: bytes, now: float) -> None:
        """Merge a peer's table and its capabilities' state (a request or a reply)."""
        self._merge_members(pp, sender, now)
        if pp.ext:
            self._capabilities.merge_sync_state(pp.ext, sender, now)

    def _merge_members(self, pp: PushPull, sender: bytes, now: float) -> None:
        for r in pp.members:
            if r.state is MemberState.ALIVE:
                # News of a lost member brings back its failed record first (see .lost).
                self._table.restore(r.node_id, now)
                known = self._table.get(r.node_id)
                # News to us is re-gossiped even if it came by push-pull (as memberlist
                # does): in a mass join, every later joiner then spreads the earlier ones.
                # Members merely new to us are bulk: they never crowd out real news.
                alive = Alive(r.incarnation, r.node_id, r.name, r.address, r.tags)
                self._merge(alive, now, bulk=known is None)
                if (
                    known is not None
                    and known.state is MemberState.FAILED
                    and known.incarnation == r.incarnation
                ):
                    # The peer still hears from a member we gave up on: let it refute us.
                    self.want_sync_with(known, now)
            elif r.state is MemberState.LEFT:
                self._merge(Dead(r.incarnation, r.node_id, r.node_id, left=True), now)
            else:
                # A remote failed verdict only makes us suspect: we may know better.
                self._merge(Suspect(r.incarnation, r.node_id, sender), now)

    def on_reply(self, pending: PendingStream, pp: PushPull, sender: bytes, now: float) -> None:
        """A peer answered one of our exchanges with its state: we are joined."""
        refuse = self._join_refused
        # Only a node still joining is the newer claimant (two partitions that meet,
        # each with a holder, keep both: every observer keeps its first).
        joining = pending.purpose is StreamPurpose.JOIN or not self.joined
        if joining and refuse is not None and refuse(pp, now):
            return  # our name is taken: the runtime leaves; nothing of theirs is merged
        self.merge_state(pp, sender, now)
        if not self.joined:
            self._trace(TraceOp.JOIN, now, "joined", self._table.live_count)
        self.joined = True
        self._join_due.clear()
        self._join_delay.clear()
        if pending.purpose is StreamPurpose.RECONNECT:
            self._reconnect_delay = self._config.reconnect_interval
        if pending.node_id is None and pending.address in self.seeds:
            self._seed_owner[pending.address] = sender
        elif pending.node_id is not None and pending.node_id != sender:
            # Someone else answers at a lost member's address now: stop looking there.
            self._table.lost.pop(pending.node_id)

    def on_failed(self, pending: PendingStream, *, refused: bool, now: float) -> None:
        """A stream request of ours failed: back off (a seed's join: retry soon), and fail
        a member that refused it."""
        if pending.purpose is StreamPurpose.RECONNECT:
            self._reconnect_delay = min(self._reconnect_delay * 2, self._config.reconnect_max)
        elif (
            pending.purpose is StreamPurpose.JOIN
            and pending.node_id is None
            and pending.address in self.seeds
            and not self.joined
        ):
            # A join through a seed (not one answering a beacon), not answered yet: its
            # own schedule, so the reconnect delay of lost members is not inflated.
            self._join_failed(pending.address, now)
        if not refused or pending.node_id is None:
            return
        m = self._table.get(pending.node_id)
        if m is None or m.address != pending.address:
            return
        if m.state in (MemberState.ALIVE, MemberState.SUSPECT):
            # Nothing listens on its port: the process is gone, no need to wait out suspicion.
            self._trace(TraceOp.PROBE, now, f"{m.name} refused connection", m.incarnation)
            self._merge(Dead(m.incarnation, m.node_id, self._config.node_id, left=False), now)
