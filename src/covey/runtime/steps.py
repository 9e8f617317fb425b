"""What one call into the core produced, held until its effects are durable, and the
writer thread's work on them (see :mod:`covey.runtime.driver`).

An :class:`InlineWriter` marks a writer whose every write is small and never waits for
the disk (no fsync: e.g. one SQLite WAL commit with ``synchronous=NORMAL``, its
checkpoints done on a thread of its own). The driver runs such writes on the loop's
thread when nothing is held: the step is as durable as after a hop to the writer thread,
without the hop's two thread switches (which cost milliseconds on a busy machine).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from covey.core import Datagram, Event, StreamRequest
from covey.core.effects import Effect
from covey.runtime.events import AgentEvent, EffectFailed

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


class InlineWriter:
    """An effect writer safe to run on the event loop's thread (see the module docstring).

    Args:
        write: the writer itself; it must not fsync nor wait on a lock held elsewhere.
    """

    def __init__(self, write: EffectWriter) -> None:
        self.write = write

    def __call__(self, effect: Effect) -> None:
        """Write ``effect`` (raises what the writer raises)."""
        self.write(effect)


def inline(writes: list[tuple[EffectWriter, Effect]]) -> bool:
    """True when every writer of a step may run on the loop's thread."""
    return all(isinstance(w, InlineWriter) for w, _ in writes)


def failed_events(at: float, failed: list[tuple[Effect, str]]) -> list[EffectFailed]:
    """The events that report a step's failed writes (published ahead of its own)."""
    return [EffectFailed(at, effect, error) for effect, error in failed]


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
