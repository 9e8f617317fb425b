"""The collector's TCP server: sealed JSON lines, one request and one answer at a time.

Every line is a Fernet token sealed with the cluster key (the ``--rpc`` endpoint's
:class:`~covey.runtime.control.server.SealedCodec`: tokens older than 60 s or seen before
are refused). A line that does not open — a wrong key, garbage, a replay — is answered
with a plain ``{"ok": false, "error": ...}`` line (the sender may not hold the key),
counted, and the connection closed: nothing is stored and nothing is told. A line that
opens but is not a well-formed request (not JSON, not an object, unknown op, a
wrong-shaped record) gets a sealed error answer, is counted as ``malformed``, and the
connection stays open.

Bounded everywhere: lines of at most 1 MiB (longer: counted, answered, closed), at most
:data:`MAX_CONNECTIONS` at once (more are answered and closed), a connection idle for
:data:`IDLE_TIMEOUT` seconds is closed, and nothing a connection does can raise out of
its handler or stop the server. Only ``stop`` (or SIGTERM, see daemon.py) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from covey.core import format_address
from covey.runtime.collector import views
from covey.runtime.collector.records import RecordError, check_batch
from covey.runtime.collector.store import StoreError, TraceStore
from covey.runtime.control.server import ControlError, LineCodec, SealedCodec

log = logging.getLogger("covey.collector")

#: Longest line accepted: 1 MiB, its own and not the control endpoints' 256 KiB, because a
#: batch as the client cuts it (``client.BATCH_OCTETS`` of records' JSON) grows by a third
#: when sealed.
LINE_LIMIT = 1 << 20
#: Most connections served at once.
MAX_CONNECTIONS = 256
#: Seconds a connection may stay silent before it is closed.
IDLE_TIMEOUT = 60.0
#: Longest ``stable`` window, seconds.
MAX_WINDOW = 86_400.0
#: Most records one ``timeline`` answer holds.
MAX_LIMIT = 100_000
#: After a line too long: at most this much more is read and dropped, for at most this
#: long, before the connection is closed.
DISCARD_LIMIT = 16 << 20
DISCARD_TIME = 5.0
#: The operations, as ``unknown op`` errors list them.
OPS = ("traces", "members", "stable", "timeline", "stats", "stop")

# SealedCodec.decode's refusals before the token opened (see runtime/control/server.py);
# anything else it raises is about the opened content.
_UNOPENED = {"unauthenticated": "unauthenticated", "replayed request": "replayed"}
_PLAIN = LineCodec()


class RequestError(Exception):
    """A request was refused; the message goes back to the sender."""


def _number(request: dict[str, Any], name: str, default: float | None, high: float) -> Any:
    value = request.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"{name} must be a number")
    if not math.isfinite(value) or not 0 <= value <= high:
        raise RequestError(f"{name} must be between 0 and {high:g}")
    return value


async def _discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then read and drop what the peer is still sending (bounded in octets and
    time) before the connection is closed: closing with unread data would reset it, and
    the reset can destroy the answer before the peer reads it."""
    with contextlib.suppress(OSError):
        if writer.can_write_eof():
            writer.write_eof()
    left = DISCARD_LIMIT
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(DISCARD_TIME):
            while left > 0 and (chunk := await reader.read(min(left, 65536))):
                left -= len(chunk)


