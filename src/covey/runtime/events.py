"""Runtime events and their fan-out to any number of subscribers.

The core's events (member joined/updated/suspect/failed/left/recovered/reaped, traces) are
joined by the runtime's own (:class:`ClockLeap`, :class:`EffectFailed`). Each subscriber
gets a bounded queue; a subscriber that stops reading loses its oldest events (counted)
rather than growing memory or slowing the protocol down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from covey.core import (
    Event,
    ExtensionEvent,
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberRecovered,
    MemberSuspect,
    MemberUpdated,
    NameConflict,
    TraceRecord,
)
from covey.core.effects import Effect
from covey.core.records import record

#: Events a slow subscriber may have queued before its oldest are dropped.
QUEUE_LIMIT = 4096

log = logging.getLogger("covey.events")


@record
class ClockLeap:
    """The wall clock jumped relative to the monotonic clock by more than the threshold.

    Timers run on the monotonic clock and are unaffected; the runtime re-bases the wall
    offset used for Fernet timestamps.

    Attributes:
        at: monotonic time of detection.
        delta: seconds the wall clock moved beyond what monotonic time explains.
    """

    at: float
    delta: float


@record
class EffectFailed:
    """A durable effect could not be written (its writer raised).

    Published before the events of the core step that handed the effect out, so a
    subscriber that acts on those events (the action runner: no handler may run for an
    unrecorded action) learns of the failure first.

    Attributes:
        at: monotonic time of the step.
        effect: the effect that is not on disk.
        error: the writer's message.
    """

    at: float
    effect: Effect
    error: str


AgentEvent = Event | ClockLeap | EffectFailed

_KINDS: dict[type, str] = {
    MemberJoined: "member-joined",
    MemberUpdated: "member-updated",
    MemberSuspect: "member-suspect",
    MemberFailed: "member-failed",
    MemberLeft: "member-left",
    MemberRecovered: "member-recovered",
    MemberReaped: "member-reaped",
    TraceRecord: "trace",
    ClockLeap: "clock-leap",
    EffectFailed: "effect-failed",
    NameConflict: "name-conflict",
}


def event_kind(event: AgentEvent) -> str:
    """Short name of an event (``member-failed``...)."""
    return _KINDS.get(type(event), type(event).__name__.lower())


def event_to_json(event: AgentEvent, wall_offset: float) -> dict[str, object]:
    """A JSON-ready dict for ``covey monitor`` and the control protocol."""
    if isinstance(event, ExtensionEvent):
        out: dict[str, object] = event.to_json()
        at = getattr(event, "at", None)
        if isinstance(at, float | int):
            out.setdefault("time", at + wall_offset)
        return out
    out = {"event": event_kind(event), "time": event.at + wall_offset}
    if isinstance(event, MemberEvent):
        out["member"] = event.member.to_json()
    elif isinstance(event, TraceRecord):
        out.update(op=event.op.value, node=event.node, detail=event.detail, n=event.n)
    elif isinstance(event, ClockLeap):
        out["delta"] = event.delta
    elif isinstance(event, NameConflict):
        out.update(name=event.name, holder=event.holder.hex(), claimant=event.claimant.hex())
        out.update(refused=event.refused)
    elif isinstance(event, EffectFailed):
        out.update(effect=type(event.effect).__name__, error=event.error)
    return out


class Subscription:
    """One subscriber's view of the event stream; registered from creation on.

    Iterate it with ``async for``; it ends when the hub closes. Call :meth:`close` (or use
    it as a context manager) when done, so the hub stops queueing for it.
    """

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self.queue: asyncio.Queue[AgentEvent | None] = asyncio.Queue(QUEUE_LIMIT)
        if hub.closed:
            self.queue.put_nowait(None)
        else:
            hub._subscribers.add(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> AgentEvent:
        event = await self.queue.get()
        if event is None:
            self.queue.put_nowait(None)  # stay finished for later calls
            raise StopAsyncIteration
        return event

    async def get(self, timeout: float | None = None) -> AgentEvent | None:
        """The next event, or None at the end of the stream or after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except (StopAsyncIteration, TimeoutError):
            return None

    def close(self) -> None:
        """Stop receiving events."""
        self._hub._subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    """Fans events out to subscribers, each with its own bounded queue."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._listeners: list[Callable[[AgentEvent], None]] = []
        self.dropped = 0
        self.closed = False

    def listen(self, fn: Callable[[AgentEvent], None]) -> None:
        """Call ``fn(event)`` for every event, synchronously as it is published.

        For feature code that must see every event (a subscription's queue is bounded and
        drops the oldest under load); ``fn`` must be quick and never block. Its exceptions
        are logged, never raised to the publisher.
        """
        self._listeners.append(fn)

    def publish(self, event: AgentEvent) -> None:
        """Hand ``event`` to every listener and subscriber (never blocks)."""
        for fn in self._listeners:
            try:
                fn(event)
            except Exception:
                log.exception("event listener %r failed", fn)
        for sub in self._subscribers:
            if sub.queue.full():
                sub.queue.get_nowait()
                self.dropped += 1
            sub.queue.put_nowait(event)

    def close(self) -> None:
        """End every subscription (their iterators finish)."""
        self.closed = True
        for sub in list(self._subscribers):
            if sub.queue.full():
                sub.queue.get_nowait()
            sub.queue.put_nowait(None)
        self._subscribers.clear()

    def subscribe(self) -> Subscription:
        """A new subscription, receiving every event published from now on."""
        return Subscription(self)
