"""The covey agent: binds the sockets, drives one core, serves control and status requests.

Lifecycle (after trio/uvicorn): :meth:`Agent.run` binds every socket first — so a port in
use fails before anything is announced — then runs every long-lived task under one
``asyncio.TaskGroup`` until the shutdown event is set. Shutdown goes in phases: stop
accepting control/HTTP requests → ``node.leave()`` (EXIT beacon + leave messages) → flush
the UDP send buffers → close sockets and cancel what is left.

Features (:mod:`covey.runtime.features`) are built here from the configuration, in plain
code: their capabilities go into the node, their operations to the control server, their
routes to the HTTP app, their effect writers to the driver; each gets the agent's public
:class:`~covey.runtime.context.AgentContext` when the core has started.

Python use::

    config = covey.AgentConfig(name="a", bind=("127.0.0.1", 7946), keys=(key,))
    async with covey.Agent(config) as agent:
        await agent.wait_for_members(3, timeout=10)
        print(agent.members(), agent.facts(), agent.election.enabled)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from covey.core import Address, Keyring, NameConflict, Node
from covey.core.effects import Effect
from covey.runtime.config.model import AgentConfig
from covey.runtime.context import AgentContext
from covey.runtime.driver import CoreDriver
from covey.runtime.events import AgentEvent, EventHub
from covey.runtime.features.base import ControlHandler, EffectWriter, Feature, HttpRoute
from covey.runtime.features.deliveries.feature import DeliveriesFeature
from covey.runtime.features.election import ElectionFeature
from covey.runtime.features.health import HealthFeature
from covey.runtime.features.keys import KeysFeature
from covey.runtime.features.local_channel import LocalChannelFeature
from covey.runtime.features.shared import SharedStateFeature
from covey.runtime.features.srv import SrvDiscoveryFeature
from covey.runtime.features.traces import TracesFeature
from covey.runtime.identity import advertised, core_config, load_identity, save_identity
from covey.runtime.name_conflict import on_name_conflict
from covey.runtime.net.endpoints import UdpEndpoints, open_udp
from covey.runtime.net.interface_stats import NetCounters
from covey.runtime.net.interfaces import DiscoveryPlan, plan_discovery
from covey.runtime.net.limits import PortGuard, closing, port_cap
from covey.runtime.net.stream_port import StreamHandler, serve_stream
from covey.runtime.queries import AgentQueries
from covey.runtime.stores.keyring_file import starting_keys
from covey.runtime.zre.feature import ZreFeature

log = logging.getLogger("covey.agent")

#: Longest wait for the send buffers to empty after leaving.
FLUSH_TIMEOUT = 1.0


class Agent(AgentQueries):
    """A running covey node: sockets, protocol core, control endpoints and event stream.

    Its features are facades: ``agent.facts``, ``agent.settings``, ``agent.actions``,
    ``agent.election``, ``agent.deliveries``, ``agent.zre`` (the flat names — ``set_fact``,
    ``run_action``, ``names``... — delegate to them).

    Args:
        config: the validated configuration. Interfaces and the identity file are checked
            here, so a bad setting raises :class:`ConfigError` before any socket exists.
        rng: randomness for the core (default: a fresh ``random.Random()``).
    """

    def __init__(self, config: AgentConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.plan: DiscoveryPlan = plan_discovery(config)
        self.address: Address = advertised(config, self.plan)
        self.node_id, self._incarnation = load_identity(config.data_dir)
        self.hub = EventHub()
        self._rng = rng or random.Random()
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: list[asyncio.BaseTransport] = []
        self._udp: UdpEndpoints  # bound by _bind, pointed at the driver once it exists
        self._servers: list[asyncio.Server] = []
        self._stream_server: asyncio.Server | None = None
        self._http: Any = None
        self._driver: CoreDriver | None = None
        #: Runtime counters (the driver's and the ports' guards'), live from the start.
        self.counters: Counter[str] = Counter(effect_error=0)
        # Every listening port's share of the descriptor limit (runtime/net/limits.py).
        ports = 2 + (config.rpc is not None) + (config.http is not None)
        cap = port_cap(config.max_connections, ports)
        #: The guard of each listening port, by label (``covey info`` shows them).
        self.ports: dict[str, PortGuard] = {
            label: PortGuard(label, prefix, cap, self.counters)
            for label, prefix, on in (
                ("stream", "stream", True),
                ("control", "control", True),
                ("rpc", "control", config.rpc is not None),
                ("http", "http", config.http is not None),
            )
            if on
        }
        #: inode of the control socket we created (so we never unlink another agent's)
        self.control_inode: int | None = None
        core = core_config(config, self.node_id, self.address)
        self.node = Node(core, self._keyring(), rng=self._rng, now=time.monotonic())
        #: Per-interface beacons, drops and peers (``covey info``, ``/v1/interfaces``).
        self.net = NetCounters(self.plan, self.address, self.node.member)
        shared = SharedStateFeature(config, self.node_id)
        election = ElectionFeature(config)
        deliveries = DeliveriesFeature(config, self.node_id)
        self.traces = TracesFeature(config, self.node_id)
        self.health = HealthFeature(config, self.net, election.expected_votes)
        keys = KeysFeature(config, self.node.keyring, shared.runtime)
        zre = ZreFeature(config, self.node_id, self.plan.interfaces)
        #: Every feature of this agent, in the order their capabilities are added.
        self.features: tuple[Feature, ...] = (
            shared,
            election,
            deliveries,
            self.traces,
            self.health,
            keys,
            SrvDiscoveryFeature(config),
            local := LocalChannelFeature(config, self.address),
            zre,
        )
        self.local_channel = local.channel
        self.facts = shared.facts
        self.settings = shared.settings
        self.actions = shared.actions
        self.election = election.api
        self.deliveries = deliveries.api
        #: This member's keyring and the cluster-wide key operations (``covey keys``).
        self.keys = keys.api
        #: ZRE mode (``--zre``): the foreign ZRE peers, SHOUT and WHISPER.
        self.zre = zre.api
        self._effect_writers: dict[type[Effect], EffectWriter] = {}
        ops: dict[str, ControlHandler] = {}
        for feature in self.features:
            for ext in feature.capabilities():
                self.node.add_capability(ext)
            self._effect_writers.update(feature.effect_writers())
            for op, handler in feature.control_ops().items():
                if op in ops:
                    raise ValueError(f"control operation {op!r} is defined twice")
                ops[op] = handler
        self._control_ops: Mapping[str, ControlHandler] = ops
        self.started_at = time.time()
        #: The process's exit status (2 when refused for a name another node holds).
        self.exit_code = 0

    @property
    def control_ops(self) -> Mapping[str, ControlHandler]:
        """The features' control operations by name (for the control server)."""
        return self._control_ops

    def http_routes(self) -> Sequence[HttpRoute]:
        """The features' HTTP routes (for the HTTP app)."""
        return [route for feature in self.features for route in feature.http_routes()]

    def _keyring(self) -> Keyring:
        # The stored keyring (keys installed or promoted cluster-wide) wins over the key
        # file, which only seeds a new data directory.
        return Keyring(starting_keys(self.config), plaintext=self.config.plaintext)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Run the agent in a background task and wait until it serves (or failed)."""
        if self._task is not None:
            raise RuntimeError("agent already started")
        self._task = asyncio.create_task(self.run(), name=f"covey-agent-{self.config.name}")
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._task.done():
            self._task.result()  # re-raises the start-up error
            raise RuntimeError("agent stopped during start")

    async def stop(self) -> None:
        """Leave gracefully and wait until every socket is closed."""
        self.request_shutdown()
        if self._task is not None:
            await self._task
        else:
            await self._done.wait()

    def request_shutdown(self) -> None:
        """Begin the graceful shutdown (idempotent; returns at once)."""
        self._stopping.set()

    @property
    def ready(self) -> bool:
        """True while the agent serves (sockets bound, core started, not yet stopping)."""
        return self._ready.is_set() and not self._stopping.is_set()

    async def wait_ready(self) -> None:
        """Wait until the agent serves (see :attr:`ready`)."""
        await self._ready.wait()

    async def wait_closed(self) -> None:
        """Wait until the agent has shut down."""
        await self._done.wait()

    async def run(self) -> None:
        """Bind, serve until :meth:`request_shutdown`, then leave and close. The whole life."""
        try:
            await self._bind()
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._driver = CoreDriver(
                    self.node,
                    self._udp.unicast,
                    self._udp.senders,
                    spawn=self._spawn,
                    publish=self._publish,
                    stream_timeout=self.config.stream_timeout,
                    clock_leap=self.config.clock_leap,
                    effect_writers=self._effect_writers,
                    counters=self.counters,
                    exchange=None if self.local_channel is None else self.local_channel.exchange,
                )
                self._udp.attach(self._driver.datagram_received, self._driver.datagram_refused)
                ctx = AgentContext(self.config, self.node, self.hub, self._spawn, self._driver)
                for feature in self.features:
                    feature.prepare(ctx)
                self._driver.start(self.config.join, self._incarnation)
                for feature in self.features:
                    feature.start(ctx)
                save_identity(self.config.data_dir, self.node_id, self.node.incarnation)
                for server in self._servers:
                    await server.start_serving()
                log.info("%s", self.serving_line())
                self._ready.set()
                await self._stopping.wait()
                await self._graceful_exit()
                for task in list(self._tasks):
                    task.cancel()
        finally:
            await self._close()
            self._done.set()

    async def _bind(self) -> None:
        c = self.config
        try:
            # TCP first: it is what fails when the port is taken by another agent.
            guard = self.ports["stream"]
            accept = self._spawn_handler(
                lambda r, w: serve_stream(self._stream_handler, guard, c.idle_timeout, r, w), guard
            )
            self._stream_server = await asyncio.start_server(
                accept,
                c.bind[0],
                c.bind[1],
                reuse_address=True,
                start_serving=False,
            )
            self._servers.append(self._stream_server)
            if self.local_channel is not None:
                await self.local_channel.open(accept)  # the same port guard and handler as TCP
            self._udp = await open_udp(c.bind, self.plan, self.net, self.local_channel)
            self._transports.extend(self._udp.transports)
            for feature in self.features:
                feature.bind()
            from covey.runtime.control.server import start_control_servers

            servers, self.control_inode = await start_control_servers(self, self._spawn_handler)
            self._servers.extend(servers)
            if c.http is not None:
                from covey.runtime.http.app import start_http

                self._http = await start_http(self, c.http)
        except BaseException:
            await self._close()
            self._done.set()
            raise

    async def _graceful_exit(self) -> None:
        # Phase 1: stop accepting new control/HTTP requests (the stream listener stays up
        # until we have left, so probes do not see a refused port first).
        for server in self._servers:
            if server is not self._stream_server:
                server.close()
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._http.cleanup()
            self._http = None
        # Phase 2: leave — EXIT beacon on the discovery group, leave message to every member.
        assert self._driver is not None
        try:
            self._driver.leave()
        except Exception:
            log.exception("leave failed")
        # Phase 3: let the writer thread finish (held datagrams go out after it), then
        # the kernel take the datagrams before the sockets close.
        deadline = time.monotonic() + FLUSH_TIMEOUT
        if not await self._driver.drain(FLUSH_TIMEOUT):
            log.warning("effects still being written after %.1f s", FLUSH_TIMEOUT)
        for transport in self._transports:
            pending = getattr(transport, "get_write_buffer_size", lambda: 0)
            while pending() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        save_identity(self.config.data_dir, self.node_id, self.node.incarnation)
        log.info("agent %s left the cluster", self.config.name)

    async def _close(self) -> None:
        if self._driver is not None:
            self._driver.close()
        for server in self._servers:
            server.close()
        for transport in self._transports:
            transport.close()
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._http.cleanup()
            self._http = None
        for task in list(self._tasks):
            task.cancel()
        for feature in self.features:
            try:
                feature.stop()
            except Exception:
                log.exception("stopping feature %s failed", feature.name)
        self.hub.close()
        from covey.runtime.control.server import remove_control_socket

        c = self.config
        remove_control_socket(c.control_path, self.control_inode, c.cluster, c.name)
        self.control_inode = None
        self._servers.clear()
        self._transports.clear()

    def _publish(self, event: AgentEvent) -> None:
        if isinstance(event, NameConflict):
            on_name_conflict(self, event)
        self.hub.publish(event)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """Start a task under the agent's TaskGroup; tracked so shutdown can cancel it."""
        if self._tg is None or self._done.is_set():
            coro.close()
            return None
        task = self._tg.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _spawn_handler(
        self,
        handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]],
        guard: PortGuard | None = None,
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], None]:
        """A server callback that runs each connection as a task of the TaskGroup; with a
        ``guard``, one over the port's cap is closed at once, before any task exists."""

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if guard is not None and not guard.admit():
                writer.transport.abort()
                return
            if self._spawn(closing(handler(reader, writer), writer, guard)) is None:
                writer.close()
                if guard is not None:
                    guard.release()

        return accept

    def _stream_handler(self) -> StreamHandler | None:
        """Where inbound stream frames go: the driver, once it exists."""
        return self._driver.handle_stream if self._driver is not None else None
