"""The ZRE peer table: who is there, what we owe each peer, when one is gone. Pure.

It follows zyre's node logic (``zyre_node.c``, pyre's ``pyre_node.py``) as data and
decisions, with the clock handed in (``now``) and the IO left to the transport, which
drains :attr:`PeerTable.actions` (connect a DEALER, send a message, disconnect) and
:attr:`PeerTable.events` after every call:

* a beacon from an unknown UUID: connect to ``tcp://<its address>:<port>`` and say HELLO
  (sequence 1); a port-0 beacon: the peer left, drop it at once;
* a HELLO from a peer we do not know (it found us first): connect back to the endpoint it
  gives and say HELLO; from a peer already entered: it restarted, drop it and start over;
* every message must carry the next sequence number (HELLO: 1); a gap drops the peer, as
  zyre does (it will come back with a new HELLO);
* silence: after :attr:`ping_after` seconds without a beacon or message a PING goes out
  (any live node answers PING-OK), after :attr:`expire_after` the peer is expired. zyre
  uses 5 s and 30 s, pyre 10 s and 30 s; covey's defaults (1 s, 1.5 s) suit beacons sent
  every second on one LAN and make a crashed peer disappear within 2 s.

ZRE peers are foreign: nothing here touches the covey member table, quorum or state.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import field

from covey.core.records import record
from covey.runtime.zre import messages as m
from covey.runtime.zre.beacon import Beacon
from covey.runtime.zre.events import ZreEnter, ZreEvent, ZreExit, ZreGroupChange, ZreReceived
from covey.runtime.zre.messages import ZreMessage

#: Seconds of silence before a PING, and before a peer is expired (see the module docstring).
PING_AFTER = 1.0
EXPIRE_AFTER = 1.5


@record
class Connect:
    """Open a DEALER (identity 0x01 + our UUID) to ``endpoint`` for peer ``uuid``."""

    uuid: bytes
    endpoint: str


@record
class Send:
    """Send ``message`` (already numbered) on peer ``uuid``'s DEALER."""

    uuid: bytes
    message: ZreMessage


@record
class Disconnect:
    """Close peer ``uuid``'s DEALER, dropping what is queued."""

    uuid: bytes


Action = Connect | Send | Disconnect


@record(frozen=False)
class ZrePeer:
    """One ZRE peer as we know it.

    Attributes:
        uuid: its identity. endpoint: where our DEALER is connected.
        ready: it said HELLO (only ready peers are listed and get SHOUTs).
        name / headers / groups / status: from its HELLO, JOINs and LEAVEs.
        last_heard: when a beacon or message last came from it. pinged: a PING is out.
        sent / want: the last sequence number sent to it, and received from it.
    """

    uuid: bytes
    endpoint: str
    last_heard: float
    ready: bool = False
    name: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)
    status: int = 0
    pinged: bool = False
    sent: int = 0
    want: int = 0

    def to_json(self) -> dict[str, object]:
        """The peer in the shape of ``covey members``, marked ``kind: zre``; its headers
        are its tags, with its endpoint and groups as ``zre.endpoint``/``zre.groups``."""
        hostport = self.endpoint.removeprefix("tcp://")
        tags = dict(self.headers)
        tags["zre.endpoint"] = self.endpoint
        tags["zre.groups"] = ",".join(sorted(self.groups))
        return {
            "kind": "zre",
            "name": self.name or self.uuid.hex()[:6],
            "id": self.uuid.hex(),
            "address": hostport,
            "state": "alive",
            "incarnation": 0,
            "tags": tags,
        }


