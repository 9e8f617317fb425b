"""Which interfaces carry discovery beacons, and whether they go by multicast or broadcast.

IPv4 interfaces are listed with the Linux ``SIOCGIF*`` ioctls (no third-party dependency):
name, address, netmask and the up/loopback flags; IPv6 ones from ``/proc/net/if_inet6``
(name, index, address, prefix length), with the same flags. The family is the multicast
group's: an IPv6 group (``ff15::…``) uses the chosen interfaces' IPv6 addresses, one per
interface (a global or unique-local one before a link-local one). The default choice
mirrors seed 000's broadcaster: every interface that is up and not loopback. An explicit
``--interface`` may name an interface or give one of its addresses; ``127.0.0.1`` selects
loopback, which is what tests and the demo always use. IPv6 has no broadcast: an IPv6
group must be a multicast group.
"""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct

from covey.core.records import record
from covey.runtime.config.model import AgentConfig, ConfigError

_SIOCGIFCONF = 0x8912
_SIOCGIFFLAGS = 0x8913
_SIOCGIFNETMASK = 0x891B
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8
_IFREQ_SIZE = 40  # struct ifreq on 64-bit Linux


@record
class Interface:
    """One address of a network interface.

    Attributes:
        name: interface name (``lo``, ``eth0``...).
        address: its IPv4 or IPv6 address.
        netmask: its netmask (IPv4), or its prefix length in digits (IPv6).
        up: the interface is administratively up.
        loopback: it is a loopback interface.
        index: the kernel's interface index (IPv6 multicast is joined and sent by index;
            0 when unknown).
    """

    name: str
    address: str
    netmask: str
    up: bool
    loopback: bool
    index: int = 0

    @property
    def ipv6(self) -> bool:
        """The address is an IPv6 one."""
        return ":" in self.address

    @property
    def broadcast(self) -> str:
        """The directed broadcast address of its network."""
        net = ipaddress.IPv4Network(f"{self.address}/{self.netmask}", strict=False)
        return str(net.broadcast_address)


@record
class DiscoveryPlan:
    """How beacons are sent and received.

    Attributes:
        interfaces: the chosen interfaces (empty when discovery is off).
        group: the multicast group or broadcast address given in the configuration.
        port: the UDP port of the beacons.
        broadcast: True when ``group`` is a broadcast address rather than a multicast group.
    """

    interfaces: tuple[Interface, ...]
    group: str
    port: int
    broadcast: bool

    def destinations(self) -> list[tuple[Interface, str]]:
        """(interface, destination address) pairs a discovery datagram goes to."""
        if not self.broadcast:
            return [(i, self.group) for i in self.interfaces]
        # A limited broadcast (255.255.255.255) would leave by the default route; send the
        # directed broadcast of each chosen interface instead so only those are reached.
        return [(i, i.broadcast) for i in self.interfaces]


def _flags(sock: socket.socket, name: str) -> int:
    ifreq = struct.pack("16s24x", name.encode()[:15])
    return int(struct.unpack("16sH", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, ifreq)[:18])[1])


