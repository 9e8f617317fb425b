"""Hosts made of Linux network namespaces, joined by one bridge, torn down without fail.

Topology of a lab named ``cvy-<run>-<lab>`` with H hosts::

    cvy-<run>-<lab>-h1 (eth0 10.77.0.1/24) --veth-- p1 ┐
    cvy-<run>-<lab>-h2 (eth0 10.77.0.2/24) --veth-- p2 ├ br0 in cvy-<run>-<lab>-sw
    ...                                                ┘

Every host namespace has ``lo`` up, one veth ``eth0`` with an address of 10.77.0.0/24, the
on-link route of that subnet, a multicast route (224.0.0.0/4 dev eth0) and *no* default
route: a packet addressed anywhere else has no way out. The bridge lives in its own
namespace, so nothing of the lab is visible in (or routable from) the namespace the test
runs in; the test talks to agents through unix sockets, which are file-system objects.
Multicast snooping is off on the bridge, so a multicast datagram reaches every port.

A lab made with ``ipv6=True`` also gives every host ``fd77::<i>/64`` on ``eth0`` (no
duplicate-address detection, so the address works at once); IPv6 multicast needs no route
of its own (the kernel puts ``ff00::/8`` on every multicast-capable link).

Teardown is belt and braces, because a leaked namespace outlives the test run: every
namespace created is recorded in a process-wide registry; :meth:`Lab.close` kills whatever
still runs inside the lab's namespaces (``ip netns pids``: every such process is ours, since
we created the namespace) and deletes them; an ``atexit`` hook closes labs a crashed test
left open; :func:`cleanup_run` deletes any namespace carrying this run's prefix.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence

from covey.core.records import record

#: Prefix of every namespace any lab creates.
PREFIX = "cvy-"
#: This process's run id; every namespace it creates starts with ``cvy-<RUN_ID>-``.
RUN_ID = secrets.token_hex(3)
#: The private subnet of lab hosts (exists only inside the lab's namespaces).
SUBNET = "10.77.0"
#: The IPv6 prefix of lab hosts made with ``ipv6=True`` (a unique-local /64).
SUBNET6 = "fd77::"

_registry_lock = threading.Lock()
_open_labs: list[Lab] = []


class LabError(RuntimeError):
    """A lab command failed (the message has the command and its stderr)."""


def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run a command (never through a shell); return stdout; raise LabError on failure."""
    try:
        proc = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from None
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def unavailable_reason() -> str | None:
    """Why labs cannot run here (not root, no ``ip``/``nft``, no netns), or None."""
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, veth, nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"lab tests need '{tool}' (install iproute2 and nftables: .ci/sysdeps.sh)"
    probe = f"{PREFIX}{RUN_ID}-probe{secrets.token_hex(2)}"
    try:
        run(["ip", "netns", "add", probe])
    except LabError as exc:
        return f"network namespaces are not available: {exc}"
    try:
        run(["ip", "netns", "exec", probe, "nft", "list", "ruleset"])
    except LabError as exc:
        return f"nftables does not work inside a network namespace: {exc}"
    finally:
        run(["ip", "netns", "del", probe], check=False)
    return None


def list_namespaces(prefix: str = PREFIX) -> list[str]:
    """Names of existing network namespaces that start with ``prefix``."""
    out = run(["ip", "netns", "list"], check=False)
    return [ln.split()[0] for ln in out.splitlines() if ln.split() and ln.startswith(prefix)]


def namespace_pids(ns: str) -> list[int]:
    """PIDs of processes running inside namespace ``ns``."""
    out = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in out.split() if x.isdigit()]


