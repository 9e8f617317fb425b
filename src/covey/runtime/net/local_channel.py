"""The local channel: peers on the same host talk over unix sockets instead of loopback.

Seed 004: "when a beacon comes from one's own host with another UUID, talk to that peer
over a local channel instead of the network". Every agent with ``local_channel`` on binds
two unix sockets in one directory per host — a datagram socket for what would go by UDP
and a stream socket for what would go by TCP — named by a hash of (cluster, advertised
address). A sender that finds a peer's socket there sends through it; everything else
goes by the network as before.

*Same host* is decided by the directory, not by a field of the beacon: the directory is
``RUNTIME/local-<host key>``, where the host key hashes the machine id, the boot id and
the network namespace's inode. Two agents meet there only when they run under one
kernel, one boot and one network stack (so the address one advertises is the address
the other would reach by UDP), and a socket file there proves the peer is reachable now,
which a beacon's host field alone would not. The beacons and the wire are unchanged.

Falling back never loses a datagram: a send that finds no socket (the file was removed,
``ENOENT``), nobody bound to it (the peer was killed, ``ECONNREFUSED``) or a full buffer
goes by UDP at once, and the peer's path is not tried again for :data:`RETRY_AFTER`
seconds. Killing a peer is therefore detected exactly as over UDP: its probes fall back to
UDP, to a closed port. An agent whose own socket file vanished binds it again at its next
check (every :data:`CHECK_EVERY` seconds); until then its peers reach it by UDP.

Each datagram carries the sender's advertised address first (one octet of length, the host
as text, two octets of port): the core answers and counts by that address, as it would
the UDP source. A datagram whose header does not parse is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

from covey.core import Address, format_address

# The standard library's built-in SHA-256 (as in covey.core.crypto.fernet): hashlib would
# map OpenSSL's libcrypto, 3.3 MiB resident, into every agent for two names.
from covey.core.crypto.fernet import sha256
from covey.runtime.net.interface_stats import Sendto
from covey.runtime.net.transport import RECV_BUFFER, converse, exchange

log = logging.getLogger("covey.transport")

#: Seconds a peer's path is not tried again after it failed (the network is used).
RETRY_AFTER = 5.0
#: Seconds between two checks that our own socket files still exist.
CHECK_EVERY = 2.0
#: Datagrams read per wake-up at most (the rest on the next one: the loop stays fair).
READ_BATCH = 64

Accept = Callable[[asyncio.StreamReader, asyncio.StreamWriter], None]


def host_key() -> str:
    """Twelve hex digits naming this kernel boot and network namespace."""
    parts = []
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id", "/proc/sys/kernel/random/boot_id"):
        with contextlib.suppress(OSError):
            parts.append(Path(path).read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/net").st_ino))
    parts.append(socket.gethostname())
    digest: str = sha256("\0".join(parts).encode()).hexdigest()
    return digest[:12]


def channel_name(cluster: str, address: Address) -> str:
    """The file name (without suffix: ``.d`` datagrams, ``.s`` streams) of the sockets of
    the agent of ``cluster`` advertising ``address``."""
    key = f"{cluster}\0{address[0]}\0{address[1]}".encode()
    digest: str = sha256(key).hexdigest()
    return digest[:20]


def _header(address: Address) -> bytes:
    host = address[0].encode()
    return bytes([len(host)]) + host + struct.pack(">H", address[1])


def _parse(data: bytes) -> tuple[Address, bytes] | None:
    if not data:
        return None
    n = data[0]
    if len(data) < 1 + n + 2 or n == 0:
        return None
    try:
        host = data[1 : 1 + n].decode("ascii")
    except UnicodeDecodeError:
        return None
    (port,) = struct.unpack(">H", data[1 + n : 3 + n])
    return (host, port), data[3 + n :]


class LocalChannel:
    """This agent's end of the local channel (see the module docstring).

    Args:
        directory: the host's channel directory (made 0700 if missing).
        cluster: the cluster name (part of every socket's name).
        own: this agent's advertised address.
        stream_timeout: seconds one outgoing exchange may take (either way).
    """

    def __init__(self, directory: Path, cluster: str, own: Address, stream_timeout: float):
        self.directory = directory
        self.cluster = cluster
        self.own = own
        self.stream_timeout = stream_timeout
        self.handler: Callable[[bytes, Address], object] = lambda data, addr: None
        self._header = _header(own)
        self._sock: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._accept: Accept | None = None
        self._inodes: dict[str, int] = {}
        self._failed: dict[str, float] = {}
        self._worked: set[str] = set()
        self._paths: dict[Address, str] = {}
        self.counters = dict.fromkeys(
            (
                "datagrams_out",
                "datagrams_in",
                "fallbacks",
                "streams_out",
                "stream_fallbacks",
                "malformed",
                "rebinds",
            ),
            0,
        )

    def _path(self, address: Address, kind: str) -> str:
        base = self._paths.get(address)
        if base is None:
            if len(self._paths) > 4096:
                self._paths.clear()
            base = self._paths[address] = str(self.directory / channel_name(self.cluster, address))
        return base + kind

    # ------------------------------------------------------------------ our sockets

    async def open(self, accept: Accept) -> None:
        """Bind our datagram and stream sockets; ``accept`` serves inbound streams (the
        agent's TCP stream callback). Raises OSError when the directory is unusable."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._accept = accept
        self._bind_datagrams()
        await self._bind_stream()

    def _claim(self, path: str) -> None:
        # Our UDP bind on this address succeeded, so a file of this name is a stale one
        # (a killed agent's): replace it.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def _bind_datagrams(self) -> None:
        path = self._path(self.own, ".d")
        self._claim(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(path)
            os.chmod(path, 0o600)
        except BaseException:
            sock.close()
            raise
        self._inodes[path] = os.stat(path).st_ino
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            loop.remove_reader(self._sock.fileno())
            self._sock.close()
        self._sock = sock
        loop.add_reader(sock.fileno(), self._readable)

    async def _bind_stream(self) -> None:
        assert self._accept is not None
        path = self._path(self.own, ".s")
        self._claim(path)
        if self._server is not None:
            self._server.close()
        self._server = await asyncio.start_unix_server(self._accept, path)
        os.chmod(path, 0o600)
        self._inodes[path] = os.stat(path).st_ino

    async def check(self) -> None:
        """Bind again any of our socket files that vanished (counted as ``rebinds``)."""
        for path, inode in list(self._inodes.items()):
            try:
                if os.stat(path).st_ino == inode:
                    continue
            except FileNotFoundError:
                pass
            self.counters["rebinds"] += 1
            log.info("local channel socket %s vanished: bound again", path)
            try:
                if path.endswith(".d"):
                    self._bind_datagrams()
                else:
                    await self._bind_stream()
            except OSError as exc:
                log.warning("local channel: cannot bind %s again: %s", path, exc)

    async def run_checks(self) -> None:
        """Check our files every :data:`CHECK_EVERY` seconds, for as long as the agent runs."""
        while True:
            await asyncio.sleep(CHECK_EVERY)
            await self.check()

    def close(self) -> None:
        """Close our sockets and remove our files (only if they are still ours)."""
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for path, inode in self._inodes.items():
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
        self._inodes.clear()

    def _readable(self) -> None:
        sock = self._sock
        for _ in range(READ_BATCH):
            if sock is None:
                return
            try:
                data = sock.recv(RECV_BUFFER + 300)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("local channel receive failed: %s", exc)
                return
            parsed = _parse(data)
            if parsed is None:
                self.counters["malformed"] += 1
                continue
            self.counters["datagrams_in"] += 1
            try:
                self.handler(parsed[1], parsed[0])
            except Exception:  # the handler never raises; if it does, keep reading
                log.exception("local channel handler failed")

    # ------------------------------------------------------------------ sending

    def _usable(self, path: str, now: float) -> bool:
        failed = self._failed.get(path)
        if failed is None:
            return True
        if now - failed < RETRY_AFTER:
            return False
        del self._failed[path]
        return True

    def _fail(self, path: str, now: float) -> None:
        if len(self._failed) > 4096:
            self._failed.clear()
        self._failed[path] = now

    def wrap(self, inner: Sendto) -> Sendto:
        """A sender that goes through the local channel where a peer's socket is here,
        and through ``inner`` (the UDP socket) otherwise."""
        channel = self

        class _Sender:
            def sendto(self, data: bytes, addr: Address, /) -> None:
                if not channel.send(data, addr):
                    inner.sendto(data, addr)

        return _Sender()

    def send(self, data: bytes, addr: Address) -> bool:
        """Send one datagram through the local channel; False when it must go by UDP."""
        if self._sock is None or addr == self.own:
            return False
        path = self._path(addr, ".d")
        now = time.monotonic()
        if not self._usable(path, now):
            return False
        try:
            self._sock.sendto(self._header + data, path)
        except OSError as exc:
            # A peer we reached before (or a full buffer) now goes by UDP: a fallback. A
            # path that never worked is a peer on another host: nothing to count.
            if path in self._worked or exc.errno not in (errno.ENOENT, errno.ECONNREFUSED):
                self.counters["fallbacks"] += 1
            self._worked.discard(path)
            self._fail(path, now)
            return False
        self._worked.add(path)
        self.counters["datagrams_out"] += 1
        return True

    async def exchange(self, address: Address, data: bytes, timeout: float) -> bytes:
        """One request/reply exchange with ``address``: through its local stream socket
        when it has one here, else over TCP (:func:`~covey.runtime.net.transport.exchange`)."""
        path = self._path(address, ".s")
        now = time.monotonic()
        if self._server is None or address == self.own or not self._usable(path, now):
            return await exchange(address, data, timeout)
        deadline = asyncio.get_running_loop().time() + timeout  # the whole exchange
        try:
            async with asyncio.timeout_at(deadline):
                reader, writer = await asyncio.open_unix_connection(path)
        except (FileNotFoundError, ConnectionRefusedError):
            self._fail(path, now)
            self.counters["stream_fallbacks"] += 1
            return await exchange(address, data, timeout)
        self.counters["streams_out"] += 1
        async with asyncio.timeout_at(deadline):
            return await converse(reader, writer, data)

    def info(self) -> dict[str, object]:
        """What ``covey info`` shows under ``local_channel``."""
        return {
            "directory": str(self.directory),
            "address": format_address(self.own),
            "bound": self._sock is not None,
            "peers_reached": len(self._worked),
            **self.counters,
        }