def list_interfaces6(path: str = "/proc/net/if_inet6") -> list[Interface]:
    """Every IPv6 address of every interface of this host (Linux; empty without IPv6)."""
    try:
        with open(path) as fh:
            rows = [line.split() for line in fh]
    except FileNotFoundError:
        return []
    out: list[Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for row in rows:
            if len(row) != 6:
                continue
            hexaddr, index, prefix, _scope, _state, name = row
            address = str(ipaddress.IPv6Address(bytes.fromhex(hexaddr)))
            try:
                flags = _flags(sock, name)
            except OSError:  # the interface went away between the two reads
                continue
            out.append(
                Interface(
                    name,
                    address,
                    str(int(prefix, 16)),
                    bool(flags & _IFF_UP),
                    bool(flags & _IFF_LOOPBACK),
                    int(index, 16),
                )
            )
    return out


def list_interfaces() -> list[Interface]:
    """Every IPv4 address of every interface of this host (Linux)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        size = 64
        while True:
            buf = array.array("B", b"\0" * (size * _IFREQ_SIZE))
            addr, _ = buf.buffer_info()
            req = struct.pack("iL", len(buf), addr)
            used = struct.unpack("iL", fcntl.ioctl(sock.fileno(), _SIOCGIFCONF, req))[0]
            if used < len(buf) or size >= 4096:
                break
            size *= 4
        raw = buf.tobytes()[:used]
        out: list[Interface] = []
        for off in range(0, used, _IFREQ_SIZE):
            entry = raw[off : off + _IFREQ_SIZE]
            name = entry[:16].split(b"\0", 1)[0].decode(errors="replace")
            address = socket.inet_ntoa(entry[20:24])
            flags = _flags(sock, name)
            ifreq = struct.pack("16s24x", name.encode()[:15])
            mask_raw = fcntl.ioctl(sock.fileno(), _SIOCGIFNETMASK, ifreq)
            netmask = socket.inet_ntoa(mask_raw[20:24])
            out.append(
                Interface(
                    name, address, netmask, bool(flags & _IFF_UP), bool(flags & _IFF_LOOPBACK)
                )
            )
        return out


def choose_interfaces(
    wanted: tuple[str, ...], available: list[Interface], family: str = "IPv4"
) -> list[Interface]:
    """Resolve ``--interface`` values (names or addresses) among ``available`` (the
    addresses of one ``family``, named in errors); empty: all non-loopback up ones."""
    if not wanted:
        return [i for i in available if i.up and not i.loopback]
    chosen: list[Interface] = []
    for w in wanted:
        matches = [i for i in available if w in (i.name, i.address)]
        if not matches:
            known = ", ".join(f"{i.name}={i.address}" for i in available) or "none"
            raise ConfigError("interface", f"no {family} interface {w!r} (known: {known})")
        for m in matches:
            if not m.up:
                raise ConfigError("interface", f"{m.name} is down")
            if m not in chosen:
                chosen.append(m)
    return chosen


def one_per_interface(chosen: list[Interface]) -> list[Interface]:
    """IPv6: one address per interface, a global or unique-local one before a link-local
    one (peers must reach the address a beacon advertises without a scope id)."""
    best: dict[str, Interface] = {}
    for i in chosen:
        held = best.get(i.name)
        if held is None or (
            ipaddress.IPv6Address(held.address).is_link_local
            and not ipaddress.IPv6Address(i.address).is_link_local
        ):
            best[i.name] = i
    return list(best.values())


def plan_discovery(config: AgentConfig, available: list[Interface] | None = None) -> DiscoveryPlan:
    """Decide interfaces and mode for ``config``; raises :class:`ConfigError` if impossible."""
    group, port = config.multicast_group
    if not config.discovery:
        return DiscoveryPlan((), group, port, broadcast=False)
    addr = ipaddress.ip_address(group)
    family = f"IPv{addr.version}"
    if available is None:
        try:
            available = list_interfaces6() if addr.version == 6 else list_interfaces()
        except OSError as exc:
            raise ConfigError("interface", f"cannot list interfaces: {exc}") from None
    available = [i for i in available if i.ipv6 == (addr.version == 6)]
    chosen = choose_interfaces(config.interfaces, available, family)
    if not chosen:
        raise ConfigError(
            "interface", f"no usable {family} interface is up (name one, or use --no-multicast)"
        )
    if addr.version == 6:
        if not addr.is_multicast:
            raise ConfigError("multicast", f"{group} is not an IPv6 multicast group")
        return DiscoveryPlan(tuple(one_per_interface(chosen)), group, port, broadcast=False)
    if addr.is_multicast:
        return DiscoveryPlan(tuple(chosen), group, port, broadcast=False)
    if group == "255.255.255.255" or all(group == i.broadcast for i in chosen):
        return DiscoveryPlan(tuple(chosen), group, port, broadcast=True)
    raise ConfigError(
        "multicast",
        f"{group} is neither a multicast group nor the broadcast address of the chosen interfaces",
    )
