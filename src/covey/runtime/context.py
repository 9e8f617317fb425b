"""What a runtime feature may use of its agent: the explicit, public :class:`AgentContext`.

A feature (:class:`covey.runtime.features.base.Feature`) never holds the
:class:`~covey.runtime.agent.Agent`. Its background work is started with a context that
offers exactly this:

* ``call(fn)`` — run ``fn(now)`` against the core and send what it produced (the driver's
  :meth:`~covey.runtime.driver.CoreDriver.call`); ``join(addresses)`` — contact join
  seeds; ``written(timeout)`` — wait until its durable effects are written; ``now()`` —
  the core's clock;
* ``spawn(coro)`` — a task under the agent's TaskGroup (cancelled at shutdown);
* ``publish(event)`` / ``subscribe()`` — the agent's :class:`~covey.runtime.events.EventHub`;
  ``wait_for(predicate, timeout)`` re-checks a condition after every event;
* ``config``, ``node_id``, ``name`` and read-only queries of the core (``members``,
  ``member_name``, ``find_member``, ``incarnation``, ``wall_offset``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from covey.core import Address, MemberInfo, Node, NodeStatistics
from covey.core.plugin import MemberDirectory
from covey.runtime.config.model import AgentConfig
from covey.runtime.events import AgentEvent, EventHub, Subscription

if TYPE_CHECKING:
    from covey.runtime.driver import CoreDriver

T = TypeVar("T")
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None] | None"]


class AgentContext:
    """One running agent as its features see it (see the module docstring).

    Args:
        config: the agent's configuration.
        node: the core; the context reads it, never steers it but through ``call``.
        hub: the agent's event hub.
        spawn: starts a task under the agent's TaskGroup (None once it is stopping).
        driver: the agent's driver, once it runs.
    """

    def __init__(
        self,
        config: AgentConfig,
        node: Node,
        hub: EventHub,
        spawn: Spawn,
        driver: CoreDriver,
    ) -> None:
        self.config = config
        self._node = node
        self._hub = hub
        self._spawn = spawn
        self._driver = driver

    # ------------------------------------------------------------------ the core

    @property
    def running(self) -> bool:
        """True until the agent's driver is closed."""
        return not self._driver.closed

    def call(self, fn: Callable[[float], T]) -> T:
        """Run ``fn(now)`` against the core, then send what it produced; returns its result.

        Raises:
            RuntimeError: the agent is not running any more.
        """
        if self._driver.closed:
            raise RuntimeError("agent is not running")
        return self._driver.call(fn)

    def join(self, addresses: Sequence[Address]) -> None:
        """Contact ``addresses`` as join seeds (the path of ``covey join`` and ``--join``).

        Raises:
            RuntimeError: the agent is not running any more.
        """
        seeds = tuple(addresses)
        self.call(lambda now: self._node.join(seeds, now=now))

    def now(self) -> float:
        """The monotonic clock the core runs on."""
        return self._driver.now()

    async def written(self, timeout: float) -> bool:
        """Wait until the durable effects of every step so far were written (or failed);
        False when they were not within ``timeout`` seconds.

        ``call`` returns before its step's effects are on disk (they are written on the
        driver's writer thread): a control operation that acknowledges something durable
        awaits this first.
        """
        return await self._driver.drain(timeout)

    # ------------------------------------------------------------------ tasks and events

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """Run ``coro`` under the agent's TaskGroup (closed unrun, None, when stopping)."""
        return self._spawn(coro)

    def publish(self, event: AgentEvent) -> None:
        """Hand ``event`` to every subscriber of the agent's events."""
        self._hub.publish(event)

    def subscribe(self) -> Subscription:
        """A subscription to the agent's events from now on (use it as a context manager)."""
        return self._hub.subscribe()

    def listen(self, fn: Callable[[AgentEvent], None]) -> None:
        """Call ``fn(event)`` synchronously for every event (never dropped; keep it quick)."""
        self._hub.listen(fn)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds; re-checked after every event, at least each second.

        Raises:
            TimeoutError: it did not hold within ``timeout`` seconds.
        """
        await wait_on_hub(self._hub, predicate, timeout)

    # ------------------------------------------------------------------ who we are

    @property
    def node_id(self) -> bytes:
        """This node's id."""
        return self._node.node_id

    @property
    def name(self) -> str:
        """This node's name."""
        return self.config.name

    @property
    def incarnation(self) -> int:
        """This node's current incarnation."""
        return self._node.incarnation

    @property
    def wall_offset(self) -> float:
        """Seconds to add to the core's clock for the wall clock."""
        return self._node.wall_offset

    def statistics(self) -> NodeStatistics:
        """The core's counters (traffic, drops per reason, health, member counts)."""
        return self._node.statistics()

    @property
    def members(self) -> MemberDirectory:
        """A read-only view of the member table."""
        return self._node.table

    def member_name(self, node_id: bytes) -> str:
        """The name of member ``node_id`` (its hex id when unknown)."""
        m = self._node.table.get(node_id)
        return m.name if m is not None else node_id.hex()

    def find_member(self, name_or_id: str | bytes) -> MemberInfo | None:
        """The member with this name (or 16-byte id / hex id), if known."""
        for m in self._node.members():
            if name_or_id in (m.name, m.node_id, m.id_hex):
                return m
        return None


class AgentStopped(RuntimeError):
    """A wait ended because the agent stopped."""


async def wait_on_hub(hub: EventHub, predicate: Callable[[], bool], timeout: float) -> None:
    """Wait until ``predicate()`` holds, re-checked after every event of ``hub``.

    Raises:
        TimeoutError: it did not hold within ``timeout`` seconds.
        AgentStopped: the agent stopped (its event stream ended) before it held.
    """
    with hub.subscribe() as sub:
        async with asyncio.timeout(timeout):
            while not predicate():
                # Re-check at least once a second in case no event comes.
                if await sub.get(timeout=1.0) is None and hub.closed:
                    # The stream ended: nothing will ever change again, and a closed
                    # stream answers at once, so looping would spin without yielding.
                    if predicate():
                        return
                    raise AgentStopped("the agent stopped before the condition held")
