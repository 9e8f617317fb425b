"""Facts: small key → value state every node publishes and every node holds (seed 000).

Theory of operation. Each node is the only author of its own facts. It numbers every
change with its own counter ``seq`` (set or delete; a deletion stays as a tombstone), so
for one (origin, key) the entry with the higher ``seq`` is the newer one, and merging is a
plain "keep the higher seq" that gives the same result in any order on every node.

Changes spread two ways:

* **gossip** — a change goes out as ``FactUpdate`` through ``node.gossip_message`` keyed
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
refutation SWIM uses for incarnations. Published facts survive a restart through a
:class:`FactStore` given by the runtime (SQLite in the data directory).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .events import MemberEvent, MemberJoined, MemberLeft, MemberReaped, MemberRecovered
from .extension import Extension, ExtensionEvent, ExtensionMessage
from .shared_msgs import (
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
from .types import MemberState
from .versions import VersionError, lowest_version, parse_version

if TYPE_CHECKING:
    from .types import Address

#: The well-known fact that carries a node's software version.
VERSION_KEY = "covey.version"
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

Entry = tuple[int, str | None]  # (seq, value or None for deleted)


class FactStore(Protocol):
    """Where a node keeps its own facts across restarts (the runtime's SQLite file)."""

    def load(self) -> tuple[int, dict[str, Entry]]:
        """(counter, key → (seq, value or None)) as last saved."""
        ...

    def save(self, seq: int, key: str, value: str | None) -> None:
        """Record one change of our own facts."""
        ...


@dataclass(frozen=True, slots=True)
class FactChanged(ExtensionEvent):
    """A fact of ``node`` was set (``value``) or deleted (``value`` None)."""

    node: str
    node_id: bytes
    key: str
    value: str | None
    seq: int
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "fact",
            "node": self.node,
            "id": self.node_id.hex(),
            "key": self.key,
            "value": self.value,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class LowestVersionChanged(ExtensionEvent):
    """The cluster's lowest version changed (None: unknown for now)."""

    old: str | None
    new: str | None
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"event": "lowest_version", "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class NodeFactsDropped(ExtensionEvent):
    """Every fact of ``node`` was dropped: it left or was reaped."""

    node: str
    node_id: bytes
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"event": "facts_dropped", "node": self.node, "id": self.node_id.hex()}


FactsEvent = FactChanged | LowestVersionChanged | NodeFactsDropped
Listener = Callable[[FactsEvent], None]


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