class Collector:
    """Serves one store on one TCP address until :meth:`request_stop`.

    Args:
        store: where records go.
        keys: the cluster keys (the first seals the answers, any opens a request).
        data_dir: named in ``stats``.
        clock: wall time (the collector's clock; offsets are measured against it).
    """

    def __init__(
        self,
        store: TraceStore,
        keys: list[bytes],
        *,
        data_dir: Path,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.data_dir = data_dir
        self.address = ""
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._codec = SealedCodec(keys)  # one for all connections: replays are global
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stop = asyncio.Event()
        self._started = clock()

    async def start(self, host: str, port: int) -> str:
        """Bind and listen; returns ``HOST:PORT`` (the port chosen when ``port`` is 0).
        Raises OSError when the address cannot be bound."""
        self._server = await asyncio.start_server(
            self._connection, host, port, limit=LINE_LIMIT, reuse_address=True
        )
        bound = self._server.sockets[0].getsockname()
        self.address = format_address((bound[0], bound[1]))
        return self.address

    def request_stop(self) -> None:
        """Make :meth:`serve` return (after the current answers are written)."""
        self._stop.set()

    async def serve(self, flush_every: float = 5.0) -> None:
        """Serve until stopped, writing the counters every ``flush_every`` seconds; then
        close the socket and every connection, flush and close the store."""
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), flush_every)
                self._flush()
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the listening socket, the connections and the store (idempotent)."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
            self._server = None
            self._flush()
            self.store.close()

    def _flush(self) -> None:
        try:
            self.store.flush()
        except StoreError as exc:
            log.error("%s", exc)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= self.max_connections:
            self.store.count("refused_connections")
            with contextlib.suppress(Exception):
                writer.write(_PLAIN.encode({"ok": False, "error": "too many connections"}))
                writer.close()
            return
        self.store.count("connections")
        self._writers.add(writer)
        try:
            await self._serve_connection(reader, writer)
        except OSError:  # the peer went away while we answered: nothing to tell anyone
            pass
        except Exception:  # never out of a handler: log it, close the connection
            self.store.count("errors")
            log.exception("connection handler failed")
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while not self._stop.is_set():
            try:
                line = await asyncio.wait_for(reader.readline(), self.idle_timeout)
            except TimeoutError:
                self.store.count("idle_closed")
                return
            except ValueError:  # longer than the StreamReader's limit
                self.store.count("malformed")
                error = f"line longer than {LINE_LIMIT} octets"
                writer.write(_PLAIN.encode({"ok": False, "error": error}))
                await writer.drain()
                await _discard(reader, writer)
                return
            except (OSError, asyncio.IncompleteReadError):
                return
            if not line:
                return
            if not line.strip():
                continue
            try:
                request = self._codec.decode(line)
            except ControlError as exc:
                unopened = _UNOPENED.get(str(exc))
                if unopened is not None:
                    self.store.count(unopened)
                    writer.write(_PLAIN.encode({"ok": False, "error": str(exc)}))
                    await writer.drain()
                    return
                self.store.count("malformed")
                answer: dict[str, Any] = {"ok": False, "error": str(exc)}
            else:
                answer = self.answer(request)
            writer.write(self._codec.encode(answer))
            await writer.drain()

    def answer(self, request: object) -> dict[str, Any]:
        """The answer to one opened request (never raises)."""
        self.store.count("requests")
        try:
            return {"ok": True, "result": self.handle(request)}
        except (RequestError, RecordError) as exc:
            self.store.count("malformed")
            return {"ok": False, "error": str(exc)}
        except StoreError as exc:
            self.store.count("errors")
            log.error("%s", exc)
            return {"ok": False, "error": str(exc)}
        except Exception:
            self.store.count("errors")
            log.exception("request failed: %.200r", request)
            return {"ok": False, "error": "internal error (see the collector's log)"}

    def handle(self, request: object) -> object:
        """Carry out one request; its result. Raises RequestError, RecordError, StoreError."""
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            raise RequestError('a request must be an object with an "op" string')
        op = request["op"]
        if op == "traces":
            stored, duplicates = self.store.add(check_batch(request), self._clock())
            return {"stored": stored, "duplicates": duplicates}
        if op == "members":
            return views.members(self.store.view_records(views.MEMBER_STATES))
        if op == "stable":
            window = float(_number(request, "for", 5.0, MAX_WINDOW))
            return views.stable(self.store.view_records(views.MEMBER_STATES), self._clock(), window)
        if op == "timeline":
            return self._timeline(request)
        if op == "stats":
            return self.stats()
        if op == "stop":
            log.info("stop requested")
            self.request_stop()
            return {"stopping": True}
        raise RequestError(f"unknown op {op!r} ({', '.join(OPS)})")

    def _timeline(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        node = request.get("node")
        if node is not None and not isinstance(node, str):
            raise RequestError("node must be a name or a node id")
        since = _number(request, "since", None, math.inf)
        limit = request.get("limit", 10_000)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise RequestError(f"limit must be an integer 1..{MAX_LIMIT}")
        # The store filters and orders in SQL; views.timeline is the definition (and cheap
        # on what is left).
        found = self.store.records(node=node, since=since, limit=limit)
        return views.timeline(found, node, since, limit)

    def stats(self) -> dict[str, Any]:
        """The counters and where this collector is: pid, address, data directory, log."""
        return {
            **self.store.stats(),
            "pid": os.getpid(),
            "address": self.address,
            "data": str(self.data_dir),
            "uptime": round(self._clock() - self._started, 3),
            "senders": self.store.senders(),
        }
