"""The thin asyncio adapter around one protocol core (aioquic's ``QuicConnectionProtocol``).

Every entry into the core goes through :meth:`CoreDriver._call`: read the clock once, call
the core, then *pump* — send the datagrams it produced, start the TCP exchanges it asked
for, publish its events and re-arm the single ``loop.call_at`` at its next deadline. There
is no polling loop: the core decides when it next needs to run. A step's durable effects
are written first of all; a writer that raises is logged, counted (``effect_error``) and
published as :class:`~covey.runtime.events.EffectFailed` *before* the step's events, and
the other effects, datagrams and events of the step still go out.

Nothing that arrives from the network may raise out of here. Exceptions in a receive path
are caught, counted as ``internal_error`` and logged with their traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from covey.core import Address, Datagram, Node, StreamRequest
from covey.core.effects import Effect
from covey.runtime.events import AgentEvent, ClockLeap, EffectFailed
from covey.runtime.net.transport import StreamFrameError, exchange

log = logging.getLogger("covey.driver")

Spawn = Callable[[Coroutine[Any, Any, None]], object]
T = TypeVar("T")


class CoreDriver:
    """Moves bytes and time between asyncio and a :class:`covey.core.Node`.

    Args:
        node: the protocol core (not yet started).
        unicast: the agent's own UDP transport.
        discovery: (transport, destination) pairs a group datagram is sent to.
        spawn: starts a background coroutine (the agent's TaskGroup ``create_task``).
        publish: receives every core and runtime event.
        stream_timeout: seconds one outgoing TCP exchange may take.
        clock_leap: wall-clock jumps above this many seconds are reported.
        effect_writers: per effect type, what makes it durable (effects of other types
            need no disk here and are dropped). A writer reports a failed write by raising.
    """

    def __init__(
        self,
        node: Node,
        unicast: asyncio.DatagramTransport,
        discovery: list[tuple[asyncio.DatagramTransport, Address]],
        *,
        spawn: Spawn,
        publish: Callable[[AgentEvent], None],
        stream_timeout: float,
        clock_leap: float,
        effect_writers: dict[type[Effect], Callable[[Effect], None]] | None = None,
    ) -> None:
        self.node = node
        self.loop = asyncio.get_running_loop()
        self._unicast = unicast
        self._discovery = discovery
        self._spawn = spawn
        self._publish = publish
        self._stream_timeout = stream_timeout
        self._clock_leap = clock_leap
        self._effect_writers = effect_writers or {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._streams: set[int] = set()
        self.closed = False
        #: Runtime counters: internal_error, send_error, clock_leap, streams_*...
        self.counters: Counter[str] = Counter()
        #: Testing aid (control op ``drop``): unicast traffic to or from these addresses is
        #: discarded, as if the network between us were cut. Empty in normal operation.
        self.drop: set[Address] = set()
        node.wall_offset = time.time() - self.loop.time()

    # ------------------------------------------------------------------ entry points

    def now(self) -> float:
        """The monotonic clock the core runs on (the event loop's)."""
        return self.loop.time()

    def start(self, join: tuple[Address, ...], incarnation: int = 0) -> None:
        """Start the core and contact the static seeds."""
        now = self.now()
        self.node.start(now=now, incarnation=incarnation)
        if join:
            self.node.join(join, now=now)
        self._pump(now)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        """Feed one datagram from any UDP socket. Never raises."""
        if self.closed:
            return
        if self.drop and addr in self.drop:
            self.counters["dropped_by_rule"] += 1
            return
        try:
            now = self.now()
            self.node.receive_datagram(data, addr, now=now)
            self._pump(now)
        except Exception:
            self._internal_error("datagram from %s:%d", *addr)

    def handle_stream(self, frame: bytes, addr: Address) -> bytes | None:
        """Answer one inbound TCP request frame. Never raises."""
        if self.closed:
            return None
        try:
            now = self.now()
            reply = self.node.handle_stream(frame, addr, now=now)
            self._pump(now)
            return reply
        except Exception:
            self._internal_error("stream from %s:%d", *addr)
            return None

    def call(self, fn: Callable[[float], T]) -> T:
        """Run ``fn(now)`` against the core, then send what it produced; returns its result.

        For feature code that steers its extension from outside a receive path (a control
        request, a finished handler). Exceptions are the caller's and propagate.
        """
        now = self.now()
        try:
            return fn(now)
        finally:
            self._pump(now)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Replace our tags (raises covey.core.ConfigError on bad tags: caller's misuse)."""
        now = self.now()
        self.node.set_tags(tags, now=now)
        self._pump(now)

    def leave(self) -> None:
        """Leave: the core emits the EXIT beacon and tells every live member directly."""
        if self.node.left:
            return
        now = self.now()
        self.node.leave(now=now)
        self._pump(now)

    def close(self) -> None:
        """Stop the timer and ignore anything arriving from now on."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ the pump

    def _on_timer(self) -> None:
        self._timer = None
        when, self._timer_when = self._timer_when, None
        if self.closed:
            return
        try:
            # call_at may fire up to one clock resolution early; never run the core
            # "before" the deadline it asked for, or it would ask for the same one again.
            now = max(self.now(), when or 0.0)
            self._check_clock(now)
            self.node.handle_timer(now=now)
            self._pump(now)
        except Exception:
            self._internal_error("timer")
            # Keep the protocol alive: try again shortly rather than never.
            self._arm(self.now() + 0.1)

    def _check_clock(self, now: float) -> None:
        offset = time.time() - now
        delta = offset - self.node.wall_offset
        # Always follow the wall clock, so Fernet timestamps stay right after NTP slews.
        self.node.wall_offset = offset
        if abs(delta) > self._clock_leap:
            self.counters["clock_leap"] += 1
            log.warning("wall clock leapt by %+.1f s (timers are unaffected)", delta)
            self._publish(ClockLeap(now, delta))

    def _pump(self, now: float) -> None:
        node = self.node
        # Durable state first: what a step persists is on disk before its datagrams leave
        # and before its events are published (handlers run on events).
        for effect in node.effects_to_apply():
            writer = self._effect_writers.get(type(effect))
            if writer is None:
                continue
            try:
                writer(effect)
            except Exception as exc:
                # Tell the subscribers before the step's events, so none acts on an event
                # whose record is missing (see EffectFailed).
                self.counters["effect_error"] += 1
                log.error("cannot write %s: %s", type(effect).__name__, exc)
                self._publish(EffectFailed(now, effect, str(exc)))
        for dgram in node.datagrams_to_send(now=now):
            self._send(dgram)
        for req in node.streams_to_open(now=now):
            self._streams.add(req.request_id)
            self._spawn(self._run_stream(req))
        for event in node.pop_events():
            self._publish(event)
        self._arm(node.get_timer())

    def _arm(self, deadline: float | None) -> None:
        if self.closed:
            return
        if self._timer is not None:
            if deadline == self._timer_when:
                return
            self._timer.cancel()
            self._timer = None
        self._timer_when = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _send(self, dgram: Datagram) -> None:
        try:
            if dgram.address is None:
                for transport, dest in self._discovery:
                    transport.sendto(dgram.data, dest)
            elif self.drop and dgram.address in self.drop:
                self.counters["dropped_by_rule"] += 1
            else:
                self._unicast.sendto(dgram.data, dgram.address)
        except (OSError, ValueError, TypeError) as exc:
            # e.g. an address that is not an IP literal; count it, the protocol copes.
            self.counters["send_error"] += 1
            log.debug("send to %s failed: %s", dgram.address, exc)

    # ------------------------------------------------------------------ streams

    async def _run_stream(self, req: StreamRequest) -> None:
        """One outgoing TCP exchange; finishes the core's request exactly once."""
        reply: bytes | None = None
        refused = False
        try:
            if self.drop and req.address in self.drop:
                await asyncio.sleep(self._stream_timeout)  # a cut network: no answer
                raise TimeoutError("dropped by rule")
            reply = await exchange(req.address, req.data, self._stream_timeout)
        except ConnectionRefusedError:
            refused = True
            self.counters["stream_refused"] += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError, StreamFrameError) as exc:
            self.counters["stream_failed"] += 1
            log.debug("stream to %s:%d failed: %r", *req.address, exc)
        except asyncio.CancelledError:
            self._finish_stream(req, None, refused=False)
            raise
        except Exception:
            self._internal_error("stream to %s:%d", *req.address)
        self._finish_stream(req, reply, refused=refused)

    def _finish_stream(self, req: StreamRequest, reply: bytes | None, *, refused: bool) -> None:
        if req.request_id not in self._streams:
            return
        self._streams.discard(req.request_id)
        try:
            now = self.now()
            if reply is not None:
                self.node.stream_reply(req.request_id, reply, now=now)
            else:
                self.node.stream_failed(req.request_id, refused=refused, now=now)
            if not self.closed:
                self._pump(now)
        except Exception:
            self._internal_error("stream completion")

    def _internal_error(self, what: str, *args: object) -> None:
        self.counters["internal_error"] += 1
        log.exception("internal error handling " + what, *args)
