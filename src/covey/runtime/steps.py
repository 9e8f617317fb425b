"""What one call into the core produced, held until its effects are durable, and the
writer thread's work on them (see :mod:`covey.runtime.driver`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from covey.core import Datagram, Event, StreamRequest
from covey.core.effects import Effect
from covey.runtime.events import AgentEvent

log = logging.getLogger("covey.driver")

EffectWriter = Callable[[Effect], None]


@dataclass(eq=False)
class Step:
    """What one call into the core produced, waiting for its effects to be durable."""

    at: float
    datagrams: list[Datagram]
    streams: list[StreamRequest]
    events: list[Event | AgentEvent]
    #: False while its effects are being written (a step with none is ready at once).
    ready: bool = True
    #: Set once the step went out (only made for an inbound stream that must wait).
    sent: asyncio.Future[None] | None = field(default=None)


def write_all(writes: list[tuple[EffectWriter, Effect]]) -> list[tuple[Effect, str]]:
    """(writer thread) Carry out one step's effects in order; returns the failed ones."""
    failed = []
    for writer, effect in writes:
        try:
            writer(effect)
        except Exception as exc:
            failed.append((effect, str(exc)))
            log.exception("writing %s failed", type(effect).__name__)
    return failed
