"""The thin asyncio adapter around one protocol core (aioquic's ``QuicConnectionProtocol``).

Every entry into the core goes through :meth:`CoreDriver._call`: read the clock once, call
the core, then *pump* — send the datagrams it produced, start the TCP exchanges it asked
for, publish its events and re-arm the single ``loop.call_at`` at its next deadline. There
is no polling loop: the core decides when it next needs to run.

Durable state first, off the loop's thread (etcd raft's ``Ready``: "save before sending"):
a step whose core hands out effects (:meth:`Node.effects_to_apply`) gives them to one
writer thread and *holds* its datagrams, stream requests and events until they are
written; every later step queues behind a held one, so what leaves keeps the cores'
order. A step with no effects while nothing is held goes out at once: the common path
gains no latency and no thread hop. Nor does a step whose writers are all
:class:`~covey.runtime.steps.InlineWriter` (a WAL append, no fsync) while nothing is
held: they run on the loop's thread before the step goes out. The event loop never
waits for a disk.

Nothing that arrives from the network may raise out of here. Exceptions in a receive path
are caught, counted as ``internal_error`` and logged with their traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from covey.core import Address, Datagram, Node, StreamRequest
from covey.core.effects import Effect
from covey.runtime.events import AgentEvent, ClockLeap
from covey.runtime.net.interface_stats import Received, Sendto
from covey.runtime.net.transport import StreamFrameError
from covey.runtime.net.transport import exchange as tcp_exchange
from covey.runtime.steps import EffectWriter, Step, failed_events, inline, write_all

log = logging.getLogger("covey.driver")

Spawn = Callable[[Coroutine[Any, Any, None]], object]
Exchange = Callable[[Address, bytes, float], Coroutine[Any, Any, bytes]]
T = TypeVar("T")


class CoreDriver:
    """Moves bytes and time between asyncio and a :class:`covey.core.Node`.

    Args:
        node: the protocol core (not yet started).
        unicast: sends on the agent's own UDP socket.
        discovery: (sender, destination) pairs a group datagram is sent to, one per
            interface.
        spawn: starts a background coroutine (the agent's TaskGroup ``create_task``).
        publish: receives every core and runtime event.
        stream_timeout: seconds one outgoing TCP exchange may take.
        clock_leap: wall-clock jumps above this many seconds are reported.
        effect_writers: per effect type, what makes it durable (effects of other types
            need no disk here and are dropped). Writers run on the driver's one writer
            thread (InlineWriters, when nothing is held, on the loop's), in order. A
            writer that raises is logged and counted as ``effect_error``, and its step
            is released all the same: the protocol copes
            with a lost write better than with a node that stops talking.
        counters: where the runtime counters go (default: a new ``Counter``; the agent
            passes its own, which its ports' guards share).
        exchange: makes one outgoing stream exchange (default: TCP; or the local channel's).
    """

    def __init__(
        self,
        node: Node,
        unicast: Sendto,
        discovery: list[tuple[Sendto, Address]],
        *,
        spawn: Spawn,
        publish: Callable[[AgentEvent], None],
        stream_timeout: float,
        clock_leap: float,
        effect_writers: Mapping[type[Effect], EffectWriter] | None = None,
        counters: Counter[str] | None = None,
        exchange: Exchange | None = None,
    ) -> None:
        self.node = node
        self.loop = asyncio.get_running_loop()
        self._unicast = unicast
        self._discovery = discovery
        self._spawn = spawn
        self._publish = publish
        self._stream_timeout = stream_timeout
        self._exchange = exchange or tcp_exchange
        self._clock_leap = clock_leap
        self._effect_writers = dict(effect_writers or {})
        #: Steps waiting (FIFO) for their effects, or for an earlier step's, to be written.
        self._held: deque[Step] = deque()
        self._writer: ThreadPoolExecutor | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._streams: set[int] = set()
        self.closed = False
        #: Runtime counters: internal_error, effect_error, send_error, clock_leap, streams_*...
        self.counters: Counter[str] = Counter(effect_error=0) if counters is None else counters
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

    def datagram_received(self, data: bytes, addr: Address) -> Received:
        """Feed one datagram from any UDP socket; never raises. Returns the sender's id,
        or why it was dropped (None once closed), for the per-interface counters."""
        if self.closed:
            return None
        if self.drop and addr in self.drop:
            self.counters["dropped_by_rule"] += 1
            return "dropped_by_rule"
        try:
            now = self.now()
            got = self.node.receive_datagram(data, addr, now=now)
            self._pump(now)
        except Exception:
            self._internal_error("datagram from %s:%d", *addr)
            return "internal_error"
        return got if isinstance(got, bytes) else got.value

    def datagram_refused(self, addr: Address) -> None:
        """The kernel refused a datagram we sent to ``addr`` (ICMP port unreachable)."""
        if self.closed:
            return
        self.counters["udp_refused"] += 1
        try:
            now = self.now()
            self.node.unreachable(addr, now=now)
            self._pump(now)
        except Exception:
            self._internal_error("refusal from %s:%d", *addr)

    async def handle_stream(self, frame: bytes, addr: Address) -> bytes | None:
        """Answer one inbound TCP request frame. Never raises.

        When the step that made the reply has effects (or queues behind one that has), the
        reply waits until they are written, like the step's datagrams.
        """
        if self.closed:
            return None
        try:
            now = self.now()
            reply = self.node.handle_stream(frame, addr, now=now)
            step = self._pump(now)
        except Exception:
            self._internal_error("stream from %s:%d", *addr)
            return None
        if step is not None:
            if step.sent is None:
                step.sent = self.loop.create_future()
            await step.sent
        return reply

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

    @property
    def held(self) -> int:
        """Steps waiting for effects to be written before they go out."""
        return len(self._held)

    async def drain(self, timeout: float) -> bool:
        """Wait until every held step went out (at most ``timeout`` s); True when so."""
        if not self._held:
            return True
        last = self._held[-1]
        if last.sent is None:
            last.sent = self.loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(last.sent)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Stop the timer, ignore anything arriving from now on, stop the writer thread.

        The writer thread finishes the write in progress and those queued (they are the
        node's durable state); steps still held are not sent any more.
        """
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        for step in self._held:
            if step.sent is not None and not step.sent.done():
                step.sent.set_result(None)
        self._held.clear()

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

    def _pump(self, now: float) -> Step | None:
        """Collect one step's output; send it now, or hold it (returned) behind its writes."""
        node = self.node
        writes = [
            (w, e) for e in node.effects_to_apply() if (w := self._effect_writers.get(type(e)))
        ]
        step = Step(
            now,
            list(node.datagrams_to_send(now=now)),
            list(node.streams_to_open(now=now)),
            list(node.pop_events()),
        )
        self._arm(node.get_timer())
        if writes and not self._held and inline(writes):
            # Nothing queued on the writer thread (it is idle): write here, in order.
            failed = write_all(writes)
            self.counters["effect_error"] += len(failed)
            step.events[:0] = failed_events(now, failed)
            writes = []
        if not writes and not self._held:
            self._release(step)
            return None
        self._held.append(step)
        if writes:
            step.ready = False
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="covey-effects")
            done = self._writer.submit(write_all, writes)
            done.add_done_callback(lambda f: self._written_threadsafe(step, f))
        return step

    def _written_threadsafe(self, step: Step, done: Future[list[tuple[Effect, str]]]) -> None:
        """(writer thread) Hand the finished writes back to the loop."""
        # RuntimeError: the loop is closed, nothing is left to send.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._written, step, done.result())

    def _written(self, step: Step, failed: list[tuple[Effect, str]]) -> None:
        """(loop) A step's effects are durable: release every ready step at the head.

        A failed write is published as :class:`EffectFailed` ahead of the step's own
        events, so that no subscriber acts on an event whose record is missing (the
        action runner refuses an action whose ``RecordAction`` failed).
        """
        self.counters["effect_error"] += len(failed)
        step.events[:0] = failed_events(step.at, failed)
        step.ready = True
        while self._held and self._held[0].ready:
            head = self._held.popleft()
            if not self.closed:
                self._release(head)
            if head.sent is not None and not head.sent.done():
                head.sent.set_result(None)

    def _release(self, step: Step) -> None:
        """Send one step's datagrams, start its streams and publish its events."""
        try:
            for dgram in step.datagrams:
                self._send(dgram)
            for req in step.streams:
                self._streams.add(req.request_id)
                self._spawn(self._run_stream(req))
            for event in step.events:
                self._publish(event)
        except Exception:
            self._internal_error("release of a step")

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
            reply = await self._exchange(req.address, req.data, self._stream_timeout)
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
