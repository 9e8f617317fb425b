"""Anti-entropy of the facts capability: a component each :class:`~.capability.Facts` owns.

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
from typing import TYPE_CHECKING, Any, Protocol

from covey.core.config import push_pull_scale
from covey.core.state.facts.events import Entry
from covey.core.state.messages import FactBatch, FactDigest, FactPull
from covey.core.types import MemberState

if TYPE_CHECKING:
    from covey.core.plugin import Handle
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


class Origin:
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


class FactTable(Protocol):
    """What the anti-entropy reads of its owner: the fact table and who is accepted."""

    @property
    def handle(self) -> Handle: ...
    @property
    def origins(self) -> dict[bytes, Origin]:
        """node id → that node's facts (the table itself, not a copy)."""
        ...

    @property
    def seq(self) -> int:
        """Our own fact counter."""
        ...

    def accepting(self, origin: bytes) -> bool:
        """False for a node that left or was reaped: its facts are refused."""
        ...

    def drop_origin(self, origin: bytes, now: float) -> None:
        """Forget every fact of ``origin`` (and tell the listeners)."""
        ...


class AntiEntropy:
    """Digest exchanges, pulls and the stranger sweep over one node's fact table.

    Owns its own schedule (the next digest, the busy window, the next sweep) and the pull
    backoff; reads and prunes the owner's table through :class:`FactTable`.

    Args:
        table: the owner's fact table (the :class:`~.capability.Facts` it belongs to).
        digest_interval: seconds between digest exchanges while busy (see ``Facts``).
    """

    def __init__(self, table: FactTable, digest_interval: float) -> None:
        self.table = table
        self.digest_interval = digest_interval
        self._next_digest: float | None = None
        self._busy_until = 0.0
        self._next_sweep: float | None = None
        self._pulled: dict[bytes, float] = {}  # origin -> when we last pulled it
        self._strangers: dict[bytes, float] = {}  # origin -> first seen without a member

    def start(self, now: float) -> None:
        """The node started: schedule the first sweep and digest, and be busy a while."""
        self._next_sweep = now + SWEEP_INTERVAL
        rng = self.table.handle.rng
        self._next_digest = now + self.digest_interval * (0.5 + rng.random())
        self.busy(now)

    def forget_pull(self, origin: bytes) -> None:
        """``origin``'s facts came in (or were dropped): a new pull may go at once."""
        self._pulled.pop(origin, None)

    # ------------------------------------------------------------------ schedule

    def next_deadline(self) -> float | None:
        """The next digest exchange when it falls in the busy window, else None."""
        digest = self._next_digest
        if digest is None or digest > self._busy_until:
            return None
        return digest

    def next_soft_deadline(self) -> float | None:
        """The next sweep of strangers' facts (it may run up to a probe interval late)."""
        return self._next_sweep

    def on_timer(self, now: float) -> None:
        """Run the digest exchange and the sweep that are due."""
        digest = self._next_digest
        if digest is not None and digest <= now < self._busy_until:
            self._digest_round(now)
        if self._next_sweep is not None and now >= self._next_sweep:
            self._sweep(now)

    def busy(self, now: float) -> None:
        """Something changed: exchange digests for the next BUSY_ROUNDS intervals."""
        if now + self.digest_interval <= self._busy_until:
            return  # the hot path of a burst: nothing to move yet
        if self._next_digest is not None and self._next_digest < now:
            # Idle until now: the first exchange comes one interval later, not at once
            # (gossip is still carrying the change).
            rng = self.table.handle.rng
            self._next_digest = now + self.digest_interval * (0.5 + rng.random())
        self._busy_until = now + BUSY_ROUNDS * self.digest_interval

    # ------------------------------------------------------------------ exchanges

    def answer_digest(self, msg: FactDigest, sender: bytes, now: float) -> FactBatch:
        """Send what differs from the peer's digest; pull what the peer has that we lack."""
        origins, handle = self.table.origins, self.table.handle
        theirs = {o: (s, fp) for o, s, fp in msg.digest}
        send = [o for o, e in origins.items() if theirs.get(o) != (e.max_seq, e.fp)]
        want = []
        for origin, (max_seq, _) in theirs.items():
            o = origins.get(origin)
            if o is not None and (o.max_seq > max_seq or theirs[origin] == (o.max_seq, o.fp)):
                continue
            if origin == handle.node_id:
                if max_seq > self.table.seq:
                    want.append(origin)
            elif self.table.accepting(origin) and handle.members.get(origin) is not None:
                want.append(origin)
        m = handle.members.get(sender)
        if want and m is not None:
            self.pull(m.address, want, now)
        return self.batch(send)

    def batch(self, origins: Iterable[bytes]) -> FactBatch:
        """Every entry of ``origins`` we hold, up to BATCH_BUDGET octets."""
        entries: list[tuple[bytes, str, int, str | None]] = []
        budget = BATCH_BUDGET
        for origin in origins:
            o = self.table.origins.get(origin)
            if o is None or budget <= 0:
                continue
            for key, (seq, value) in o.entries.items():
                entries.append((origin, key, seq, value))
                budget -= 48 + len(key) + len(value or "")
        return FactBatch(tuple(entries))

    def pull(self, addr: Address, origins: list[bytes], now: float) -> None:
        """Ask ``addr`` for the facts of ``origins`` (those not pulled in PULL_BACKOFF)."""
        wanted = [o for o in origins if self._pulled.get(o, -1e18) + PULL_BACKOFF <= now]
        if not wanted:
            return
        for o in wanted:
            self._pulled[o] = now
        self.table.handle.open_stream(addr, [FactPull(tuple(wanted))], now=now)

    def _digest_round(self, now: float) -> None:
        node = self.table.handle
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
                digest = tuple((o, e.max_seq, e.fp) for o, e in self.table.origins.items())
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
        handle, origins = self.table.handle, self.table.origins
        for origin in list(origins):
            if origin == handle.node_id or handle.members.get(origin) is not None:
                self._strangers.pop(origin, None)
                continue
            first = self._strangers.setdefault(origin, now)
            if now - first >= STRANGER_GRACE:
                del self._strangers[origin]
                self.table.drop_origin(origin, now)
        for origin in list(self._strangers):
            if origin not in origins:
                del self._strangers[origin]

    # ------------------------------------------------------------------ push-pull

    def sync_state(self) -> Any:
        """Our digest for a push-pull: [[origin, highest seq, fingerprint], ...]."""
        return [[nid, o.max_seq, o.fp] for nid, o in self.table.origins.items()]

    def merge_sync_state(self, state: Any, sender: bytes, now: float) -> None:
        """Pull from ``sender`` the origins its push-pull digest shows us behind on."""
        if not isinstance(state, list) or len(state) > 4 * FORGET_LIMIT:
            return
        handle, origins = self.table.handle, self.table.origins
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
            o = origins.get(origin)
            if o is not None and (o.max_seq, o.fp) == (max_seq, fp):
                continue
            if origin == handle.node_id:
                if max_seq > self.table.seq:
                    want.append(origin)  # our own facts from a past life: refute them
            elif self.table.accepting(origin) and handle.members.get(origin) is not None:
                # Push-pull merges members first: a real member is known by now.
                want.append(origin)
        m = handle.members.get(sender)
        if want and m is not None:
            self.pull(m.address, want, now)
