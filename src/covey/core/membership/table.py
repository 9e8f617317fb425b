"""The member table and SWIM's merge rules.

Theory of operation. Each member has an incarnation number that only its owner raises.
An update about a member is applied when it carries news:

* alive(i) wins over anything with a lower incarnation, and revives a failed or left
  member only with a strictly higher incarnation;
* suspect(i) applies to an alive member of incarnation <= i; further suspect(i) messages
  from other senders confirm the suspicion and shorten its timer (Lifeguard);
* dead(i) / left(i) apply to alive or suspect members of incarnation <= i; a left verdict
  also overrides a failed one (it is the more precise news).

Updates about the local node are never applied here: the node refutes them instead.
Every accepted update yields an event; the node re-gossips it.

Reaping forgets failed and left members after their retention time; a reaped *failed*
member is kept aside as *lost* (:mod:`.lost`) and restored, still failed at the
incarnation it failed at, as soon as there is any news of it — so the rules above hold
across reaping too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from covey.core.config import CoreConfig
from covey.core.events import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberRecovered,
    MemberSuspect,
    MemberUpdated,
)
from covey.core.member import Member
from covey.core.membership.lost import LostMembers
from covey.core.membership.suspicion import Suspicion, suspicion_bounds
from covey.core.types import BeaconState, MemberState
from covey.core.wire.messages import Alive, Dead, Suspect

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


class MemberTable:
    """All members one node knows, with counts and suspicion timers kept incrementally."""

    def __init__(
        self,
        local: Member,
        *,
        probe_interval: float,
        suspicion_mult: int,
        suspicion_max_mult: int,
        lost_limit: int = 0,
    ) -> None:
        self.local = local
        self.members: dict[bytes, Member] = {local.node_id: local}
        #: failed or left members, for reaping and reconnection without scanning everyone
        self.gone: dict[bytes, Member] = {}
        self.suspicions: dict[bytes, Suspicion] = {}
        #: reaped failed members, re-contacted until they answer (see :mod:`.lost`)
        self.lost = LostMembers(lost_limit)
        # Restored from ``lost``: observers saw them reaped, so coming back is a join.
        self._restored: set[bytes] = set()
        self.live_count = 1
        #: Every membership change applied, at once, in order (the node fans them out).
        #: By default they collect in ``events``.
        self.events: list[MemberEvent] = []
        self.sink: Callable[[MemberEvent], None] = self.events.append
        #: name → node id of its first live holder (see :meth:`name_holder`).
        self._names: dict[str, bytes] = {local.name: local.node_id}
        #: Called with (holder, refused alive) when an alive claims a held name.
        self.on_conflict: Callable[[Member, Alive, float], None] | None = None
        self._probe_interval = probe_interval
        self._mult = suspicion_mult
        self._max_mult = suspicion_max_mult

    @classmethod
    def for_node(cls, config: CoreConfig, now: float) -> MemberTable:
        """A table holding only the node ``config`` describes, alive and starting."""
        local = Member(
            config.node_id,
            config.name,
            config.address,
            0,
            MemberState.ALIVE,
            now,
            dict(config.tags),
            beacon_state=BeaconState.INIT,
        )
        return cls(
            local,
            probe_interval=config.probe_interval,
            suspicion_mult=config.suspicion_mult,
            suspicion_max_mult=config.suspicion_max_mult,
            lost_limit=config.lost_limit,
        )

    def __len__(self) -> int:
        return len(self.members)

    def get(self, node_id: bytes) -> Member | None:
        """The member with ``node_id``, if known."""
        return self.members.get(node_id)

    def live(self) -> Iterator[Member]:
        """Members that are alive or suspect, the local node included."""
        return (m for m in self.members.values() if m.state in _LIVE)

    def state_counts(self) -> dict[str, int]:
        """How many members are in each state, by state label (in order of first sight)."""
        counts: dict[str, int] = {}
        for m in self.members.values():
            counts[m.state.label] = counts.get(m.state.label, 0) + 1
        return counts

    def name_holder(self, name: str, node_id: bytes) -> Member | None:
        """The live member other than ``node_id`` holding ``name``, if any."""
        nid = self._names.get(name)
        if nid is None or nid == node_id:
            return None
        m = self.members.get(nid)
        return m if m is not None and m.state in _LIVE else None

    def _claim(self, m: Member) -> None:
        if m.state in _LIVE and self.name_holder(m.name, m.node_id) is None:
            self._names[m.name] = m.node_id

    def _set_state(self, m: Member, state: MemberState, now: float) -> None:
        was_live = m.state in _LIVE
        is_live = state in _LIVE
        m.state = state
        m.state_change = now
        if was_live and not is_live:
            self.live_count -= 1
            self.gone[m.node_id] = m
        elif is_live and not was_live:
            self.live_count += 1
            self.gone.pop(m.node_id, None)
        if state is not MemberState.SUSPECT:
            self.suspicions.pop(m.node_id, None)

    def add(self, m: Member, now: float) -> None:
        """Insert a member that was not known before."""
        self.members[m.node_id] = m
        self._claim(m)
        m.state_change = now
        if m.state in _LIVE:
            self.live_count += 1
        else:
            self.gone[m.node_id] = m
        self.sink(MemberJoined(m.snapshot(), now))

    def apply_alive(self, msg: Alive, now: float, *, beacon: BeaconState | None = None) -> bool:
        """Merge an alive message about another node; True when it was news."""
        self.restore(msg.node_id, now)
        m = self.members.get(msg.node_id)
        if m is None:
            holder = self.name_holder(msg.name, msg.node_id)
            if holder is not None and holder.address != msg.address:
                # A second live node claiming a held name: the first keeps it (the same
                # address is a restart with a new identity, not a second claimant).
                if self.on_conflict is not None:
                    self.on_conflict(holder, msg, now)
                return False
            m = Member(
                msg.node_id,
                msg.name,
                msg.address,
                msg.incarnation,
                MemberState.ALIVE,
                now,
                dict(msg.tags or {}),
                tags_complete=msg.tags is not None,
                beacon_state=beacon,
            )
            self.add(m, now)
            return True
        if beacon is not None:
            m.beacon_state = beacon
        if msg.incarnation < m.incarnation:
            return False
        if msg.incarnation == m.incarnation:
            # Same incarnation carries no news, except the tags a tag-less alive left out.
            if msg.tags is not None and not m.tags_complete:
                m.tags_complete = True
                if msg.tags != m.tags:
                    m.tags = dict(msg.tags)
                    self.sink(MemberUpdated(m.snapshot(), now))
            return False
        if m.state is MemberState.LEFT or m.state is MemberState.FAILED:
            came_back_from = m.state
        else:
            came_back_from = None
        was_suspect = m.state is MemberState.SUSPECT
        changed = m.address != msg.address or m.name != msg.name
        m.incarnation = msg.incarnation
        m.address = msg.address
        m.name = msg.name
        self._claim(m)
        if msg.tags is not None:
            changed = changed or msg.tags != m.tags
            m.tags = dict(msg.tags)
            m.tags_complete = True
        else:
            m.tags_complete = False
        if m.state is not MemberState.ALIVE:
            self._set_state(m, MemberState.ALIVE, now)
            self._claim(m)
        restored = m.node_id in self._restored
        self._restored.discard(m.node_id)
        if came_back_from is MemberState.LEFT or restored:
            self.sink(MemberJoined(m.snapshot(), now))
        elif came_back_from is MemberState.FAILED or was_suspect:
            self.sink(MemberRecovered(m.snapshot(), now))
        elif changed:
            self.sink(MemberUpdated(m.snapshot(), now))
        return True

    def apply_suspect(self, msg: Suspect, now: float) -> bool:
        """Merge a suspicion about another node; True when it is worth re-gossiping."""
        m = self.members.get(msg.node_id)
        if m is None or msg.incarnation < m.incarnation or m.state not in _LIVE:
            return False
        if m.state is MemberState.SUSPECT:
            s = self.suspicions.get(m.node_id)
            if s is not None and msg.incarnation == s.incarnation:
                return s.confirm(msg.sender)
        low, high = suspicion_bounds(
            self.live_count, self._probe_interval, self._mult, self._max_mult
        )
        # Confirmations expected: the others that may independently probe this member.
        k = self._mult - 2
        if self.live_count - 2 < k:
            k = 0  # too few members to expect confirmations (as memberlist decides)
        self.suspicions[m.node_id] = Suspicion(
            start=now,
            incarnation=msg.incarnation,
            k=k,
            min_timeout=low,
            max_timeout=high,
            first=msg.sender,
        )
        m.incarnation = msg.incarnation
        if m.state is not MemberState.SUSPECT:
            self._set_state(m, MemberState.SUSPECT, now)
            # _set_state drops suspicions only when leaving SUSPECT; ours stays.
            self.sink(MemberSuspect(m.snapshot(), now))
        return True

    def apply_dead(self, msg: Dead, now: float) -> bool:
        """Merge a failed or left verdict about another node; True when it was news."""
        m = self.members.get(msg.node_id)
        if m is None or msg.incarnation < m.incarnation:
            return False
        target = MemberState.LEFT if msg.left else MemberState.FAILED
        if m.state is MemberState.LEFT or (m.state is MemberState.FAILED and not msg.left):
            return False
        m.incarnation = msg.incarnation
        self._set_state(m, target, now)
        if msg.left:
            m.beacon_state = BeaconState.EXIT
            self.sink(MemberLeft(m.snapshot(), now))
        else:
            self.sink(MemberFailed(m.snapshot(), now))
        return True

    def expired_suspicions(self, now: float, stall: float) -> list[tuple[bytes, int]]:
        """(node id, incarnation) of suspicions whose timer ran out.

        A timer handled more than ``stall`` seconds after its deadline means this node was
        stalled (a paused process), not that the member stayed silent: that suspicion
        starts over instead, giving the member its full time to refute.
        """
        out = []
        for nid, s in self.suspicions.items():
            if s.deadline > now:
                continue
            if now - s.deadline > stall:
                s.restart(now)
            else:
                out.append((nid, s.incarnation))
        return out

    def next_suspicion_deadline(self) -> float | None:
        """Earliest suspicion deadline, if any."""
        if not self.suspicions:
            return None
        return min(s.deadline for s in self.suspicions.values())

    def reap(self, now: float, failed_after: float, left_after: float) -> None:
        """Forget failed and left members past their retention time (failed ones are
        kept aside as lost)."""
        for nid, m in list(self.gone.items()):
            keep = left_after if m.state is MemberState.LEFT else failed_after
            if m.state_change + keep <= now:
                del self.gone[nid]
                del self.members[nid]
                if m.state is MemberState.FAILED:
                    self.lost.add(m)
                if nid in self._restored:
                    self._restored.discard(nid)  # observers already saw it reaped
                else:
                    self.sink(MemberReaped(m.snapshot(), now))

    def restore(self, node_id: bytes, now: float) -> bool:
        """Put a lost member back, failed at the incarnation it failed at, because there
        is news of it; True if it was lost. Silent: observers saw it reaped, and see it
        join when it comes back alive (it refutes our failed verdict to do so)."""
        m = self.lost.pop(node_id)
        if m is None or node_id in self.members:
            return False
        m.state_change = now  # a full retention time again before it is reaped anew
        m.in_probe_order = False  # the prober dropped it when it was reaped
        self.members[node_id] = m
        self.gone[node_id] = m
        self._restored.add(node_id)
        return True
