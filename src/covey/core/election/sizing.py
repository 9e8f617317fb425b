"""The expected size in the election's messages and commands: :class:`Sizing`.

The rule is in :mod:`covey.core.election.size`; this part applies it where the election
meets its peers: it checks the pair every vote request and heartbeat carries (adopting a
higher one, refusing a lower one; with ``expected_votes`` configured, any other value is
invalid shared configuration), learns from replies and acks, grows the size with the
membership, and carries out the two ways down: ``covey expect N`` and a graceful leave.
"""

from __future__ import annotations

from covey.core.election.fence import Fencing
from covey.core.election.messages import Expect
from covey.core.election.state import ElectionState
from covey.core.events import MemberEvent
from covey.core.types import Address

#: Largest expected size ``covey expect`` sets (as ``expected_votes``' bound).
MAX_EXPECTED = 10_000


class Sizing:
    """The expected size of one node's election, over its :class:`ElectionState`.

    Args:
        state: the shared state (its ``size`` is the tracked size).
        fencing: panics on a configured size that does not match.
    """

    def __init__(self, state: ElectionState, fencing: Fencing) -> None:
        self.s = state
        self.fencing = fencing

    def accepts(self, gen: int, expected: int, sender: bytes, now: float) -> bool:
        """A candidate's or leader's pair: False when we must refuse it.

        Configured: it must match ours (else panic). Tracked: a higher pair is adopted
        (saved before our answer leaves); a lower one is refused, and our answer carries
        ours so the sender catches up.
        """
        s = self.s
        if not s.cfg.tracked:
            return self.fencing.config_agrees(expected, sender, now)
        s.save_size(s.size.adopt(gen, expected))
        return not s.size.behind(gen, expected)

    def learn(self, gen: int, expected: int) -> None:
        """A voter's or member's pair (in a reply or ack): adopted if higher (tracked)."""
        s = self.s
        if s.cfg.tracked:
            s.save_size(s.size.adopt(gen, expected))

    def on_start(self, now: float) -> None:
        """The election starts: the bootstrap window and the membership clock run from now."""
        self.s.started_at = now
        self._count(None, now)

    def on_member_event(self, event: MemberEvent, now: float) -> None:
        """The membership changed: note when, and grow the tracked size with it."""
        self._count(event, now)

    def _count(self, event: MemberEvent | None, now: float) -> None:
        s = self.s
        if not s.cfg.tracked:
            return
        members, tracking = s.handle.members, s.size
        if tracking.departed:
            live = tracking.live([m.node_id for m in members.live()])
        else:
            live = members.live_count
        s.save_size(tracking.on_member_event(event, live, now))

    # ---------------------------------------------------------------- the ways down

    def expect(self, n: int, now: float) -> str:
        """The operator's ``covey expect N``: lower the tracked size cluster-wide.

        A new generation, so every member adopts it (through this message, and through
        every vote and heartbeat after it). Returns what happened, for the operator.

        Raises:
            ValueError: the size is configured (``expected_votes``), or ``n`` is below 1
                or below the members this node sees alive.
        """
        s = self.s
        if not s.cfg.tracked:
            raise ValueError("expected votes are configured (--expected-votes): not tracked")
        live = s.size.live([m.node_id for m in s.handle.members.live()])
        if type(n) is not int or not 1 <= n <= MAX_EXPECTED:
            raise ValueError(f"expected votes must be an integer in 1..{MAX_EXPECTED}")
        if n < live:
            raise ValueError(f"expected votes {n} is below the {live} members alive")
        before = s.expected
        s.save_size(s.size.lower(n))
        self._tell(False, now)
        return f"expected votes {before} -> {n} (generation {s.size.store.gen})"

    def on_leave(self, now: float) -> None:
        """We leave gracefully (and already take no part): every member lowers by one."""
        s = self.s
        if not s.cfg.tracked:
            return
        s.save_size(s.size.lower(s.expected - 1))
        self._tell(True, now)

    def _tell(self, leaving: bool, now: float) -> None:
        gen, expected = self.s.size_pair
        self.s.broadcast(Expect(gen, expected, leaving), now)

    def on_expect(self, msg: Expect, sender: bytes, addr: Address, now: float) -> None:
        """A lowered size from a peer (an operator's command, or the peer leaving)."""
        s = self.s
        if not s.cfg.tracked:
            return
        if msg.leaving:
            s.size.departed.add(sender)
        s.save_size(s.size.adopt(msg.size_gen, msg.expected))
