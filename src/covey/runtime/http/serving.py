"""Serving the HTTP API within bounds: connections, idle time, header and body sizes.

aiohttp's own defaults suit a server behind a proxy (an hour of keep-alive, no cap on
connections, no deadline on a request body). The agent's port faces its clients directly,
so here, on top of :func:`covey.runtime.http.app.make_app`:

* a connection over the port's cap (:class:`~covey.runtime.net.limits.PortGuard`) is
  closed as soon as it is accepted, before aiohttp sees it (``http_busy``);
* a connection that sends no whole request head within the agent's ``idle_timeout``, or
  stays idle that long between requests, is closed (aiohttp's keep-alive timer, which
  also runs before the first request) and counted (``http_timeout``);
* a request body must arrive whole within ``idle_timeout`` too (read by a middleware
  before the handler runs; 408 and closed otherwise), and be at most ``MAX_BODY``
  octets (413, ``http_oversized``);
* a request line or header field above :data:`MAX_HEADER` octets is answered 400 by
  aiohttp's parser and counted as ``http_oversized``, logged at most once per 10 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from covey.core import Address, format_address
from covey.runtime.net.limits import DEFAULT_IDLE_TIMEOUT, PortGuard

if TYPE_CHECKING:
    from covey.runtime.agent import Agent

#: Longest request line or header field accepted (aiohttp's default, stated here).
MAX_HEADER = 8190
#: Pending connections the kernel queues for us (the accept loop drains them quickly).
BACKLOG = 128

GUARD_KEY: web.AppKey[PortGuard] = web.AppKey("guard")
TIMEOUT_KEY: web.AppKey[float] = web.AppKey("idle_timeout")


class GuardedHandler(RequestHandler):
    """aiohttp's connection handler, counted against the port's guard."""

    def __init__(self, guard: PortGuard, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard.admit():
            cast(asyncio.Transport, transport).abort()  # over the cap: never handed on
            return
        self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._guard.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            super().data_received(data)

    def _process_keepalive(self) -> None:
        # aiohttp closes a connection idle past the keep-alive timeout here (also one
        # that never completed its first request head): count those it closes.
        was_closing = self._force_close
        super()._process_keepalive()
        if self._force_close and not was_closing:
            self._guard.timed_out()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, LineTooLong):
            self._guard.oversized(f"request head field above {MAX_HEADER} octets")
        elif isinstance(exc, HttpProcessingError):  # a malformed request: one line per 10 s
            self._guard.log_refusal(f"bad request: {exc!r}")
        else:
            super().log_exception(*args, **kw)


@web.middleware
async def body_deadline(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Read a request's body whole within the idle timeout, before the handler runs."""
    if request.body_exists:
        # (an app made by make_app alone, as some tests do, has no guard: not counted)
        guard = request.app.get(GUARD_KEY)
        try:
            async with asyncio.timeout(request.app.get(TIMEOUT_KEY, DEFAULT_IDLE_TIMEOUT)):
                await request.read()  # kept by aiohttp: the handler reads it again
        except TimeoutError:
            if guard is not None:
                guard.timed_out()
            request.protocol.force_close()  # answered, then closed (no lingering read)
            raise web.HTTPRequestTimeout(text="request body too slow") from None
        except web.HTTPRequestEntityTooLarge:
            if guard is not None:
                guard.oversized(f"request body above {request.client_max_size} octets")
            raise
    return await handler(request)


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are :class:`GuardedHandler` objects (aiohttp's
    ``TCPSite`` with its own protocol factory; ``runner.cleanup()`` closes it)."""

    def __init__(
        self, runner: web.AppRunner, address: Address, guard: PortGuard, timeout: float
    ) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self._address = address
        self._guard = guard
        self._timeout = timeout

    @property
    def name(self) -> str:
        """The site's URL."""
        return f"http://{format_address(self._address)}"

    async def start(self) -> None:
        """Bind and serve."""
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def protocol() -> GuardedHandler:
            return GuardedHandler(
                self._guard,
                server,
                loop=loop,
                keepalive_timeout=self._timeout,
                access_log=None,
                max_line_size=MAX_HEADER,
                max_field_size=MAX_HEADER,
            )

        self._server = await loop.create_server(
            protocol, self._address[0], self._address[1], reuse_address=True, backlog=BACKLOG
        )


async def start_guarded(
    agent: Agent, app: web.Application, address: Address, guard: PortGuard
) -> web.AppRunner:
    """Serve ``app`` on ``address`` within the bounds of the module docstring; call
    ``cleanup()`` on the result to stop."""
    timeout = agent.config.idle_timeout
    app[GUARD_KEY] = guard
    app[TIMEOUT_KEY] = timeout
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await GuardedSite(runner, address, guard, timeout).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
