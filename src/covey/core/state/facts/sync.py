"""Anti-entropy of the facts extension (mixed into :class:`~.capability.Facts`).

Every origin's facts carry a digest kept incrementally: the highest ``seq`` and a
fingerprint of the (key, seq) pairs, so equal digests mean equal facts. Every
``digest_interval``, for ``BUSY_ROUNDS`` intervals after the last change it saw (or a
join), a node sends its digest to one random member over TCP
(``FactDigest``); the answer is a ``FactBatch`` of the origins that differ, and the
asker pulls (``FactPull``) the origins the peer is ahead on. The membership push-pull
carries the same digest. A sweep drops the facts of nodes the member table has not known
for a while. The theory of operation is in :mod:`covey.core.state.facts.capability`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from covey.core.config import push_pull_scale
from covey.core.state.facts.events import Entry, NodeFactsDropped
from covey.core.state.messages import FactBatch, FactDigest, FactPull
from covey.core.types import MemberState

if TYPE_CHECKING:
    from covey.core.plugin import Handle
    from covey.core.state.facts.events import FactsEvent
    from covey.core.types import Address

#: Digest exchanges go on for this many intervals after the last change a node saw;
#: an idle cluster is left to the membership push-pull, which carries the digest too.
BUSY_ROUNDS = 5
#: Most octets of facts one FactBatch reply carries; the rest follows at the next sync.
BATCH_BUDGET = 8 << 20
#: Seconds before a pull of the same origin from anyone may be repeated.
PULL_BACKOFF = 1.0
#: Origins remembered as gone (left or reaped) so stale copies are refused.
FORGET_LIMIT = 65536
#: Seconds between sweeps for facts of nodes that are not members.
SWEEP_INTERVAL = 5.0
#: Seconds facts of a node unknown to the member table are kept (its alive may lag).
STRANGER_GRACE = 10.0


def _fingerprint(key: str, seq: int) -> int:
    return (zlib.crc32(key.encode()) << 32 | (seq & 0xFFFFFFFF)) * 0x9E3779B97F4A7C15 & (
        (1 << 64) - 1
    )


class _Origin:
    """The facts of one node, with the digest kept incrementally."""

    __slots__ = ("entries", "fp", "max_seq")

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.max_seq = 0
        self.fp = 0

    def put(self, key: str, seq: int, value: str | None) -> None:
        old = self.entries.get(key)
        if old is not None:
            self.fp = (self.fp - _fingerprint(key, old[0])) % (1 << 64)
        self.entries[key] = (seq, value)
        self.fp = (self.fp + _fingerprint(key, seq)) % (1 << 64)
        self.max_seq = max(self.max_seq, seq)

    def live(self) -> dict[str, str]:
        return {k: v for k, (_, v) in self.entries.items() if v is not None}


class FactsSyncMixin:
    """Digest exchange, pulls and the stranger sweep of the facts extension."""

    if TYPE_CHECKING:
        origins: dict[bytes, _Origin]
        seq: int
        digest_interval: float
        _pulled: dict[bytes, float]
        _strangers: dict[bytes, float]
        _next_digest: float | None
        _busy_until: float
        _next_sweep: float | None

        @property
        def handle(self) -> Handle: ...

        def _accepting(self, origin: bytes) -> bool: ...
        def _tell(self, event: FactsEvent) -> None: ...

    def _answer_digest(self, msg: FactDigest, sender: bytes, now: float) -> FactBatch:
        """Send what differs from the peer's digest; pull what the peer has that we lack."""
        theirs = {o: (s, fp) for o, s, fp in msg.digest}
        send = [o for o, e in self.origins.items() if theirs.get(o) != (e.max_seq, e.fp)]
        want = []
        for origin, (max_seq, _) in theirs.items():
            o = self.origins.get(origin)
            if o is not None and (o.max_seq > max_seq or theirs[origin] == (o.max_seq, o.fp)):
                continue
            if origin == self.handle.node_id:
                if max_seq > self.seq:
                    want.append(origin)
            elif self._accepting(origin) and self.handle.members.get(origin) is not None:
                want.append(origin)
        m = self.handle.members.get(sender)
        if want and m is not None:
            self._pull(m.address, want, now)
        return self._batch(send)

    def _batch(self, origins: Iterable[bytes]) -> FactBatch:
        entries: list[tuple[bytes, str, int, str | None]] = []
        budget = BATCH_BUDGET
        for origin in origins:
            o = self.origins.get(origin)
            if o is None or budget <= 0:
                continue
            for key, (seq, value) in o.entries.items():
                entries.append((origin, key, seq, value))
                budget -= 48 + len(key) + len(value or "")
        return FactBatch(tuple(entries))

    def _pull(self, addr: Address, origins: list[bytes], now: float) -> None:
        wanted = [o for o in origins if self._pulled.get(o, -1e18) + PULL_BACKOFF <= now]
        if not wanted:
            return
        for o in wanted:
            self._pulled[o] = now
        self.handle.open_stream(addr, [FactPull(tuple(wanted))], now=now)

    def _busy(self, now: float) -> None:
        """Something changed: exchange digests for the next BUSY_ROUNDS intervals."""
        if now + self.digest_interval <= self._busy_until:
            return  # the hot path of a burst: nothing to move yet
        if self._next_digest is not None and self._next_digest < now:
            # Idle until now: the first exchange comes one interval later, not at once
            # (gossip is still carrying the change).
            self._next_digest = now + self.digest_interval * (0.5 + self.handle.rng.random())
        self._busy_until = now + BUSY_ROUNDS * self.digest_interval

    def _digest_round(self, now: float) -> None:
        node = self.handle
        scale = push_pull_scale(node.members.live_count)
        self._next_digest = now + self.digest_interval * scale * (0.75 + 0.5 * node.rng.random())
        live = node.members.live_count - 1
        if live < 1:
            return
        # The k-th live member other than us, without building a list of all of them.
        k = node.rng.randrange(live)
        for nid, m in node.members.members.items():
            if nid == node.node_id or m.state not in (MemberState.ALIVE, MemberState.SUSPECT):
                continue
            if k == 0:
                digest = tuple((o, e.max_seq, e.fp) for o, e in self.origins.items())
                node.open_stream(m.address, [FactDigest(digest)], now=now)
                return
            k -= 1

    def _sweep(self, now: float) -> None:
        """Drop facts of nodes the member table has not known for STRANGER_GRACE seconds.

        Facts may arrive by gossip before the alive of a new member, so unknown origins are
        accepted; but a node that joins just as another leaves can pull the leaver's facts
        from a peer that has not yet heard of the leave, and never learn of the leaver as a
        member at all. Such facts are dropped here.
        """
        self._next_sweep = now + SWEEP_INTERVAL
        table = self.handle.members
        for origin in list(self.origins):
            if origin == self.handle.node_id or table.get(origin) is not None:
                self._strangers.pop(origin, None)
                continue
            first = self._strangers.setdefault(origin, now)
            if now - first >= STRANGER_GRACE:
                del self.origins[origin]
                del self._strangers[origin]
                self._tell(NodeFactsDropped(origin.hex(), origin, now))
        for origin in list(self._strangers):
            if origin not in self.origins:
                del self._strangers[origin]

    # ------------------------------------------------------------------ anti-entropy

    def sync_state(self) -> Any:
        return [[nid, o.max_seq, o.fp] for nid, o in self.origins.items()]

    def merge_sync_state(self, state: Any, sender: bytes, now: float) -> None:
        if not isinstance(state, list) or len(state) > 4 * FORGET_LIMIT:
            return
        want: list[bytes] = []
        for item in state:
            if (
                not isinstance(item, list)
                or len(item) != 3
                or type(item[0]) is not bytes
                or len(item[0]) != 16
                or type(item[1]) is not int
                or type(item[2]) is not int
            ):
                continue
            origin, max_seq, fp = item
            o = self.origins.get(origin)
            if o is not None and (o.max_seq, o.fp) == (max_seq, fp):
                continue
            if origin == self.handle.node_id:
                if max_seq > self.seq:
                    want.append(origin)  # our own facts from a past life: refute them
            elif self._accepting(origin) and self.handle.members.get(origin) is not None:
                # Push-pull merges members first: a real member is known by now.
                want.append(origin)
        m = self.handle.members.get(sender)
        if want and m is not None:
            self._pull(m.address, want, now)
