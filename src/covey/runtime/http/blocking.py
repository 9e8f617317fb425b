"""Blocking queries, as Consul has them: ``GET ...?index=N&wait=30s``.

Every answer of a blocking route carries ``X-Covey-Index``, a number that grows whenever
something a reader could see changes (a member event, a fact, a setting, an election or
delivery event: every event the agent publishes except raw trace records). A client
passes the last index it saw back as ``index``: while the agent's index is still that
value the request is held, and it is answered as soon as the index moves, or when
``wait`` (default 5 minutes, at most 10) runs out — then with the same index, which tells
the client nothing changed. ``index=0`` (or none) answers at once.

The index starts at 1 at every agent start, so a client that sees it go down knows the
agent restarted and must re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING

from covey.core import TraceRecord
from covey.runtime.http.routes import INT, Param, Route
from covey.runtime.http.validate import Invalid

if TYPE_CHECKING:
    from covey.runtime.events import AgentEvent, EventHub

#: Seconds a blocking query is held when ``wait`` is not given.
DEFAULT_WAIT = 300.0
#: Longest ``wait`` accepted.
MAX_WAIT = 600.0
DURATION = re.compile(r"^([0-9]{1,6}(?:\.[0-9]{1,3})?)(ms|s|m)?$")
#: The response header holding the index.
INDEX_HEADER = "X-Covey-Index"

PARAMS = (
    Param(
        "index",
        {**INT, "minimum": 0},
        "Hold the answer until the agent's index (X-Covey-Index) differs from this one.",
    ),
    Param(
        "wait",
        {"type": "string", "pattern": DURATION.pattern},
        "Longest hold with index (30, 30s, 500ms, 2m; 0: none; default 5m; cut to 10m).",
    ),
)


def parameters(route: Route) -> tuple[Param, ...]:
    """Every parameter ``route`` takes: its own (located), and ``index``/``wait`` when it
    is a blocking route. What the document publishes and what the app checks."""
    return (*route.located(), *(PARAMS if route.blocking else ()))


def parse_wait(text: str | None) -> float:
    """``wait`` in seconds: the default when absent, at most :data:`MAX_WAIT` (a longer
    one is cut to it, as Consul does).

    Raises:
        Invalid: not a duration.
    """
    if text is None:
        return DEFAULT_WAIT
    return parse_seconds(text, "wait", MAX_WAIT)


def parse_seconds(text: str, what: str, limit: float) -> float:
    """A duration parameter (``30``, ``30s``, ``500ms``, ``2m``) in seconds, cut to
    ``limit``.

    Raises:
        Invalid: not a duration (the message names ``what``).
    """
    match = DURATION.match(text)
    if match is None:
        raise Invalid(f"{what}: {text!r} is not a duration (30, 30s, 500ms, 2m)")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
    return min(float(match.group(1)) * scale, limit)


class ChangeIndex:
    """The agent's change index, raised by every published event but trace records.

    Listens on the hub synchronously, so the index has moved before any subscriber runs.
    """

    def __init__(self, hub: EventHub) -> None:
        self.index = 1
        #: Queries held right now.
        self.waiting = 0
        self._changed = asyncio.Event()
        hub.listen(self._on_event)

    def _on_event(self, event: AgentEvent) -> None:
        if isinstance(event, TraceRecord):
            return
        self.bump()

    def bump(self) -> None:
        """Something changed: raise the index and release every held query."""
        self.index += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_past(self, index: int, timeout: float) -> int:
        """Return once the index differs from ``index`` or after ``timeout`` seconds;
        the index then."""
        if index != self.index:
            return self.index
        changed = self._changed
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
        finally:
            self.waiting -= 1
        return self.index
