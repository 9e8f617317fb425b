"""Facts: small key → value state every node publishes and every node holds (seed 000).

Theory of operation. Each node is the only author of its own facts. It numbers every
change with its own counter ``seq`` (set or delete; a deletion stays as a tombstone), so
for one (origin, key) the entry with the higher ``seq`` is the newer one, and merging is a
plain "keep the higher seq" that gives the same result in any order on every node.

Changes spread two ways:

* **gossip** — a change goes out as ``FactUpdate`` through ``handle.gossip`` keyed
  by (origin, key), so a later change to the same key replaces an unsent earlier one;
  receivers re-gossip what was news to them. A change too big for a datagram goes out as
  a ``FactNotice`` (origin, seq) instead, and whoever is behind pulls the origin's facts
  from the node it heard the notice from, over TCP (``FactPull`` → ``FactBatch``).
* **anti-entropy** — every push-pull carries a digest: per origin its highest ``seq`` and
  a fingerprint of its (key, seq) pairs. Where a peer's digest differs from ours, we pull
  that origin's facts from the peer. Holes left by lost gossip close at the next exchange.

Membership decides whose facts are kept: a member that left, or was reaped, has its facts
dropped and refused until it joins again; a failed member keeps them (it may come back).
If a node hears of its own facts with a newer ``seq`` than it knows (it lost its store),
it jumps its counter past that and re-publishes what it really holds — the same
refutation SWIM uses for incarnations.

Published facts survive a restart as **effects**: every change of our own facts is handed
out as a :class:`SaveFact` through ``handle.persist``, which the runtime makes durable
(SQLite in the data directory) before anything of that step leaves the node; what the
store held is given back at construction (``restored``). The anti-entropy (digests,
pulls, the stranger sweep) is an :class:`~.sync.AntiEntropy` component each Facts owns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from covey.core.events import MemberEvent, MemberJoined, MemberLeft, MemberReaped, MemberRecovered
from covey.core.plugin import Extension, ExtensionMessage
from covey.core.state.facts.events import (
    Entry,
    FactChanged,
    FactsEvent,
    Listener,
    LowestVersionChanged,
    NodeFactsDropped,
    Restored,
    SaveFact,
)
from covey.core.state.facts.sync import FORGET_LIMIT, AntiEntropy, Origin
from covey.core.state.messages import (
    MAX_KEYS,
    FactBatch,
    FactDigest,
    FactNotice,
    FactPull,
    FactUpdate,
    LimitError,
    check_key,
    check_value,
)
from covey.core.state.versions import VERSION_KEY, VersionError, lowest_version, parse_version
from covey.core.types import MemberState

if TYPE_CHECKING:
    from covey.core.types import Address

__all__ = [
    "VERSION_KEY",
    "Entry",
    "FactChanged",
    "Facts",
    "FactsEvent",
    "Listener",
    "LowestVersionChanged",
    "NodeFactsDropped",
    "Restored",
    "SaveFact",
]


class Facts(Extension):
    """The facts capability: publish ours, hold everyone's, compute the lowest version.

    Args:
        restored: (counter, key → (seq, value or None)) of our own facts as the store
            held them at start (None: nothing stored, or memory only).
        count_failed: count failed (not left) members in the lowest version.
        digest_interval: seconds between digest exchanges with one random member (scaled
            like push-pull in large clusters); closes holes gossip left much sooner than
            the membership push-pull does.
    """

    name = "facts"
    message_types = (FactUpdate, FactNotice, FactPull, FactBatch, FactDigest)

    def __init__(
        self,
        *,
        restored: Restored | None = None,
        count_failed: bool = False,
        digest_interval: float = 2.0,
    ) -> None:
        super().__init__()
        self.count_failed = count_failed
        self.origins: dict[bytes, Origin] = {}
        self.seq = 0
        self.listeners: list[Listener] = []
        self.listener_errors = 0
        self.sync = AntiEntropy(self, digest_interval)
        self._forgotten: dict[bytes, float] = {}
        self._lowest: str | None = None
        self._own_restored: dict[str, Entry] = {}
        if restored is not None:
            self.seq, self._own_restored = restored[0], dict(restored[1])

    @property
    def digest_interval(self) -> float:
        """Seconds between digest exchanges while busy (see the class docstring)."""
        return self.sync.digest_interval

    # ------------------------------------------------------------------ our facts

    def on_start(self, now: float) -> None:
        own = self._origin(self.handle.node_id)
        for key, (seq, value) in self._own_restored.items():
            own.put(key, seq, value)
        self.seq = max(self.seq, own.max_seq)
        self.sync.start(now)
        self._check_lowest(now)

    def set(self, key: str, value: str, now: float) -> bool:
        """Publish ``key`` = ``value``; False if it already had that value.

        Raises:
            LimitError: bad key or value, or more than ``MAX_KEYS`` facts.
        """
        check_key(key)
        check_value(value)
        if key == VERSION_KEY:
            try:
                parse_version(value)
            except VersionError as exc:
                raise LimitError(f"value: {exc}") from None
        own = self._origin(self.handle.node_id)
        old = own.entries.get(key)
        if old is not None and old[1] == value:
            return False
        if (old is None or old[1] is None) and len(own.live()) >= MAX_KEYS:
            raise LimitError(f"key: {MAX_KEYS} facts published already")
        self._publish(key, value, now)
        return True

    def delete(self, key: str, now: float) -> bool:
        """Withdraw fact ``key``; False if we had no such fact."""
        old = self._origin(self.handle.node_id).entries.get(key)
        if old is None or old[1] is None:
            return False
        self._publish(key, None, now)
        return True

    def _publish(self, key: str, value: str | None, now: float) -> None:
        self.seq += 1
        self.handle.persist(SaveFact(self.seq, key, value))
        self._store(self.handle.node_id, key, self.seq, value, now)
        self._spread(FactUpdate(self.handle.node_id, self.seq, key, value), now, direct=True)

    def _spread(self, msg: FactUpdate, now: float, *, direct: bool = False) -> None:
        cfg = self.handle.config
        room = self.handle.payload_limit - 64 - len(cfg.cluster.encode())
        size = 40 + len(msg.key.encode()) + len((msg.value or "").encode())
        if size <= room:
            key = b"f" + msg.origin + msg.key.encode()
            self.handle.gossip(key, msg, now=now, direct=direct)
        else:
            notice = FactNotice(msg.origin, self._origin(msg.origin).max_seq)
            self.handle.gossip(b"n" + msg.origin, notice, now=now)

    # ------------------------------------------------------------------ queries

    def facts_of(self, node_id: bytes) -> dict[str, str]:
        """The facts (key → value) of one node, as this node holds them."""
        o = self.origins.get(node_id)
        return {} if o is None else o.live()

    def all_facts(self) -> dict[bytes, dict[str, str]]:
        """node id → facts, for every node we hold facts of."""
        return {nid: o.live() for nid, o in self.origins.items()}

    def digest(self) -> dict[bytes, tuple[int, int]]:
        """node id → (highest seq, fingerprint): equal digests mean equal facts."""
        return {nid: (o.max_seq, o.fp) for nid, o in self.origins.items()}

    @property
    def local_version(self) -> str | None:
        """Our own published version, if any."""
        return self.facts_of(self.handle.node_id).get(VERSION_KEY)

    def counted_members(self) -> list[bytes]:
        """Ids of the members the lowest version is computed over (us included)."""
        states = {MemberState.ALIVE, MemberState.SUSPECT}
        if self.count_failed:
            states.add(MemberState.FAILED)
        return [nid for nid, m in self.handle.members.members.items() if m.state in states]

    def versions(self) -> dict[bytes, str | None]:
        """node id → published version (None if none yet) of every counted member."""
        return {nid: self.facts_of(nid).get(VERSION_KEY) for nid in self.counted_members()}

    def lowest_version(self) -> str | None:
        """Lowest version over the counted members; None while any is missing or invalid."""
        return lowest_version(self.versions().values())

    # ------------------------------------------------------------------ receiving

    def on_message(self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float) -> None:
        if isinstance(msg, FactUpdate):
            if self._apply(msg.origin, msg.key, msg.seq, msg.value, now):
                # In a small cluster the origin sends its changes to every member itself
                # (and gossips them): relaying what came from the origin would only
                # multiply the traffic by the cluster size. Holes close by digest.
                small = self.handle.members.live_count <= self.handle.config.direct_push_limit
                if not (small and sender == msg.origin):
                    self._spread(msg, now)
                self._check_lowest(now)
        elif isinstance(msg, FactNotice):
            o = self.origins.get(msg.origin)
            behind = o is None or o.max_seq < msg.seq
            if behind and msg.origin != self.handle.node_id and self.accepting(msg.origin):
                self.sync.pull(addr, [msg.origin], now)
        elif isinstance(msg, FactBatch):
            news: set[bytes] = set()
            for origin, key, seq, value in msg.entries:
                if self._apply(origin, key, seq, value, now):
                    news.add(origin)
            for origin in news:
                self.sync.forget_pull(origin)
                notice = FactNotice(origin, self.origins[origin].max_seq)
                self.handle.gossip(b"n" + origin, notice, now=now)
            if news:
                self._check_lowest(now)

    def on_stream(
        self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float
    ) -> list[ExtensionMessage]:
        if isinstance(msg, FactDigest):
            return [self.sync.answer_digest(msg, sender, now)]
        if not isinstance(msg, FactPull):
            self.on_message(msg, sender, addr, now)
            return []
        return [self.sync.batch(msg.origins)]

    def accepting(self, origin: bytes) -> bool:
        """False for a node that left or was reaped: its facts are refused until it joins."""
        if origin in self._forgotten:
            return False
        m = self.handle.members.get(origin)
        return m is None or m.state is not MemberState.LEFT

    def _apply(self, origin: bytes, key: str, seq: int, value: str | None, now: float) -> bool:
        """Merge one entry; True when it was news (stored)."""
        if origin == self.handle.node_id:
            self._refute(key, seq, value, now)
            return False
        if not self.accepting(origin):
            return False
        o = self.origins.get(origin)
        old = None if o is None else o.entries.get(key)
        if old is not None and old[0] >= seq:
            return False
        if o is None and value is not None and len(self.origins) >= 4 * FORGET_LIMIT:
            return False  # a flood of invented origins: refuse rather than grow forever
        self._store(origin, key, seq, value, now)
        return True

    def _refute(self, key: str, seq: int, value: str | None, now: float) -> None:
        """Someone holds a fact of ours we do not know: re-assert what we really hold."""
        mine = self._origin(self.handle.node_id).entries.get(key)
        if mine is not None and (mine[0] > seq or (mine[0] == seq and mine[1] == value)):
            return
        if mine is None and value is None:
            self.seq = max(self.seq, seq)
            return
        self.seq = max(self.seq, seq)
        self._publish(key, None if mine is None else mine[1], now)

    def _store(self, origin: bytes, key: str, seq: int, value: str | None, now: float) -> None:
        self._origin(origin).put(key, seq, value)
        self.sync.busy(now)
        m = self.handle.members.get(origin)
        name = m.name if m is not None else origin.hex()
        self._tell(FactChanged(name, origin, key, value, seq, now))

    def _origin(self, origin: bytes) -> Origin:
        o = self.origins.get(origin)
        if o is None:
            o = self.origins[origin] = Origin()
        return o

    def drop_origin(self, origin: bytes, now: float) -> None:
        """Forget every fact of ``origin``, a node the member table does not know."""
        if self.origins.pop(origin, None) is not None:
            self._tell(NodeFactsDropped(origin.hex(), origin, now))

    def _tell(self, event: FactsEvent) -> None:
        self.handle.emit(event)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                self.listener_errors += 1  # the caller's bug must not break the protocol

    def _check_lowest(self, now: float) -> None:
        new = self.lowest_version()
        if new != self._lowest:
            old, self._lowest = self._lowest, new
            self._tell(LowestVersionChanged(old, new, now))

    # ------------------------------------------------------------------ membership

    def on_member_event(self, event: MemberEvent, now: float) -> None:
        nid = event.member.node_id
        if nid == self.handle.node_id:
            return
        if isinstance(event, MemberLeft | MemberReaped):
            if self.origins.pop(nid, None) is not None:
                self.sync.forget_pull(nid)
                self._tell(NodeFactsDropped(event.member.name, nid, now))
            if len(self._forgotten) >= FORGET_LIMIT:
                self._forgotten.pop(next(iter(self._forgotten)))
            self._forgotten[nid] = now
        elif isinstance(event, MemberJoined | MemberRecovered):
            self._forgotten.pop(nid, None)
            self.sync.busy(now)
        self._check_lowest(now)

    def next_deadline(self) -> float | None:
        return self.sync.next_deadline()

    def next_soft_deadline(self) -> float | None:
        return self.sync.next_soft_deadline()

    def on_timer(self, now: float) -> None:
        self.sync.on_timer(now)

    # ------------------------------------------------------------------ push-pull

    def sync_state(self) -> Any:
        return self.sync.sync_state()

    def merge_sync_state(self, state: Any, sender: bytes, now: float) -> None:
        self.sync.merge_sync_state(state, sender, now)