class PeerTable:
    """Our ZRE node's view of its peers (see the module docstring).

    Args:
        uuid: our identity. name / endpoint / headers: what our HELLO says.
        groups: the groups we are in from the start.
        ping_after / expire_after: silence thresholds in seconds.
    """

    def __init__(
        self,
        uuid: bytes,
        name: str,
        endpoint: str,
        headers: dict[str, str],
        groups: tuple[str, ...] = (),
        *,
        ping_after: float = PING_AFTER,
        expire_after: float = EXPIRE_AFTER,
    ) -> None:
        if not 0 < ping_after < expire_after:
            raise ValueError("need 0 < ping_after < expire_after")
        self.uuid = uuid
        self.name = name
        self.endpoint = endpoint
        self.headers = dict(headers)
        self.groups: list[str] = list(dict.fromkeys(groups))
        #: Our status: one more for every JOIN and LEAVE we send (mod 256).
        self.status = len(self.groups) & 0xFF
        self.ping_after = ping_after
        self.expire_after = expire_after
        self.peers: dict[bytes, ZrePeer] = {}
        self.actions: list[Action] = []
        self.events: list[ZreEvent] = []
        #: Messages refused or peers dropped, by reason.
        self.drops: Counter[str] = Counter()

    # ------------------------------------------------------------------ inputs

    def beacon(self, beacon: Beacon, ip: str, now: float) -> None:
        """A valid beacon from another node came from ``ip``."""
        peer = self.peers.get(beacon.uuid)
        if beacon.leaving:
            if peer is not None:
                self._remove(peer, "left", now)
            return
        if peer is None:
            peer = self._require(beacon.uuid, f"tcp://{ip}:{beacon.port}", now)
        self._refresh(peer, now)

    def message(self, uuid: bytes, msg: ZreMessage, now: float) -> None:
        """A decoded message from peer ``uuid`` arrived on our ROUTER."""
        peer = self.peers.get(uuid)
        if msg.kind == m.HELLO:
            if peer is not None and peer.ready:
                self._remove(peer, "restarted", now)
                peer = None
            if peer is None:
                peer = self._require(uuid, msg.endpoint, now)
            peer.ready = True
            peer.want = 0
        if peer is None or not peer.ready:
            self.drops["not_ready"] += 1
            return
        expected = (peer.want + 1) & 0xFFFF
        # pyre wraps its counter at 65535 where zyre wraps at 65536: both are the next one.
        if msg.sequence != expected and not (peer.want == 65534 and msg.sequence == 0):
            self.drops["lost_messages"] += 1
            self._remove(peer, "lost_messages", now)
            return
        peer.want = msg.sequence
        self._refresh(peer, now)
        self._apply(peer, msg, now)

    def tick(self, now: float) -> None:
        """Ping the peers gone quiet, expire the silent ones."""
        for peer in list(self.peers.values()):
            silent = now - peer.last_heard
            if silent >= self.expire_after:
                self._remove(peer, "expired", now)
            elif silent >= self.ping_after and not peer.pinged and peer.ready:
                peer.pinged = True
                self._send(peer, ZreMessage(m.PING))

    # ------------------------------------------------------------------ our own acts

    def join(self, group: str) -> bool:
        """Join ``group`` (tell every peer); False when we are in it already."""
        if group in self.groups:
            return False
        self.groups.append(group)
        self._announce(m.JOIN, group)
        return True

    def leave(self, group: str) -> bool:
        """Leave ``group``; False when we were not in it."""
        if group not in self.groups:
            return False
        self.groups.remove(group)
        self._announce(m.LEAVE, group)
        return True

    def shout(self, group: str, content: tuple[bytes, ...]) -> int:
        """SHOUT ``content`` to the peers in ``group``; returns how many it went to."""
        sent = 0
        for peer in self.peers.values():
            if peer.ready and group in peer.groups:
                self._send(peer, ZreMessage(m.SHOUT, group=group, content=content))
                sent += 1
        return sent

    def whisper(self, uuid: bytes, content: tuple[bytes, ...]) -> bool:
        """WHISPER ``content`` to peer ``uuid``; False when it is not (or not yet) there."""
        peer = self.peers.get(uuid)
        if peer is None or not peer.ready:
            return False
        self._send(peer, ZreMessage(m.WHISPER, content=content))
        return True

    def listed(self) -> list[ZrePeer]:
        """The peers that said HELLO, by name."""
        return sorted((p for p in self.peers.values() if p.ready), key=lambda p: (p.name, p.uuid))

    def find(self, name_or_id: str) -> list[ZrePeer]:
        """The listed peers called ``name_or_id`` or with this (hex) UUID."""
        return [p for p in self.listed() if name_or_id in (p.name, p.uuid.hex())]

    # ------------------------------------------------------------------ inside

    def _require(self, uuid: bytes, endpoint: str, now: float) -> ZrePeer:
        # A node that restarted with a new UUID on the same endpoint replaces the old one.
        for other in list(self.peers.values()):
            if other.endpoint == endpoint:
                self._remove(other, "restarted", now)
        peer = ZrePeer(uuid, endpoint, last_heard=now)
        self.peers[uuid] = peer
        self.actions.append(Connect(uuid, endpoint))
        hello = ZreMessage(
            m.HELLO,
            endpoint=self.endpoint,
            groups=tuple(self.groups),
            status=self.status,
            name=self.name,
            headers=self.headers,
        )
        self._send(peer, hello)
        return peer

    def _apply(self, peer: ZrePeer, msg: ZreMessage, now: float) -> None:
        if msg.kind == m.HELLO:
            peer.name, peer.headers = msg.name, dict(msg.headers)
            peer.groups = set(msg.groups)
            peer.status = msg.status
            self.events.append(
                ZreEnter(now, peer.uuid, peer.name, peer.endpoint, dict(msg.headers), msg.groups)
            )
            for g in msg.groups:
                self.events.append(ZreGroupChange(now, peer.uuid, peer.name, g, joined=True))
        elif msg.kind == m.WHISPER:
            self.events.append(ZreReceived(now, peer.uuid, peer.name, None, msg.content))
        elif msg.kind == m.SHOUT:
            self.events.append(ZreReceived(now, peer.uuid, peer.name, msg.group, msg.content))
        elif msg.kind == m.PING:
            self._send(peer, ZreMessage(m.PING_OK))
        elif msg.kind in (m.JOIN, m.LEAVE):
            joined = msg.kind == m.JOIN
            if joined:
                peer.groups.add(msg.group)
            else:
                peer.groups.discard(msg.group)
            if msg.status != (peer.status + 1) & 0xFF:
                self.drops["status_mismatch"] += 1  # zyre asserts; we note it and go on
            peer.status = msg.status
            self.events.append(ZreGroupChange(now, peer.uuid, peer.name, msg.group, joined))

    def _announce(self, kind: int, group: str) -> None:
        self.status = (self.status + 1) & 0xFF
        for peer in self.peers.values():
            self._send(peer, ZreMessage(kind, group=group, status=self.status))

    def _send(self, peer: ZrePeer, msg: ZreMessage) -> None:
        peer.sent = (peer.sent + 1) & 0xFFFF
        self.actions.append(Send(peer.uuid, msg.with_sequence(peer.sent)))

    def _refresh(self, peer: ZrePeer, now: float) -> None:
        peer.last_heard = now
        peer.pinged = False

    def _remove(self, peer: ZrePeer, reason: str, now: float) -> None:
        self.peers.pop(peer.uuid, None)
        self.actions.append(Disconnect(peer.uuid))
        if peer.ready:
            self.events.append(ZreExit(now, peer.uuid, peer.name, reason))


__all__ = [
    "EXPIRE_AFTER",
    "PING_AFTER",
    "Action",
    "Connect",
    "Disconnect",
    "PeerTable",
    "Send",
    "ZrePeer",
]