def _kill_namespace_processes(ns: str) -> None:
    # Anything inside a namespace we created was started by us: stop it by its PID.
    for pid in namespace_pids(ns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # a paused process must be able to die
            os.kill(pid, signal.SIGKILL)


def delete_namespace(ns: str) -> None:
    """Kill what runs in ``ns`` (by PID) and delete it; no error if it is already gone."""
    _kill_namespace_processes(ns)
    run(["ip", "netns", "del", ns], check=False)


def cleanup_run(run_id: str = RUN_ID) -> list[str]:
    """Delete every namespace this run (``run_id``) created; returns their names."""
    leftovers = list_namespaces(f"{PREFIX}{run_id}-")
    for ns in leftovers:
        delete_namespace(ns)
    return leftovers


@record
class Host:
    """One lab host.

    Attributes:
        index: 1-based host number.
        name: short name (``h1``).
        ns: its network namespace.
        addr: its IPv4 address on ``eth0``.
        dev: the interface name inside the namespace (``eth0``).
        addr6: its IPv6 address on ``eth0`` (a lab made with ``ipv6=True``), else None.
    """

    index: int
    name: str
    ns: str
    addr: str
    dev: str = "eth0"
    addr6: str | None = None

    def argv(self, *command: str) -> list[str]:
        """``command`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *command]


class Lab:
    """H hosts on one bridge. Use as a context manager, or call :meth:`close`.

    Args:
        hosts: number of hosts (1..200).
        tag: a short label inside the namespace names (default: random).
        ipv6: give every host an IPv6 address too (``fd77::<i>``).
    """

    def __init__(self, hosts: int, *, tag: str | None = None, ipv6: bool = False) -> None:
        if not 1 <= hosts <= 200:
            raise ValueError("hosts must be 1..200")
        self.name = f"{PREFIX}{RUN_ID}-{tag or secrets.token_hex(2)}"
        self.switch = f"{self.name}-sw"
        self.hosts = [
            Host(
                i,
                f"h{i}",
                f"{self.name}-h{i}",
                f"{SUBNET}.{i}",
                addr6=f"{SUBNET6}{i:x}" if ipv6 else None,
            )
            for i in range(1, hosts + 1)
        ]
        self.namespaces: list[str] = []
        self.closed = False
        with _registry_lock:
            _open_labs.append(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    @property
    def broadcast(self) -> str:
        """The directed broadcast address of the lab subnet."""
        return f"{SUBNET}.255"

    def host(self, name: str) -> Host:
        """The host called ``name`` (``h1``...)."""
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def _add_ns(self, ns: str) -> None:
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _build(self) -> None:
        self._add_ns(self.switch)
        sw = ["ip", "-n", self.switch]
        run([*sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"])
        run([*sw, "link", "set", "br0", "up"])
        for h in self.hosts:
            self._add_ns(h.ns)
            port = f"p{h.index}"
            # The veth is created inside the switch namespace with its peer moved straight
            # into the host namespace: at no moment does it exist in the caller's namespace.
            run([*sw, "link", "add", port, "type", "veth", "peer", "name", h.dev, "netns", h.ns])
            run([*sw, "link", "set", port, "master", "br0"])
            run([*sw, "link", "set", port, "up"])
            hn = ["ip", "-n", h.ns]
            run([*hn, "addr", "add", f"{h.addr}/24", "brd", self.broadcast, "dev", h.dev])
            run([*hn, "link", "set", h.dev, "up"])
            run([*hn, "route", "add", "224.0.0.0/4", "dev", h.dev])
            if h.addr6 is not None:
                run([*hn, "-6", "addr", "add", f"{h.addr6}/64", "dev", h.dev, "nodad"])

    def routes(self, host: Host) -> list[str]:
        """The IPv4 routing table of ``host`` (one route per line)."""
        return [ln for ln in run(["ip", "-n", host.ns, "-4", "route"]).splitlines() if ln]

    def links(self, host: Host) -> list[str]:
        """Interface names inside ``host``."""
        out = run(["ip", "-n", host.ns, "-o", "link"])
        return [ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines() if ":" in ln]

    def close(self) -> None:
        """Kill every process inside the lab (by PID) and delete its namespaces. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for ns in reversed(self.namespaces):
            delete_namespace(ns)
        # A namespace whose creation failed half-way may not be in the list.
        for ns in list_namespaces(f"{self.name}-"):
            delete_namespace(ns)
        with _registry_lock:
            if self in _open_labs:
                _open_labs.remove(self)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LoopbackLab(Lab):
    """One host whose only interface is ``lo`` (127.0.0.1), with multicast on it.

    For peers that cannot be confined to loopback in the caller's namespace (pyre picks
    its own interface and falls back to multicast on 225.25.25.25 only when it finds no
    other): ``lo`` gets the MULTICAST flag and the route ``224.0.0.0/4 dev lo src
    127.0.0.1``, so multicast sent without a chosen interface stays on loopback. The route
    is what pyre needs: without it its ``IP_ADD_MEMBERSHIP`` on ``INADDR_ANY`` fails
    (ENODEV) and its beacons have no way out; two pyre nodes met without the flag, which
    is set anyway, as issue 17 gives it.
    """

    def __init__(self, *, tag: str | None = None) -> None:
        super().__init__(1, tag=tag)

    def _build(self) -> None:
        h = self.hosts[0]
        self.hosts = [Host(1, h.name, h.ns, "127.0.0.1", "lo")]
        self._add_ns(h.ns)
        run(["ip", "-n", h.ns, "link", "set", "lo", "multicast", "on"])
        run(["ip", "-n", h.ns, "route", "add", "224.0.0.0/4", "dev", "lo", "src", "127.0.0.1"])


@atexit.register
def _close_open_labs() -> None:
    with _registry_lock:
        labs = list(_open_labs)
    for lab in labs:
        lab.close()
