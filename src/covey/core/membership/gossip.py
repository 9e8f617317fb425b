"""Dissemination: what a node queues for gossip, and the datagrams and beacons it sends.

It holds the gossip queue's entry points (our own alive, news to spread, the direct push
to every member of a small cluster), the beacon handling (answers to starting nodes, the
fast and the steady beacons), the sealing of outbound frames and the gossip rounds that
piggyback queued news onto datagrams to a few random live members.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from covey.core.effects import Datagram, StreamPurpose
from covey.core.membership.node_state import NodeState
from covey.core.types import Address, BeaconState, MemberState
from covey.core.wire.frame import (
    FrameType,
    body_overhead,
    build_frame,
    encode_message_bytes,
    pack_body,
)
from covey.core.wire.messages import Alive, Beacon, Dead, Message

if TYPE_CHECKING:
    from covey.core.member import Member

#: Delays of the first beacons after start, before the steady beacon interval.
_FAST_BEACONS = (0.0, 0.25, 0.5, 1.0, 2.0)


class DisseminationMixin(NodeState):
    """The queueing and sending half of :class:`covey.core.membership.node.Node`."""

    def _self_alive(self) -> Alive:
        local = self.table.local
        alive = Alive(local.incarnation, local.node_id, local.name, local.address, local.tags)
        if len(encode_message_bytes(alive)) > self._max_body // 2:
            return Alive(local.incarnation, local.node_id, local.name, local.address, None)
        return alive

    def _queue_self_alive(self, now: float, *, direct: bool = False) -> None:
        encoded = self._queue(self.node_id, self._self_alive(), now)
        if direct:
            self._push_direct(encoded, now)

    def _queue(self, key: bytes, msg: Message, now: float, *, bulk: bool = False) -> bytes:
        encoded = encode_message_bytes(msg)
        if isinstance(msg, Alive) and msg.tags is not None and len(encoded) > self._max_body // 2:
            # Large tags travel by push-pull; the alive only says that they changed.
            encoded = encode_message_bytes(
                Alive(msg.incarnation, msg.node_id, msg.name, msg.address, None)
            )
        self.gossip.push(key, encoded, bulk=bulk)
        if self._next_gossip < now:
            # The gossip ticker keeps its phase while idle; news waits for its next tick
            # (unless eager push sends it at once).
            interval = self.config.gossip_interval
            self._next_gossip += math.ceil((now - self._next_gossip) / interval) * interval
        if self.config.eager_gossip and not bulk:
            self._eager_at = now
        return encoded

    def _on_beacon(self, b: Beacon, now: float) -> None:
        if b.node_id == self.node_id:
            return  # only we speak for ourselves
        m = self.table.get(b.node_id)
        if b.state is BeaconState.EXIT:
            if m is not None and b.incarnation >= m.incarnation:
                self._apply(Dead(b.incarnation, b.node_id, b.node_id, left=True), now)
            return
        if m is None:
            self.table.apply_alive(
                Alive(b.incarnation, b.node_id, b.name, b.address, None), now, beacon=b.state
            )
            self._on_new_member_maybe(b.node_id, now)
            if not self.joined and not self.joins_in_flight:
                self._open_push_pull(b.address, StreamPurpose.JOIN, b.node_id, now)
            else:
                self._answer_init(b, now)
            return
        self._answer_init(b, now)
        m.beacon_state = b.state
        if m.state not in (MemberState.ALIVE, MemberState.SUSPECT):
            # It speaks, so it lives: a state exchange lets it refute our verdict.
            self._want_sync_with(m, now)
        elif not m.tags_complete and now - m.state_change > 2 * self.config.probe_interval:
            # Its own alive gossip normally brings the tags within moments; it did not.
            self._want_sync_with(m, now)
        elif not self.joined and not self.joins_in_flight:
            self._open_push_pull(b.address, StreamPurpose.JOIN, b.node_id, now)

    def _answer_init(self, b: Beacon, now: float) -> None:
        """Answer a node that just (re)started: settled members send no beacons of their
        own, and a restarted member we still know has an empty table all the same."""
        if b.state is not BeaconState.INIT or not self.joined:
            return
        # About eight answers in all, whatever the cluster's size: no implosion on it.
        if self.rng.random() < 8 / self.table.live_count:
            # The answer says READY even during our own fast start: an INIT answer would
            # be answered in turn, and two starting nodes would ping-pong for ever.
            local = self.table.local
            ready = Beacon(
                local.node_id, local.name, local.address, BeaconState.READY, local.incarnation
            )
            self._emit(b.address, [encode_message_bytes(ready)], now, piggyback=False)

    def _push_direct(self, encoded: bytes, now: float) -> None:
        if self.table.live_count > self.config.direct_push_limit:
            return
        for m in self.table.live():
            if m is not self.table.local:
                self._emit(m.address, [encoded], now, piggyback=False)

    # ------------------------------------------------------------------ sending

    def _emit(
        self, addr: Address | None, encoded: list[bytes], now: float, *, piggyback: bool = True
    ) -> None:
        if piggyback:
            used = sum(len(e) for e in encoded) + body_overhead(self._prefix, 65535)
            encoded = encoded + self.gossip.take(self._max_body - used, 0, self.table.live_count)
        body = pack_body(self._prefix, encoded)
        frame = build_frame(
            FrameType.DATAGRAM,
            self.keyring.security,
            self.keyring.seal(body, now + self.wall_offset),
        )
        self.counters.datagrams_sent += 1
        self.counters.bytes_sent += len(frame)
        self._outbox.append(Datagram(addr, frame))

    def _seal_frame(self, ftype: FrameType, msgs: list[Message], now: float) -> bytes:
        body = pack_body(self._prefix, [encode_message_bytes(m) for m in msgs])
        return build_frame(
            ftype, self.keyring.security, self.keyring.seal(body, now + self.wall_offset)
        )

    def _gossip_round(self, now: float, *, fresh_only: bool = False) -> None:
        n = self.table.live_count
        budget = self._max_body - body_overhead(self._prefix, 65535)
        if fresh_only:
            # Eager push: news goes to gossip_nodes members at once, once each.
            targets = self._random_members(self.config.gossip_nodes, exclude=None)
            picked = self.gossip.take(budget, 0, n, fresh_only=True) if targets else []
            for m in targets:
                if picked:
                    self._emit(m.address, picked, now, piggyback=False)
            return
        self._next_gossip = now + self.config.gossip_interval
        for m in self._random_members(self.config.gossip_nodes, exclude=None):
            picked = self.gossip.take(budget, 0, n)
            if not picked:
                break
            self._emit(m.address, picked, now, piggyback=False)

    def _beacon(self) -> Beacon:
        local = self.table.local
        state = local.beacon_state or BeaconState.INIT
        return Beacon(local.node_id, local.name, local.address, state, local.incarnation)

    def _searching(self) -> bool:
        """True while beacons may find someone: not joined, alone, or missing members."""
        return (
            not self.joined
            or self.table.live_count < 2
            or any(m.state is MemberState.FAILED for m in self.table.gone.values())
        )

    def _send_beacon(self, now: float) -> None:
        fast = self._beacon_step < len(_FAST_BEACONS)
        if fast or self.config.settled_beacons or self._searching():
            # A settled node (joined, nobody missing) stays quiet: newcomers announce
            # themselves and get answers, so its beacons would only cost packets.
            self._emit(None, [encode_message_bytes(self._beacon())], now, piggyback=False)
        self._beacon_step += 1
        if self._beacon_step < len(_FAST_BEACONS):
            self._next_beacon = now + _FAST_BEACONS[self._beacon_step]
            return
        self.table.local.beacon_state = BeaconState.READY
        jitter = self.config.beacon_jitter * (2 * self.rng.random() - 1)
        self._next_beacon = now + self.config.beacon_interval * (1 + jitter)

    def _random_members(self, k: int, exclude: bytes | None) -> list[Member]:
        """Up to ``k`` distinct live members other than us and ``exclude``, chosen at random."""
        pool = self._probe_order  # every live member id, kept by the prober
        n = len(pool)
        picked: list[Member] = []
        seen: set[bytes] = set()
        tries = 0
        while len(picked) < k and tries < 3 * k + 8 and n:
            tries += 1
            nid = pool[self.rng.randrange(n)]
            if nid in seen or nid == exclude or nid == self.node_id:
                continue
            seen.add(nid)
            m = self.table.get(nid)
            if m is not None and m.state in (MemberState.ALIVE, MemberState.SUSPECT):
                picked.append(m)
        return picked
