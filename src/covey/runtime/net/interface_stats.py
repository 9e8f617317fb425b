"""Per-interface health: beacons out and in, from whom, when last, and drops by reason.

The issue: "a user who sees nothing arrive can tell a dead interface from a bad key". The
core counts traffic and drops for the whole node; :class:`NetCounters` counts them again
where they happened, at the IO edge:

* every discovery interface (:class:`InterfaceCounters`): beacons sent by its socket,
  beacons heard and opened, the frames heard on it that were dropped (per reason:
  ``bad_key`` — a key we lack —, ``foreign_cluster``...), and the last
  :data:`PEERS_KEPT` sources heard on it;
* the unicast socket (:class:`UnicastCounters`): datagrams in and out, drops per reason.

The sockets are wrapped, not the driver: :meth:`NetCounters.receiver` wraps the handler a
socket's protocol calls (the driver's ``datagram_received``, which returns the sender's id
or the drop reason the core gave), :meth:`NetCounters.sender` wraps a socket's ``sendto``.

A multicast group is received on one socket for every interface, and the kernel does not
say by which interface a datagram came (asyncio gives no ``IP_PKTINFO``): a datagram is
put on the interface whose network holds its source address (our own beacons loop back
from our own address, a peer's come from its interface's address), else on the first.

Times are kept on the monotonic clock and shown as unix times. Everything is bounded:
drops are keyed by a closed set of reasons, peers and the source cache are capped.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from covey.core import Address, format_address
from covey.core.records import record
from covey.core.types import DropReason

if TYPE_CHECKING:
    from covey.core import MemberInfo
    from covey.runtime.net.interfaces import DiscoveryPlan

#: Sources kept per interface (the most recently heard).
PEERS_KEPT = 64
#: Seconds during which a bad_key / foreign_cluster drop sets an interface's status.
RECENT = 30.0
#: Source addresses whose interface is remembered (the cache is emptied when full).
_SOURCES_KEPT = 256
#: Drop reasons shown first, always (0 when none): what tells a wrong key from silence.
FIRST_REASONS = (DropReason.BAD_KEY.value, DropReason.FOREIGN_CLUSTER.value)
#: Worst first: the overall status is the worst of every interface's and unicast's.
STATUSES = ("bad_key", "foreign_cluster", "dropping", "silent", "ok")

#: What the driver says of one datagram: the sender's id (opened), the reason it was
#: dropped (a DropReason value, or a runtime one: dropped_by_rule, internal_error), or
#: None (the agent is closing: not looked at).
Received = bytes | str | None
Receive = Callable[[bytes, Address], Received]


class Sendto(Protocol):
    """What sends one datagram (an asyncio datagram transport, or a counting wrapper)."""

    def sendto(self, data: bytes, addr: Address, /) -> None: ...


def _addr(a: Address) -> str:
    return format_address(a)


def _wall(mono: float | None, offset: float) -> float | None:
    return None if mono is None else round(mono + offset, 3)


def _ordered(drops: dict[str, int]) -> dict[str, int]:
    """Drops with bad_key and foreign_cluster first, then the others by name."""
    out = {r: drops.get(r, 0) for r in FIRST_REASONS}
    out.update(sorted((r, n) for r, n in drops.items() if r not in out))
    return out


@record(frozen=False)
class _Peer:
    address: str
    name: str | None
    count: int = 0
    dropped: int = 0
    last: float = 0.0


class _Drops:
    """Drops per reason, with when each reason last rose (monotonic)."""

    __slots__ = ("counts", "rose")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.rose: dict[str, float] = {}

    def add(self, reason: str, now: float) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.rose[reason] = now

    def recent(self, now: float) -> str | None:
        """bad_key or foreign_cluster, if such a drop happened in the last RECENT s."""
        for reason in FIRST_REASONS:
            rose = self.rose.get(reason)
            if rose is not None and now - rose < RECENT:
                return reason
        return None


class InterfaceCounters:
    """The beacons of one discovery interface (see the module docstring).

    Attributes:
        name / address: the interface (``lo``, ``127.0.0.1``).
        mode: ``multicast`` or ``broadcast``.
        beacons_out / beacons_in: beacons sent by its socket; beacons heard and opened.
        last_out / last_in: monotonic time of the last of each (None: never).
        last_heard: monotonic time anything from another node was last heard on it,
            opened or dropped (None: never).
    """

    def __init__(self, name: str, address: str, netmask: str, mode: str) -> None:
        self.name = name
        self.address = address
        self.network = ipaddress.ip_network(f"{address}/{netmask}", strict=False)
        self.mode = mode
        self.beacons_out = 0
        self.beacons_in = 0
        self.last_out: float | None = None
        self.last_in: float | None = None
        self.last_heard: float | None = None
        self.drops = _Drops()
        self._peers: OrderedDict[str, _Peer] = OrderedDict()

    def sent(self, now: float) -> None:
        """One beacon left by this interface's socket."""
        self.beacons_out += 1
        self.last_out = now

    def heard(self, result: Received, source: Address, who: MemberInfo | None, now: float) -> None:
        """One datagram arrived on this interface; ``who`` is its sender when opened."""
        if result is None:
            return
        if isinstance(result, bytes):
            self.beacons_in += 1
            self.last_in = now
            key, name = (_addr(who.address), who.name) if who else (_addr(source), None)
        else:
            self.drops.add(result, now)
            if result == DropReason.FROM_SELF.value:
                return  # our own beacon, looped back: it says the socket works, no more
            key, name = _addr(source), None
        self.last_heard = now
        peer = self._peers.pop(key, None) or _Peer(key, name)
        peer.name = name or peer.name
        peer.count += 1
        peer.dropped += not isinstance(result, bytes)
        peer.last = now
        self._peers[key] = peer
        if len(self._peers) > PEERS_KEPT:
            self._peers.popitem(last=False)

    def status(self, now: float) -> str:
        """``bad_key`` / ``foreign_cluster`` (such drops in the last RECENT s), ``ok`` (a
        beacon was opened), ``dropping`` (only dropped frames heard), ``silent`` (nothing
        from another node ever heard)."""
        recent = self.drops.recent(now)
        if recent is not None:
            return recent
        if self.beacons_in:
            return "ok"
        return "dropping" if self.last_heard is not None else "silent"

    def to_json(self, now: float, offset: float) -> dict[str, object]:
        """The ``/v1/interfaces`` entry (``offset``: wall minus monotonic clock)."""
        return {
            "name": self.name,
            "address": self.address,
            "mode": self.mode,
            "beacons_out": self.beacons_out,
            "beacons_in": self.beacons_in,
            "last_out": _wall(self.last_out, offset),
            "last_in": _wall(self.last_in, offset),
            "peers": [
                {
                    "address": p.address,
                    "name": p.name,
                    "count": p.count,
                    "dropped": p.dropped,
                    "last": _wall(p.last, offset),
                }
                for p in reversed(self._peers.values())
            ],
            "drops": _ordered(self.drops.counts),
            "status": self.status(now),
        }


