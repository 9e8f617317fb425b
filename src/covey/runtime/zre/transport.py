"""The IO of ZRE mode: UDP beacons on the ZRE port, a ZeroMQ ROUTER inbox, one DEALER per
peer. Imported only when ``--zre`` is on (it loads pyzmq).

* **Beacons.** One UDP socket bound to ``0.0.0.0:<zre port>`` with ``SO_REUSEADDR`` and
  ``SO_REUSEPORT`` (pyre and zyre bind the same port on the same host). Every second a
  beacon goes to each discovery interface: the interface's directed broadcast, as zyre
  and pyre send, or — on loopback, where there is no broadcast — pyre's fallback
  multicast group :data:`LOOPBACK_GROUP` with ``IP_MULTICAST_IF`` set to the interface
  address (the socket joins the group on each interface, so pyre's beacons arrive). Only
  :func:`~covey.runtime.zre.beacon.encode_beacon` makes what this socket sends: every
  datagram covey sends on the ZRE port is 22 bytes (pyre issue 130). Malformed beacons
  are dropped and counted.
* **Messages.** A ROUTER bound to a random TCP port of the first interface (``*`` when
  there are several) is our mailbox; its endpoint is in our beacons (the port) and our
  HELLO. Each peer gets a DEALER whose identity is octet 1 + our UUID, with a zero linger
  and no blocking sends: a peer that cannot take more is disconnected, as pyre does.

All protocol decisions are :class:`~covey.runtime.zre.peers.PeerTable`'s; this class
only moves bytes, reads the clock and hands the table's events to ``publish``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence

import zmq
import zmq.asyncio

from covey.runtime.net.interfaces import Interface
from covey.runtime.zre import messages as m
from covey.runtime.zre.beacon import Beacon, decode_beacon, encode_beacon
from covey.runtime.zre.events import ZreEvent
from covey.runtime.zre.peers import Connect, Disconnect, PeerTable, Send

log = logging.getLogger("covey.zre")

#: The group pyre beacons to when it finds no interface but loopback.
LOOPBACK_GROUP = "225.25.25.25"
#: Seconds between two beacons (zyre's and pyre's interval) and between two table ticks.
BEACON_INTERVAL = 1.0
TICK = 0.1
#: Most datagrams read per wake-up (the rest wait for the next one).
READ_BATCH = 256


def destinations(interfaces: Sequence[Interface], port: int) -> list[tuple[Interface, str, int]]:
    """Where the ZRE beacons go: (interface, address, port) for each interface."""
    return [(i, LOOPBACK_GROUP if i.loopback else i.broadcast, port) for i in interfaces]


class ZreTransport:
    """Beacons, inbox and peer mailboxes of one ZRE node (see the module docstring).

    Args:
        uuid / name / headers / groups: what we are in ZRE (our UUID is the covey node id).
        interfaces: where beacons go (the agent's discovery interfaces).
        port: the ZRE beacon port.
        publish: called with each event of the peer table.
    """

    def __init__(
        self,
        uuid: bytes,
        name: str,
        headers: dict[str, str],
        groups: tuple[str, ...],
        interfaces: Sequence[Interface],
        port: int,
        publish: Callable[[ZreEvent], None],
    ) -> None:
        if not interfaces:
            raise ValueError("ZRE needs at least one interface")
        self.uuid = uuid
        self.interfaces = tuple(interfaces)
        self.port = port
        self.publish = publish
        #: Datagrams and messages in and out, and drops by reason.
        self.counters: Counter[str] = Counter()
        self._closed = False
        self._dealers: dict[bytes, zmq.Socket[bytes]] = {}
        try:
            self._udp = self._open_udp()
        except OSError as exc:
            raise OSError(exc.errno, f"zre: cannot bind UDP port {port}: {exc.strerror}") from None
        self._ctx = zmq.Context()
        self._actx = zmq.asyncio.Context.shadow(self._ctx.underlying)
        self._router = self._actx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        host = interfaces[0].address if len(interfaces) == 1 else "*"
        try:
            self.mailbox_port = self._router.bind_to_random_port(f"tcp://{host}")
        except zmq.ZMQError as exc:
            self._router.close(linger=0)
            self._ctx.term()
            self._udp.close()
            raise OSError(exc.errno, f"zre: cannot bind a mailbox on {host}: {exc}") from None
        endpoint = f"tcp://{interfaces[0].address}:{self.mailbox_port}"
        self.table = PeerTable(uuid, name, endpoint, headers, groups)

    def _open_udp(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            sock.bind(("0.0.0.0", self.port))
            group = socket.inet_aton(LOOPBACK_GROUP)
            for i in self.interfaces:
                if i.loopback:
                    mreq = group + socket.inet_aton(i.address)
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    @property
    def endpoint(self) -> str:
        """Our mailbox endpoint, as our HELLO gives it."""
        return self.table.endpoint

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Beacon, tick and read until cancelled (then :meth:`close`)."""
        loop = asyncio.get_running_loop()
        loop.add_reader(self._udp.fileno(), self._on_udp)
        inbox = asyncio.ensure_future(self._read_inbox())
        try:
            next_beacon = 0.0
            while True:
                now = time.monotonic()
                try:
                    if now >= next_beacon:
                        self._send_beacon(Beacon(self.uuid, self.mailbox_port))
                        next_beacon = now + BEACON_INTERVAL
                    self.table.tick(now)
                    self.flush()
                except Exception:  # a bug here must not end the agent: say it, go on
                    self.counters["internal_error"] += 1
                    log.exception("zre: tick failed")
                await asyncio.sleep(TICK)
        finally:
            inbox.cancel()
            with contextlib.suppress(Exception):
                loop.remove_reader(self._udp.fileno())

    def _send_beacon(self, beacon: Beacon) -> None:
        # The only send on the ZRE port, and what it sends comes from the one encoder.
        data = encode_beacon(beacon)
        for iface, addr, port in destinations(self.interfaces, self.port):
            try:
                if addr == LOOPBACK_GROUP:
                    out = socket.inet_aton(iface.address)
                    self._udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, out)
                self._udp.sendto(data, (addr, port))
                self.counters["beacons_out"] += 1
            except OSError as exc:
                self.counters["beacon_send_error"] += 1
                log.debug("zre: beacon to %s:%d failed: %s", addr, port, exc)

    def _on_udp(self) -> None:
        for _ in range(READ_BATCH):
            try:
                data, (ip, _port) = self._udp.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.counters["beacon_recv_error"] += 1
                return
            try:
                self.receive_beacon(data, ip, time.monotonic())
            except Exception:
                self.counters["internal_error"] += 1
                log.exception("zre: handling a beacon failed")

    def receive_beacon(self, data: bytes, ip: str, now: float) -> None:
        """One datagram from ``ip`` on the ZRE port: a beacon, or dropped and counted."""
        beacon, reason = decode_beacon(data, own=self.uuid)
        if beacon is None:
            if reason != "own":
                self.counters[f"beacon_{reason}"] += 1
            return
        self.counters["beacons_in"] += 1
        self.table.beacon(beacon, ip, now)
        self.flush()

    async def _read_inbox(self) -> None:
        while True:
            try:
                frames = await self._router.recv_multipart()
                self.receive_frames(frames, time.monotonic())
            except asyncio.CancelledError:
                raise
            except Exception:  # never silently: the inbox would stop for good
                self.counters["internal_error"] += 1
                log.exception("zre: reading the mailbox failed")
                await asyncio.sleep(TICK)

    def receive_frames(self, frames: list[bytes], now: float) -> None:
        """One ROUTER message (identity frame first): to the table, or dropped and counted."""
        uuid = m.sender(frames[0]) if frames else None
        if uuid is None:
            self.counters["message_bad_identity"] += 1
            return
        msg, reason = m.decode(frames[1:])
        if msg is None:
            self.counters[f"message_{reason}"] += 1
            return
        self.counters["messages_in"] += 1
        self.table.message(uuid, msg, now)
        self.flush()

    def flush(self) -> None:
        """Carry out the table's actions, then publish its events."""
        actions, self.table.actions = self.table.actions, []
        for action in actions:
            if isinstance(action, Connect):
                self._connect(action.uuid, action.endpoint)
            elif isinstance(action, Send):
                self._send(action)
            elif isinstance(action, Disconnect):
                dealer = self._dealers.pop(action.uuid, None)
                if dealer is not None:
                    dealer.close(linger=0)
        events, self.table.events = self.table.events, []
        for event in events:
            self.publish(event)

    def _connect(self, uuid: bytes, endpoint: str) -> None:
        old = self._dealers.pop(uuid, None)
        if old is not None:
            old.close(linger=0)
        dealer = self._ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.IDENTITY, m.identity(self.uuid))
        dealer.setsockopt(zmq.SNDHWM, 3000)
        dealer.setsockopt(zmq.SNDTIMEO, 0)
        try:
            dealer.connect(endpoint)
        except zmq.ZMQError as exc:
            self.counters["connect_error"] += 1
            log.debug("zre: cannot connect to %s: %s", endpoint, exc)
            dealer.close(linger=0)
            return
        self._dealers[uuid] = dealer

    def _send(self, action: Send) -> None:
        dealer = self._dealers.get(action.uuid)
        if dealer is None:
            self.counters["send_no_mailbox"] += 1
            return
        try:
            frames = m.encode(action.message)
        except ValueError as exc:  # a field that does not fit: never sent, counted
            self.counters["encode_error"] += 1
            what = action.message.command
            log.warning("zre: %s to %s not sent: %s", what, action.uuid.hex(), exc)
            return
        try:
            dealer.send_multipart(frames, flags=zmq.NOBLOCK)
            self.counters["messages_out"] += 1
        except zmq.Again:
            # The peer takes nothing more (its queue is full): drop it, as pyre does.
            self.counters["send_full"] += 1
            self._dealers.pop(action.uuid, None)
            dealer.close(linger=0)

    # ------------------------------------------------------------------ ending

    def close(self, announce: bool = True) -> None:
        """Say we leave (a port-0 beacon, twice against a lost datagram; not when
        ``announce`` is False: we never beaconed), then close every socket."""
        if self._closed:
            return
        self._closed = True
        for _ in range(2 if announce else 0):
            self._send_beacon(Beacon(self.uuid, 0))
        for dealer in self._dealers.values():
            dealer.close(linger=0)
        self._dealers.clear()
        self._router.close(linger=0)
        self._udp.close()
        self._ctx.term()


__all__ = ["BEACON_INTERVAL", "LOOPBACK_GROUP", "ZreTransport", "destinations"]
