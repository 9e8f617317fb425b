"""Bounds on what clients may hold on the agent's listening ports.

Every TCP-like port the agent listens on (the stream port, the unix control socket, the
remote control endpoint, the HTTP API) is given a :class:`PortGuard`: at most ``cap``
connections at once — one more is accepted and closed at once (accept-and-close keeps the
kernel's backlog moving, so a flood never leaves legitimate clients hanging in SYN
retries) — and counters for what was refused: ``<prefix>_busy`` (over the cap),
``<prefix>_timeout`` (a connection that took longer than the idle timeout to send a whole
request) and ``<prefix>_oversized`` (a frame, line or body above the port's limit).

The caps are sized against the process's descriptor limit (``RLIMIT_NOFILE``): the sum of
every port's cap plus :data:`RESERVED_FDS` (sockets of our own, outgoing exchanges, files,
the database) must fit, so the agent never runs out of descriptors however many clients
knock. Should it run out all the same (another part of the process leaking), asyncio's
accept loop does not spin: it logs, stops accepting and retries one second later.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Coroutine, MutableMapping
from typing import Any

from covey.core.records import record

log = logging.getLogger("covey.limits")

#: Connections one port serves at once by default (``max_connections``).
DEFAULT_MAX_CONNECTIONS = 256
#: Seconds a connection may take to send one whole request by default (``idle_timeout``).
DEFAULT_IDLE_TIMEOUT = 10.0
#: Descriptors kept out of the ports' share: our own sockets, outgoing streams, files.
RESERVED_FDS = 128
#: Fewest connections a port is given, whatever the descriptor limit.
MIN_CAP = 8
#: Seconds between two log lines about refused connections on one port.
REFUSAL_LOG_EVERY = 10.0


def descriptor_limit() -> int:
    """The process's soft limit on open descriptors (``RLIMIT_NOFILE``)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def port_cap(wanted: int, ports: int, limit: int | None = None) -> int:
    """The per-port connection cap: ``wanted``, lowered so that ``ports`` caps plus
    :data:`RESERVED_FDS` fit in the descriptor ``limit`` (default: the process's)."""
    limit = descriptor_limit() if limit is None else limit
    share = (limit - RESERVED_FDS) // max(1, ports)
    return max(MIN_CAP, min(wanted, share))


@record
class PortStatistics:
    """One port's connections now and what it refused since start."""

    open: int
    cap: int
    busy: int
    timeout: int
    oversized: int


class PortGuard:
    """Counts one port's connections and refusals (see the module docstring).

    Args:
        label: the port's name in ``covey info`` (``stream``, ``control``, ``rpc``,
            ``http``).
        prefix: the counters' prefix in the runtime counters (``stream``, ``control``...).
        cap: connections served at once.
        counters: the agent's runtime counters, where the refusals are added.
    """

    def __init__(
        self, label: str, prefix: str, cap: int, counters: MutableMapping[str, int]
    ) -> None:
        self.label = label
        self.prefix = prefix
        self.cap = cap
        self.open = 0
        self._counters = counters
        self._own = {"busy": 0, "timeout": 0, "oversized": 0}
        self._logged = -REFUSAL_LOG_EVERY
        self._quiet = 0

    def admit(self) -> bool:
        """Take a slot for a new connection; False (counted, logged) when full."""
        if self.open >= self.cap:
            self._count("busy")
            self.log_refusal(f"busy: {self.open} connections open (cap {self.cap})")
            return False
        self.open += 1
        return True

    def release(self) -> None:
        """Give back the slot of a connection that closed."""
        self.open = max(0, self.open - 1)

    def timed_out(self) -> None:
        """Count a connection closed for being too slow to send its request."""
        self._count("timeout")

    def oversized(self, what: str) -> None:
        """Count (and log, rate-limited) a refused frame, line or body above the limit."""
        self._count("oversized")
        self.log_refusal(what)

    def busy(self) -> None:
        """Count a connection refused by a finer rule than the cap (per-peer)."""
        self._count("busy")

    def statistics(self) -> PortStatistics:
        """A frozen record of this port's state."""
        return PortStatistics(self.open, self.cap, **self._own)

    def _count(self, what: str) -> None:
        self._own[what] += 1
        key = f"{self.prefix}_{what}"
        self._counters[key] = self._counters.get(key, 0) + 1

    def log_refusal(self, reason: str) -> None:
        """Log a refusal at most once every :data:`REFUSAL_LOG_EVERY` seconds, with the
        count of those not logged since (a flood must not fill the log; the counters
        have them all)."""
        now = time.monotonic()
        if now - self._logged < REFUSAL_LOG_EVERY:
            self._quiet += 1
            return
        quiet, self._quiet, self._logged = self._quiet, 0, now
        more = f" ({quiet} more since the last line)" if quiet else ""
        log.warning("%s port: connection refused: %s%s", self.label, reason, more)


async def closing(
    coro: Coroutine[Any, Any, None], writer: asyncio.StreamWriter, guard: PortGuard | None
) -> None:
    """Run one connection's handler, then close it and give its slot back to ``guard``
    (whatever the handler did: an exception is logged, never raised out of the server)."""
    try:
        await coro
    except Exception:
        log.exception("connection handler failed")
    finally:
        writer.close()
        if guard is not None:
            guard.release()
