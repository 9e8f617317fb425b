"""Discovery beacons: how nodes find each other without seeds, and find their way back.

A node announces itself on the discovery group: fast at start (the INIT beacons), then
every beacon interval with jitter, and once more on leaving (EXIT). A settled node (joined,
nobody missing) stays quiet unless ``settled_beacons`` is set: newcomers announce
themselves and get answers. A joined node that misses members (failed or lost ones: the
other side of a partition may be out there) beacons with probability
``min(1, SEARCH_BEACONS / live members)`` per interval, so the group hears about
:data:`SEARCH_BEACONS` beacons per interval whatever the cluster's size.

Hearing a beacon, a node learns the member (and joins through it if it has not joined
yet), answers a starting node with a READY beacon (about eight answers in all, whatever
the cluster's size), and asks a member it holds failed or left for a state exchange, so
that it can refute that verdict.
"""

from __future__ import annotations

from collections.abc import Callable

from covey.core.config import CoreConfig
from covey.core.effects import StreamPurpose
from covey.core.membership.outbox import Outbox
from covey.core.membership.sync import Merge, Syncer
from covey.core.membership.table import MemberTable
from covey.core.types import BeaconState, MemberState, Rng
from covey.core.wire.frame import encode_message_bytes
from covey.core.wire.messages import Alive, Beacon, Dead

#: Delays of the first beacons after start, before the steady beacon interval.
_FAST_BEACONS = (0.0, 0.25, 0.5, 1.0, 2.0)
#: Beacons per interval a whole cluster that misses members sends (on average).
SEARCH_BEACONS = 4