class UnicastCounters:
    """The agent's own UDP socket: datagrams in and out, drops per reason."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self.datagrams_in = 0
        self.datagrams_out = 0
        self.last_in: float | None = None
        self.drops = _Drops()

    def sent(self, now: float) -> None:
        """One datagram left by the unicast socket."""
        self.datagrams_out += 1

    def heard(self, result: Received, now: float) -> None:
        """One datagram arrived on the unicast socket."""
        if result is None:
            return
        self.datagrams_in += 1
        self.last_in = now
        if isinstance(result, str):
            self.drops.add(result, now)

    def status(self, now: float) -> str:
        """As :meth:`InterfaceCounters.status`, for the unicast socket."""
        recent = self.drops.recent(now)
        if recent is not None:
            return recent
        return "ok" if self.datagrams_in else "silent"

    def to_json(self, now: float, offset: float) -> dict[str, object]:
        """The ``unicast`` part of ``/v1/interfaces``."""
        return {
            "address": _addr(self.address),
            "datagrams_in": self.datagrams_in,
            "datagrams_out": self.datagrams_out,
            "drops": _ordered(self.drops.counts),
            "last_in": _wall(self.last_in, offset),
            "status": self.status(now),
        }


class _Counting:
    """A socket's ``sendto`` that counts what it sent (after the send: a failed one is
    not counted)."""

    __slots__ = ("_count", "_transport")

    def __init__(self, transport: Sendto, count: InterfaceCounters | UnicastCounters) -> None:
        self._transport = transport
        self._count = count

    def sendto(self, data: bytes, addr: Address, /) -> None:
        self._transport.sendto(data, addr)
        self._count.sent(time.monotonic())


class NetCounters:
    """Every interface's and the unicast socket's counters (see the module docstring).

    Args:
        plan: the discovery plan (its interfaces, in the order of their send sockets).
        address: the unicast address.
        member: the sender's record from its id (``Node.member``), for names.
    """

    def __init__(
        self,
        plan: DiscoveryPlan,
        address: Address,
        member: Callable[[bytes], MemberInfo | None],
    ) -> None:
        mode = "broadcast" if plan.broadcast else "multicast"
        self.interfaces = [
            InterfaceCounters(i.name, i.address, i.netmask, mode) for i in plan.interfaces
        ]
        self.unicast = UnicastCounters(address)
        self._member = member
        self._sources: dict[str, InterfaceCounters] = {}

    def sender(self, transport: Sendto, index: int | None = None) -> Sendto:
        """``transport`` counted as interface ``index``'s beacon socket (None: unicast)."""
        return _Counting(transport, self.unicast if index is None else self.interfaces[index])

    def receiver(
        self, handler: Receive, label: str, index: int = 0
    ) -> Callable[[bytes, Address], None]:
        """What a socket's protocol calls: ``handler``, then count its answer. ``label``
        is the socket's: ``unicast``, ``discovery`` (the interface is told by the
        source) or ``beacon-send`` (interface ``index``'s own socket)."""
        unicast = self.unicast

        def on_unicast(data: bytes, addr: Address) -> None:
            unicast.heard(handler(data, addr), time.monotonic())

        def on_interface(data: bytes, addr: Address) -> None:
            result = handler(data, addr)
            if not self.interfaces:
                return
            iface = self.interfaces[index] if label == "beacon-send" else self._by_source(addr)
            who = self._member(result) if isinstance(result, bytes) else None
            iface.heard(result, addr, who, time.monotonic())

        return on_unicast if label == "unicast" else on_interface

    def _by_source(self, addr: Address) -> InterfaceCounters:
        if len(self.interfaces) == 1:
            return self.interfaces[0]
        found = self._sources.get(addr[0])
        if found is None:
            try:
                ip = ipaddress.ip_address(addr[0])
            except ValueError:
                return self.interfaces[0]
            found = next((i for i in self.interfaces if ip in i.network), self.interfaces[0])
            if len(self._sources) >= _SOURCES_KEPT:
                self._sources.clear()
            self._sources[addr[0]] = found
        return found

    def status(self, now: float | None = None) -> str:
        """The worst status of every interface and of the unicast socket."""
        t = time.monotonic() if now is None else now
        seen = {i.status(t) for i in self.interfaces} | {self.unicast.status(t)}
        return next(s for s in STATUSES if s in seen)

    def to_json(self) -> dict[str, object]:
        """The ``/v1/interfaces`` answer (and ``covey info``'s ``interfaces``)."""
        now = time.monotonic()
        offset = time.time() - now
        return {
            "interfaces": [i.to_json(now, offset) for i in self.interfaces],
            "unicast": self.unicast.to_json(now, offset),
            "status": self.status(now),
        }
