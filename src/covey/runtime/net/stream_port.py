"""The inbound side of the TCP stream port: one request frame, one reply, bounded.

Peers open a connection to our stream port for push-pull exchanges, TCP pings and the
capabilities' streams: each connection carries exactly one length-prefixed request frame
and gets at most one reply frame. What a client may hold is bounded (see
:mod:`covey.runtime.net.limits`): the connection counts against the port's cap, the whole
exchange must end within the idle timeout (an idle or trickling client is closed and
counted as ``stream_timeout``), and a length prefix above :data:`MAX_STREAM_FRAME` is
refused before any of the frame is read (``stream_oversized``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from covey.core import Address
from covey.runtime.net.limits import PortGuard
from covey.runtime.net.transport import StreamFrameError, frame_stream, read_frame

log = logging.getLogger("covey.transport")

#: Answers one request frame from an address (the driver's ``handle_stream``), or None.
StreamHandler = Callable[[bytes, Address], Awaitable[bytes | None]]


async def serve_stream(
    handle: Callable[[], StreamHandler | None],
    guard: PortGuard,
    timeout: float,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Read one frame, answer it through ``handle()`` (None: not serving yet), reply.

    Never raises for what the peer did; the caller closes the connection and gives back
    its slot.
    """
    peer = writer.get_extra_info("peername") or ("?", 0)
    try:
        async with asyncio.timeout(timeout):
            frame = await read_frame(reader)
            handler = handle()
            if handler is None:
                return
            reply = await handler(frame, (peer[0], peer[1]))
            if reply is not None:
                writer.write(frame_stream(reply))
                await writer.drain()
    except TimeoutError:
        guard.timed_out()
        log.debug("inbound stream from %s timed out", peer)
    except StreamFrameError as exc:
        guard.oversized(f"{exc} (from {peer[0]})")
    except (OSError, asyncio.IncompleteReadError) as exc:
        log.debug("inbound stream from %s failed: %r", peer, exc)
