"""A real ``dnsmasq`` for tests: one UDP port on 127.0.0.1, SRV records, stopped by PID."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

#: Where Debian's ``dnsmasq-base`` puts the binary.
DNSMASQ = Path("/usr/sbin/dnsmasq")
#: Why the SRV tests skip when it is missing.
MISSING = "dnsmasq not installed (.ci/sysdeps.sh installs dnsmasq-base)"
#: The SRV name the tests publish.
SRV_NAME = "_covey._udp.test"
#: The name SRV records point at when a test asks for a named target (A and AAAA).
TARGET_NAME = "agents.covey.test"
START_TIMEOUT = 10.0


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def srv_query(name: str, qid: int = 0x5EED) -> bytes:
    """A minimal DNS query for the SRV records of ``name`` (to probe the server)."""
    header = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    labels = b"".join(len(x).to_bytes(1, "big") + x.encode() for x in name.split("."))
    return header + labels + b"\x00\x00\x21\x00\x01"


class DnsServer:
    """``dnsmasq`` answering SRV records of :data:`SRV_NAME` for the given agent ports.

    The records live on the command line (``--srv-host``): SIGHUP makes dnsmasq re-read
    its hosts files, not ``srv-host`` lines, so :meth:`set_records` restarts the process
    on the same port.
    """

    def __init__(self, directory: Path, port: int | None = None, target: str = "127.0.0.1") -> None:
        self.directory = directory
        #: What the records point at: an IP literal, or the name ``TARGET_NAME`` whose
        #: address records (A 127.0.0.1 and AAAA ::1) the server also holds.
        self.target = target
        self.port = port or free_udp_port()
        self.ports: list[int] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "dnsmasq.log"

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, for ``--srv-resolver``."""
        return f"127.0.0.1:{self.port}"

    def start(self, ports: Sequence[int] | None = None) -> None:
        """Start serving one SRV record per port in ``ports`` (default: the current ones)
        and wait (bounded) until it answers a query."""
        assert self.proc is None, "already running"
        if ports is not None:
            self.ports = list(ports)
        argv = [
            str(DNSMASQ),
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",  # never the host's /etc/dnsmasq.conf
            f"--pid-file={self.directory / 'dnsmasq.pid'}",
            f"--host-record={TARGET_NAME},127.0.0.1,::1",
            *(f"--srv-host={SRV_NAME},{self.target},{p}" for p in self.ports),
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + START_TIMEOUT
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            while time.monotonic() < end and self.proc.poll() is None:
                try:
                    s.sendto(srv_query(SRV_NAME), ("127.0.0.1", self.port))
                    if s.recv(4096):
                        return
                except OSError:  # not listening yet (refused or no answer)
                    pass
        self.stop()
        raise RuntimeError(f"dnsmasq did not start:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        """Stop the process by its PID (SIGTERM, then SIGKILL after 5 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)

    def set_records(self, ports: Sequence[int]) -> None:
        """Serve records for ``ports`` from now on (a restart on the same port)."""
        self.stop()
        self.start(ports)
