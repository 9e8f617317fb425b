"""Sending trace records to a collector: streamed (``--collector``) or once (``trace send``).

Both speak the collector protocol of docs/traces.md: one TCP connection, JSON lines
sealed as Fernet tokens with the cluster key (:class:`~covey.runtime.control.server.
SealedCodec`), a ``traces`` request per batch of at most :data:`BATCH` records, each
answered before the next is sent.

:class:`CollectorLink` streams: it sends every record the collector has not stored
(``buffer.acked``), oldest first — so what happened before the collector was reachable
arrives first — then waits for new ones. A failure (refused, timed out, an error answer)
is retried with a doubling back-off up to :data:`BACKOFF_MAX`; what falls out of the
ring meanwhile is counted in ``buffer.lost``. Records left from an earlier run of the
agent (``backlog``, read from the data directory) go before the buffer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from covey.core import Address, format_address
from covey.runtime.control.client import ClientError, open_answer
from covey.runtime.control.server import SealedCodec
from covey.runtime.traces.records import TraceBuffer

log = logging.getLogger("covey.traces")

#: Records per ``traces`` request.
BATCH = 500
#: Seconds one connect or one answer may take.
TIMEOUT = 5.0
#: Longest wait between two attempts to reach the collector.
BACKOFF_MAX = 10.0
#: Octets of one answer line read at most.
LINE_LIMIT = 1 << 20


class LinkError(ClientError):
    """The collector could not be reached, or refused a batch."""


class Connection:
    """One sealed connection to a collector."""

    def __init__(self, address: Address, keys: Sequence[bytes]) -> None:
        self.address = address
        self._codec = SealedCodec(list(keys))
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, op: str, **fields: Any) -> Any:
        """Send one request; its result (raises :class:`LinkError`)."""
        try:
            if self._writer is None:
                async with asyncio.timeout(TIMEOUT):
                    self._reader, self._writer = await asyncio.open_connection(
                        *self.address, limit=LINE_LIMIT
                    )
            assert self._reader is not None
            self._writer.write(self._codec.encode({"op": op, **fields}))
            async with asyncio.timeout(TIMEOUT):
                await self._writer.drain()
                line = await self._reader.readline()
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise LinkError(f"collector {format_address(self.address)}: {exc!r}") from None
        if not line:
            await self.close()
            raise LinkError("the collector closed the connection")
        try:
            answer = open_answer(self._codec, line, "the collector", LinkError)
        except LinkError:
            await self.close()
            raise
        if not isinstance(answer, dict) or not answer.get("ok"):
            error = answer.get("error") if isinstance(answer, dict) else "malformed answer"
            raise LinkError(f"the collector refused: {error}")
        return answer.get("result")

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _batch(identity: dict[str, Any], records: list[dict[str, Any]], lost: int) -> dict[str, Any]:
    return {**identity, "sent": time.time(), "records": records, "lost": lost}


async def send_records(
    address: Address,
    keys: Sequence[bytes],
    identity: dict[str, Any],
    records: list[dict[str, Any]],
    lost: int = 0,
) -> int:
    """Send ``records`` once (``covey trace send``); returns how many the collector stored.

    Raises:
        LinkError: the collector could not be reached or refused.
    """
    conn = Connection(address, keys)
    stored = 0
    try:
        for i in range(0, max(len(records), 1), BATCH):
            result = await conn.request("traces", **_batch(identity, records[i : i + BATCH], lost))
            stored += int(result.get("stored", 0)) if isinstance(result, dict) else 0
    finally:
        await conn.close()
    return stored


class CollectorLink:
    """Streams a buffer to one collector (see the module docstring).

    Args:
        address: the collector's (host, port).
        keys: the cluster keys (the first seals).
        buffer: the agent's ring buffer.
        identity: ``node_id``, ``node``, ``cluster``, ``boot`` of this agent.
        backlog: records of an earlier run, not yet stored by a collector.
    """

    def __init__(
        self,
        address: Address,
        keys: Sequence[bytes],
        buffer: TraceBuffer,
        identity: dict[str, Any],
        backlog: list[dict[str, Any]] | None = None,
    ) -> None:
        self.address = address
        self._keys = keys
        self.buffer = buffer
        self.identity = identity
        self.backlog = list(backlog or [])
        self.connected = False
        self.last_error = ""
        self.sent = 0

    async def run(self) -> None:
        """Stream until cancelled."""
        conn = Connection(self.address, self._keys)
        backoff = 0.25
        try:
            while True:
                try:
                    await self._flush(conn)
                    self.connected, self.last_error, backoff = True, "", 0.25
                except LinkError as exc:
                    if self.connected or not self.last_error:
                        log.info("traces: %s (retrying)", exc)
                    self.connected, self.last_error = False, str(exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                await self.buffer.wait_after(self.buffer.acked, 5.0)
        finally:
            await conn.close()

    async def _flush(self, conn: Connection) -> None:
        """Send the backlog, then every record the collector has not stored."""
        while self.backlog:
            chunk = self.backlog[:BATCH]
            identity = {**self.identity, "boot": chunk[0].get("boot", self.identity["boot"])}
            await conn.request("traces", **_batch(identity, chunk, 0))
            del self.backlog[: len(chunk)]
            self.sent += len(chunk)
        buf = self.buffer
        while records := buf.after(buf.acked, BATCH):
            await conn.request("traces", **_batch(self.identity, records, buf.lost))
            buf.acked = max(buf.acked, records[-1]["seq"])
            self.sent += len(records)