class Beacons:
    """The beacons one node sends and the answers it gives to those it hears.

    Args:
        config: beacon timings and policy.
        table: the member table (our own record, members learned from beacons).
        rng: the node's randomness (answer sampling, beacon jitter).
        outbox: where beacons go.
        syncer: whether we joined; opens the join and refutation exchanges.
        add_member: puts a member learned from a beacon into the probe order.
        merge: merges the left verdict an EXIT beacon carries.
    """

    def __init__(
        self,
        config: CoreConfig,
        table: MemberTable,
        rng: Rng,
        outbox: Outbox,
        syncer: Syncer,
        *,
        add_member: Callable[[bytes], None],
        merge: Merge,
    ) -> None:
        self._config = config
        self._table = table
        self._rng = rng
        self._outbox = outbox
        self._syncer = syncer
        self._add_member = add_member
        self._merge = merge
        self._step = 0
        self._next: float | None = None
        #: No answer to an unopened frame before this time (see answer_unopened).
        self._unopened_after = 0.0

    def start(self, now: float) -> None:
        """Begin beaconing: the first fast beacon is due at once."""
        self._next = now

    def deadline(self) -> float | None:
        """When the next start-up beacon is due (None before start and once they are sent).

        The fast beacons of the start (0, 0.25, 0.5, 1, 2 s) are kept on time: they find
        the cluster. The periodic ones are in :meth:`soft_deadline`.
        """
        return self._next if self._step < len(_FAST_BEACONS) else None

    def soft_deadline(self) -> float | None:
        """When the next periodic beacon (or the settled node's decision not to send one)
        is due; it may run up to a probe interval late (see ``Node.get_timer``)."""
        return self._next if self._step >= len(_FAST_BEACONS) else None

    def message(self) -> Beacon:
        """Our beacon, in our current beacon state."""
        local = self._table.local
        state = local.beacon_state or BeaconState.INIT
        return Beacon(local.node_id, local.name, local.address, state, local.incarnation)

    def send_exit(self, now: float) -> None:
        """Announce on the discovery group that we leave (our beacon state is EXIT)."""
        self._outbox.send(None, [encode_message_bytes(self.message())], now, piggyback=False)

    def on_timer(self, now: float) -> None:
        """Send the beacon that is due, if any, and schedule the next."""
        if self._next is None or now < self._next:
            return
        fast = self._step < len(_FAST_BEACONS)
        if fast or self._config.settled_beacons or self._searching():
            # A settled node (joined, nobody missing) stays quiet: newcomers announce
            # themselves and get answers, so its beacons would only cost packets.
            self._outbox.send(None, [encode_message_bytes(self.message())], now, piggyback=False)
        self._step += 1
        if self._step < len(_FAST_BEACONS):
            self._next = now + _FAST_BEACONS[self._step]
            return
        self._table.local.beacon_state = BeaconState.READY
        jitter = self._config.beacon_jitter * (2 * self._rng.random() - 1)
        self._next = now + self._config.beacon_interval * (1 + jitter)

    def _searching(self) -> bool:
        """True when this beacon may find someone: we are not joined or alone (always),
        or we miss members (our share of the cluster's few search beacons)."""
        table = self._table
        if not self._syncer.joined or table.live_count < 2:
            return True
        if not table.lost and not any(m.state is MemberState.FAILED for m in table.gone.values()):
            return False
        return self._rng.random() * table.live_count < SEARCH_BEACONS

    def on_beacon(self, b: Beacon, now: float) -> None:
        """Learn from a beacon another node sent."""
        if b.node_id == self._table.local.node_id:
            return  # only we speak for ourselves
        self._table.restore(b.node_id, now)  # a lost member speaks (see .lost)
        m = self._table.get(b.node_id)
        if b.state is BeaconState.EXIT:
            if m is not None and b.incarnation >= m.incarnation:
                self._merge(Dead(b.incarnation, b.node_id, b.node_id, left=True), now)
            return
        if m is None:
            self._table.apply_alive(
                Alive(b.incarnation, b.node_id, b.name, b.address, None), now, beacon=b.state
            )
            self._add_member(b.node_id)
            if self._may_join():
                self._syncer.open_push_pull(b.address, StreamPurpose.JOIN, b.node_id, now)
            else:
                self._answer_init(b, now)
            return
        self._answer_init(b, now)
        m.beacon_state = b.state
        if m.state not in (MemberState.ALIVE, MemberState.SUSPECT):
            # It speaks, so it lives: a state exchange lets it refute our verdict.
            self._syncer.want_sync_with(m, now)
        elif not m.tags_complete and now - m.state_change > 2 * self._config.probe_interval:
            # Its own alive gossip normally brings the tags within moments; it did not.
            self._syncer.want_sync_with(m, now)
        elif self._may_join():
            self._syncer.open_push_pull(b.address, StreamPurpose.JOIN, b.node_id, now)

    def _may_join(self) -> bool:
        """Not joined, and no join exchange under way (one at a time is enough)."""
        return not self._syncer.joined and not self._outbox.joins_in_flight

    def _answer_init(self, b: Beacon, now: float) -> None:
        """Answer a node that just (re)started: settled members send no beacons of their
        own, and a restarted member we still know has an empty table all the same."""
        if b.state is not BeaconState.INIT or not self._syncer.joined:
            return
        # About eight answers in all, whatever the cluster's size: no implosion on it.
        if self._rng.random() < 8 / self._table.live_count:
            # The answer says READY even during our own fast start: an INIT answer would
            # be answered in turn, and two starting nodes would ping-pong for ever.
            local = self._table.local
            ready = Beacon(
                local.node_id, local.name, local.address, BeaconState.READY, local.incarnation
            )
            self._outbox.send(b.address, [encode_message_bytes(ready)], now, piggyback=False)

    def answer_unopened(self, now: float) -> None:
        """A frame came that no key of ours opens (``bad_key``): answer with a beacon on
        the group, at most once per beacon interval, and from about eight members in all.

        A settled cluster sends no beacons, so a node started with the wrong key would
        hear nothing at all and look like a healthy node alone; hearing frames it cannot
        open is what tells it (and its health) that its key is wrong.
        """
        if not self._syncer.joined or now < self._unopened_after:
            return
        self._unopened_after = now + self._config.beacon_interval
        if self._rng.random() * self._table.live_count < 8:
            self._outbox.send(None, [encode_message_bytes(self.message())], now, piggyback=False)