class Facts(Extension):
    """The facts extension: publish ours, hold everyone's, compute the lowest version.

    Args:
        store: keeps our own facts across restarts (None: memory only).
        count_failed: count failed (not left) members in the lowest version.
        digest_interval: seconds between digest exchanges with one random member (scaled
            like push-pull in large clusters); closes holes gossip left much sooner than
            the membership push-pull does.
    """

    name = "facts"
    message_types = (FactUpdate, FactNotice, FactPull, FactBatch, FactDigest)

    def __init__(
        self,
        store: FactStore | None = None,
        *,
        count_failed: bool = False,
        digest_interval: float = 2.0,
    ) -> None:
        super().__init__()
        self.digest_interval = digest_interval
        self._next_digest: float | None = None
        self.store = store
        self.count_failed = count_failed
        self.origins: dict[bytes, _Origin] = {}
        self.seq = 0
        self.listeners: list[Listener] = []
        self.listener_errors = 0
        self._forgotten: dict[bytes, float] = {}
        self._pulled: dict[bytes, float] = {}
        self._lowest: str | None = None
        self._own_loaded: dict[str, Entry] = {}
        self._strangers: dict[bytes, float] = {}  # origin -> first seen without a member
        self._next_sweep: float | None = None
        if store is not None:
            self.seq, self._own_loaded = store.load()

    # ------------------------------------------------------------------ our facts

    def on_start(self, now: float) -> None:
        own = self._origin(self.node.node_id)
        for key, (seq, value) in self._own_loaded.items():
            own.put(key, seq, value)
        self.seq = max(self.seq, own.max_seq)
        self._next_sweep = now + SWEEP_INTERVAL
        self._next_digest = now + self.digest_interval * (0.5 + self.node.rng.random())
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
        own = self._origin(self.node.node_id)
        old = own.entries.get(key)
        if old is not None and old[1] == value:
            return False
        if (old is None or old[1] is None) and len(own.live()) >= MAX_KEYS:
            raise LimitError(f"key: {MAX_KEYS} facts published already")
        self._publish(key, value, now)
        return True

    def delete(self, key: str, now: float) -> bool:
        """Withdraw fact ``key``; False if we had no such fact."""
        old = self._origin(self.node.node_id).entries.get(key)
        if old is None or old[1] is None:
            return False
        self._publish(key, None, now)
        return True

    def _publish(self, key: str, value: str | None, now: float) -> None:
        self.seq += 1
        if self.store is not None:
            self.store.save(self.seq, key, value)
        self._store(self.node.node_id, key, self.seq, value, now)
        self._spread(FactUpdate(self.node.node_id, self.seq, key, value), now)

    def _spread(self, msg: FactUpdate, now: float) -> None:
        cfg = self.node.config
        room = self.node.keyring.max_body(cfg.max_datagram) - 64 - len(cfg.cluster.encode())
        size = 40 + len(msg.key.encode()) + len((msg.value or "").encode())
        if size <= room:
            self.node.gossip_message(b"f" + msg.origin + msg.key.encode(), msg, now=now)
        else:
            notice = FactNotice(msg.origin, self._origin(msg.origin).max_seq)
            self.node.gossip_message(b"n" + msg.origin, notice, now=now)

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
        return self.facts_of(self.node.node_id).get(VERSION_KEY)

    def counted_members(self) -> list[bytes]:
        """Ids of the members the lowest version is computed over (us included)."""
        states = {MemberState.ALIVE, MemberState.SUSPECT}
        if self.count_failed:
            states.add(MemberState.FAILED)
        return [nid for nid, m in self.node.table.members.items() if m.state in states]

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
                self._spread(msg, now)
                self._check_lowest(now)
        elif isinstance(msg, FactNotice):
            o = self.origins.get(msg.origin)
            behind = o is None or o.max_seq < msg.seq
            if behind and msg.origin != self.node.node_id and self._accepting(msg.origin):
                self._pull(addr, [msg.origin], now)
        elif isinstance(msg, FactBatch):
            news: set[bytes] = set()
            for origin, key, seq, value in msg.entries:
                if self._apply(origin, key, seq, value, now):
                    news.add(origin)
            for origin in news:
                self._pulled.pop(origin, None)
                notice = FactNotice(origin, self.origins[origin].max_seq)
                self.node.gossip_message(b"n" + origin, notice, now=now)
            if news:
                self._check_lowest(now)

    def on_stream(
        self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float
    ) -> list[ExtensionMessage]:
        if isinstance(msg, FactDigest):
            return [self._answer_digest(msg, sender, now)]
        if not isinstance(msg, FactPull):
            self.on_message(msg, sender, addr, now)
            return []
        return [self._batch(msg.origins)]

    def _answer_digest(self, msg: FactDigest, sender: bytes, now: float) -> FactBatch:
        """Send what differs from the peer's digest; pull what the peer has that we lack."""
        theirs = {o: (s, fp) for o, s, fp in msg.digest}
        send = [o for o, e in self.origins.items() if theirs.get(o) != (e.max_seq, e.fp)]
        want = []
        for origin, (max_seq, _) in theirs.items():
            o = self.origins.get(origin)
            if o is not None and (o.max_seq > max_seq or theirs[origin] == (o.max_seq, o.fp)):
                continue
            if origin == self.node.node_id:
                if max_seq > self.seq:
                    want.append(origin)
            elif self._accepting(origin) and self.node.table.get(origin) is not None:
                want.append(origin)
        m = self.node.table.get(sender)
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
        self.node.open_stream(addr, [FactPull(tuple(wanted))], now=now)

    def _accepting(self, origin: bytes) -> bool:
        if origin in self._forgotten:
            return False
        m = self.node.table.get(origin)
        return m is None or m.state is not MemberState.LEFT

    def _apply(self, origin: bytes, key: str, seq: int, value: str | None, now: float) -> bool:
        """Merge one entry; True when it was news (stored)."""
        if origin == self.node.node_id:
            self._refute(key, seq, value, now)
            return False
        if not self._accepting(origin):
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
        mine = self._origin(self.node.node_id).entries.get(key)
        if mine is not None and (mine[0] > seq or (mine[0] == seq and mine[1] == value)):
            return
        if mine is None and value is None:
            self.seq = max(self.seq, seq)
            return
        self.seq = max(self.seq, seq)
        self._publish(key, None if mine is None else mine[1], now)

    def _store(self, origin: bytes, key: str, seq: int, value: str | None, now: float) -> None:
        self._origin(origin).put(key, seq, value)
        m = self.node.table.get(origin)
        name = m.name if m is not None else origin.hex()
        self._tell(FactChanged(name, origin, key, value, seq, now))

    def _origin(self, origin: bytes) -> _Origin:
        o = self.origins.get(origin)
        if o is None:
            o = self.origins[origin] = _Origin()
        return o

    def _tell(self, event: FactsEvent) -> None:
        self.node.emit(event)
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
        if nid == self.node.node_id:
            return
        if isinstance(event, MemberLeft | MemberReaped):
            if self.origins.pop(nid, None) is not None:
                self._pulled.pop(nid, None)
                self._tell(NodeFactsDropped(event.member.name, nid, now))
            if len(self._forgotten) >= FORGET_LIMIT:
                self._forgotten.pop(next(iter(self._forgotten)))
            self._forgotten[nid] = now
        elif isinstance(event, MemberJoined | MemberRecovered):
            self._forgotten.pop(nid, None)
        self._check_lowest(now)

    def next_deadline(self) -> float | None:
        if self._next_sweep is None or self._next_digest is None:
            return self._next_sweep
        return min(self._next_sweep, self._next_digest)

    def on_timer(self, now: float) -> None:
        if self._next_digest is not None and now >= self._next_digest:
            self._digest_round(now)
        if self._next_sweep is not None and now >= self._next_sweep:
            self._sweep(now)

    def _digest_round(self, now: float) -> None:
        node = self.node
        scale = node.push_pull_scale()
        self._next_digest = now + self.digest_interval * scale * (0.75 + 0.5 * node.rng.random())
        live = node.table.live_count - 1
        if live < 1:
            return
        # The k-th live member other than us, without building a list of all of them.
        k = node.rng.randrange(live)
        for nid, m in node.table.members.items():
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
        table = self.node.table
        for origin in list(self.origins):
            if origin == self.node.node_id or table.get(origin) is not None:
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
            if origin == self.node.node_id:
                if max_seq > self.seq:
                    want.append(origin)  # our own facts from a past life: refute them
            elif self._accepting(origin) and self.node.table.get(origin) is not None:
                # Push-pull merges members first: a real member is known by now.
                want.append(origin)
        m = self.node.table.get(sender)
        if want and m is not None:
            self._pull(m.address, want, now)
