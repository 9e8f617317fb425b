"""The expected size the quorum is a majority of: configured, or tracked (the default rule).

With ``expected_votes`` configured, every node uses that number and a peer announcing
another one is invalid shared configuration (panic, :meth:`Fencing.config_agrees`).

Without it the size is *tracked*, like corosync's ``expected_votes_tracking``:

* it is the largest membership this node has seen alive (itself included), raised each
  time the live count grows, and kept in a :class:`SizeStore` the runtime makes durable
  (:class:`SaveSize`, written before the step's datagrams leave, as the vote is);
* every vote request and reply, heartbeat and ack carries the sender's size as the pair
  (``size_gen``, ``expected``); a receiver adopts a higher pair (compared generation
  first), so the size only ratchets up across the cluster, and a voter or member whose
  pair is higher than a candidate's or leader's refuses it (the refusal carries its pair,
  which the candidate or leader then adopts);
* it is lowered only as a new generation: by the operator (``covey expect N``, refused
  below the live count), or by a node leaving gracefully, which first takes no part any
  more, then tells every member ``(gen + 1, size - 1)``. Every receiver adopts the same
  pair (two nodes leaving at once give one decrement, the safe side), and none counts the
  leaver alive again unless it joins anew.

Why this is safe, and the one case it cannot make safe (a brand-new cluster that starts
already partitioned): docs/protocol.md, "Expected votes".
"""

from __future__ import annotations

from dataclasses import field

from covey.core.effects import Effect
from covey.core.events import MemberEvent, MemberJoined
from covey.core.records import record


@record(frozen=False)
class SizeStore:
    """The durable tracked size: its generation and value (0: nothing seen yet)."""

    gen: int = 0
    expected: int = 0


@record
class SaveSize(Effect):
    """Make the tracked size durable before this step's messages leave."""

    gen: int
    expected: int


@record(frozen=False)
class SizeTracking:
    """The tracked size of one node and what it knows to keep it (see the module docstring).

    Attributes:
        store: generation and value (durable through :class:`SaveSize` effects).
        departed: members that announced a graceful leave (not counted alive again
            until they join anew).
        last_live: the live count at the latest membership change.
        changed_at: when the live count last changed (``stable`` waits for it to settle).
    """

    store: SizeStore = field(default_factory=SizeStore)
    departed: set[bytes] = field(default_factory=set)
    last_live: int = 0
    changed_at: float = 0.0

    @property
    def pair(self) -> tuple[int, int]:
        """(generation, size): the order in which sizes are compared."""
        return (self.store.gen, max(1, self.store.expected))

    def adopt(self, gen: int, expected: int) -> SaveSize | None:
        """Take a peer's pair if it is higher than ours; the effect to persist, if any."""
        if expected < 1 or (gen, expected) <= self.pair:
            return None
        self.store.gen, self.store.expected = gen, expected
        return SaveSize(gen, expected)

    def behind(self, gen: int, expected: int) -> bool:
        """True when a peer's pair is lower than ours (we refuse it; it catches up)."""
        return (gen, expected) < self.pair

    def live(self, live_ids: list[bytes]) -> int:
        """The live count that counts: live members but those that announced a leave."""
        return sum(1 for n in live_ids if n not in self.departed)

    def on_member_event(self, event: MemberEvent | None, live: int, now: float) -> SaveSize | None:
        """A membership change (None: the start); grows the size when the live count
        grows past it."""
        if isinstance(event, MemberJoined):
            self.departed.discard(event.member.node_id)
        if live != self.last_live or event is None:
            self.changed_at = now
        grew = live > self.last_live
        self.last_live = live
        if grew and live > self.store.expected:
            self.store.expected = live
            return SaveSize(self.store.gen, live)
        return None

    def lower(self, expected: int) -> SaveSize:
        """A new generation with a smaller size (``covey expect``, a leave)."""
        self.store.gen += 1
        self.store.expected = max(1, expected)
        return SaveSize(self.store.gen, self.store.expected)

    def steady(self, now: float, window: float) -> bool:
        """True when the live count has not changed for ``window`` seconds."""
        return now - self.changed_at >= window
