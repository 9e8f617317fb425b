"""Dissemination: what a node queues for gossip, and the rounds that spread it.

The :class:`Disseminator` holds the gossip queue's entry points (our own alive, news to
spread, the direct push to every member of a small cluster) and the gossip rounds that
send queued news to a few random live members: the periodic round every gossip interval
and, with eager gossip, one extra round as soon as there is news. Queued news also rides
on every datagram the node sends (the :class:`~.outbox.Outbox` piggybacks it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from covey.core.config import CoreConfig
from covey.core.member import Member
from covey.core.membership.gossip_queue import GossipQueue
from covey.core.membership.outbox import Outbox
from covey.core.membership.table import MemberTable
from covey.core.wire.frame import encode_message_bytes
from covey.core.wire.messages import Alive, Message


class Disseminator:
    """Gossip for one node: queues news and runs the gossip rounds.

    Args:
        config: gossip timings and fan-out.
        table: the member table (our own record, the live members).
        gossip: the queue of news (shared with the outbox, which piggybacks it).
        outbox: where gossip datagrams go.
        now: the current monotonic time (the phase of the gossip ticker).
        pick: picks up to k random live members (the prober's).
    """

    def __init__(
        self,
        config: CoreConfig,
        table: MemberTable,
        gossip: GossipQueue,
        outbox: Outbox,
        *,
        now: float,
        pick: Callable[[int, bytes | None], list[Member]],
    ) -> None:
        self._config = config
        self._table = table
        self._gossip = gossip
        self._outbox = outbox
        self._pick = pick
        self._next_gossip = now
        self._eager_at: float | None = None

    def self_alive(self) -> Alive:
        """Our own alive message (tag-less when the tags would crowd a datagram)."""
        local = self._table.local
        alive = Alive(local.incarnation, local.node_id, local.name, local.address, local.tags)
        if len(encode_message_bytes(alive)) > self._outbox.max_body // 2:
            return Alive(local.incarnation, local.node_id, local.name, local.address, None)
        return alive

    def queue_self_alive(self, now: float, *, direct: bool = False) -> None:
        """Spread our own alive (``direct``: to every member of a small cluster as well)."""
        encoded = self.queue(self._table.local.node_id, self.self_alive(), now)
        if direct:
            self.push_direct(encoded, now)

    def queue(self, key: bytes, msg: Message, now: float, *, bulk: bool = False) -> bytes:
        """Queue ``msg`` about ``key`` for gossip; returns its encoding.

        ``bulk`` marks mere news (members learned from a peer's table): it only fills room.
        """
        encoded = encode_message_bytes(msg)
        max_body = self._outbox.max_body
        if isinstance(msg, Alive) and msg.tags is not None and len(encoded) > max_body // 2:
            # Large tags travel by push-pull; the alive only says that they changed.
            encoded = encode_message_bytes(
                Alive(msg.incarnation, msg.node_id, msg.name, msg.address, None)
            )
        self._gossip.push(key, encoded, bulk=bulk)
        if self._next_gossip < now:
            # The gossip ticker keeps its phase while idle; news waits for its next tick
            # (unless eager push sends it at once).
            interval = self._config.gossip_interval
            self._next_gossip += math.ceil((now - self._next_gossip) / interval) * interval
        if self._config.eager_gossip and not bulk:
            self._eager_at = now
        return encoded

    def push_direct(self, encoded: bytes, now: float) -> None:
        """Send ``encoded`` to every live member at once, if the cluster is small enough."""
        if self._table.live_count <= self._config.direct_push_limit:
            self.tell_all([encoded], now)

    def tell_all(self, encoded: list[bytes], now: float) -> None:
        """Send ``encoded`` in one datagram to each live member (no gossip added)."""
        local = self._table.local
        for m in list(self._table.live()):
            if m is not local:
                self._outbox.send(m.address, encoded, now, piggyback=False)

    def deadline(self) -> float | None:
        """When :meth:`on_timer` must next run; None while nothing is queued."""
        if not len(self._gossip):
            return None
        if self._eager_at is not None:
            return min(self._next_gossip, self._eager_at)
        return self._next_gossip

    def on_timer(self, now: float) -> None:
        """Run the eager round and the periodic round when due."""
        if self._eager_at is not None and now >= self._eager_at:
            self._eager_at = None
            if self._gossip.has_fresh():
                self._round(now, fresh_only=True)
        if len(self._gossip) and now >= self._next_gossip:
            self._round(now)

    def _round(self, now: float, *, fresh_only: bool = False) -> None:
        n = self._table.live_count
        budget = self._outbox.gossip_budget
        if fresh_only:
            # Eager push: news goes to gossip_nodes members at once, once each.
            targets = self._pick(self._config.gossip_nodes, None)
            picked = self._gossip.take(budget, 0, n, fresh_only=True) if targets else []
            for m in targets:
                if picked:
                    self._outbox.send(m.address, picked, now, piggyback=False)
            return
        self._next_gossip = now + self._config.gossip_interval
        for m in self._pick(self._config.gossip_nodes, None):
            picked = self._gossip.take(budget, 0, n)
            if not picked:
                break
            self._outbox.send(m.address, picked, now, piggyback=False)
