"""The deterministic simulator: many cores on a virtual network in virtual time.

Theory of operation: a single heap of timestamped events (datagram deliveries, stream
requests and replies, core timers, scheduled actions) is processed in order; the virtual
clock jumps to the next event, so an hour of protocol time costs only the work done in it.
After each input a host's outputs are collected and turned into future events through
the :class:`Network`. All randomness flows from the seed, so a run replays exactly.

Host failure modes: *crashed* (the process is gone but the host answers: streams are
refused and datagrams come back as ICMP port unreachable, like a killed agent on a live
machine), *down* (no answer at all, like a lost
host), *paused* (a stalled process: inputs queue up and are handled on resume).
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections.abc import Callable, Iterable
from typing import Any

from covey.core import CoreConfig, Extension, Keyring, MemberState, Node
from covey.core.effects import Effect
from covey.core.types import Address
from covey.sim.bootstrap import bootstrap
from covey.sim.hosts import EventListener, HostState, SimHost
from covey.sim.network import LinkModel, Network

__all__ = ["STREAM_TIMEOUT", "EventListener", "HostState", "SimHost", "Simulation"]

#: Seconds after which an unanswered stream request fails (as the asyncio runtime does).
STREAM_TIMEOUT = 2.0
#: Inputs a paused host keeps queued, like a socket receive buffer; more are dropped.
BACKLOG_LIMIT = 2000

_TIMER, _DGRAM, _STREAM_REQ, _STREAM_RESP, _CALL, _UNREACH = range(6)


class Simulation:
    """N protocol cores on a lossy, partitionable virtual network.

    Args:
        seed: seeds every random choice of the run (network and cores).
        keys: Fernet keys for every node; None runs in plain-text mode (faster).
        link: the default link model.
        cluster: cluster name given to every node.
        record_events: keep every event per host in ``host.events``.
        extensions: builds the extensions of each host's core (again on restart).
        config: CoreConfig overrides applied to every node (timings etc.).
    """

    def __init__(
        self,
        seed: int,
        *,
        keys: list[bytes] | None = None,
        link: LinkModel | None = None,
        cluster: str = "sim",
        record_events: bool = True,
        extensions: Callable[[SimHost], list[Extension]] | None = None,
        **config: Any,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.network = Network(random.Random(self.rng.getrandbits(64)), link)
        self.now = 0.0
        self.keys = keys
        self.cluster = cluster
        self.record_events = record_events
        self.config_overrides = config
        self.extensions = extensions
        self.hosts: dict[str, SimHost] = {}
        self.by_address: dict[Address, SimHost] = {}
        self.listeners: list[EventListener] = []
        #: Called with (host, effect) for every durable effect a core hands out.
        self.effect_listeners: list[Callable[[SimHost, Effect], None]] = []
        self._heap: list[tuple[float, int, int, tuple[Any, ...]]] = []
        self._seq = 0
        self.steps = 0

    # ------------------------------------------------------------------ hosts

    def _keyring(self) -> Keyring:
        if self.keys is None:
            return Keyring([], plaintext=True)
        return Keyring(self.keys)

    def add_node(
        self,
        name: str | None = None,
        *,
        join: Iterable[str] = (),
        start: bool = True,
        tags: dict[str, str] | None = None,
        **config: Any,
    ) -> SimHost:
        """Create a host with a fresh core; start it (and join the named hosts) at ``now``."""
        name = name or f"n{len(self.hosts)}"
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists")
        address = (name, 7946)
        cfg = CoreConfig(
            node_id=self.rng.randbytes(16),
            name=name,
            cluster=self.cluster,
            address=address,
            tags=dict(tags or {}),
            **{**self.config_overrides, **config},
        )
        node = Node(cfg, self._keyring(), rng=random.Random(self.rng.getrandbits(64)), now=self.now)
        host = SimHost(name, address, cfg, node, seeds=[self.hosts[j].address for j in join])
        self.hosts[name] = host
        self.by_address[address] = host
        self._attach(host)
        if start:
            self._boot(host)
        return host

    def _attach(self, host: SimHost) -> None:
        if self.extensions is not None:
            for ext in self.extensions(host):
                host.node.add_capability(ext)

    def _boot(self, host: SimHost, incarnation: int = 0) -> None:
        host.node.start(now=self.now, incarnation=incarnation)
        if host.seeds:
            host.node.join(host.seeds, now=self.now)
        self._flush(host)

    def bootstrap(self, n: int) -> list[SimHost]:
        """Create ``n`` started nodes whose tables already hold every other node alive
        (see :func:`covey.sim.bootstrap.bootstrap`)."""
        return bootstrap(self, n)

    def crash(self, name: str) -> None:
        """Kill the process: the host still answers, so connections are refused."""
        self.hosts[name].state = HostState.CRASHED

    def host_down(self, name: str) -> None:
        """Lose the host: nothing answers, not even a refusal."""
        self.hosts[name].state = HostState.DOWN

    def pause(self, name: str, duration: float | None = None) -> None:
        """Stall the process; with ``duration`` it resumes by itself."""
        host = self.hosts[name]
        host.state = HostState.PAUSED
        if duration is not None:
            self.call_at(self.now + duration, lambda: self.resume(name))

    def resume(self, name: str) -> None:
        """Let a paused process run again; it handles its queued inputs first."""
        host = self.hosts[name]
        if host.state is not HostState.PAUSED:
            return
        host.state = HostState.RUNNING
        backlog, host.backlog = host.backlog, []
        for kind, args in backlog:
            self._dispatch(kind, args)
        host.timer_at = None
        self._flush(host)

    def leave(self, name: str) -> None:
        """Leave gracefully, then stop the process (connections refused afterwards)."""
        host = self.hosts[name]
        host.node.leave(now=self.now)
        self._flush(host)
        host.state = HostState.CRASHED

    def restart(self, name: str, *, keep_id: bool = True, port: int | None = None) -> SimHost:
        """Start a fresh core on a crashed/down host (same id by default).

        With ``port`` the process comes back on another port, as an agent restarted
        without a fixed ``--bind`` port does; the old address then refuses connections.
        """
        host = self.hosts[name]
        changes: dict[str, Any] = {}
        if not keep_id:
            changes["node_id"] = self.rng.randbytes(16)
        if port is not None:
            changes["address"] = (host.address[0], port)
        if changes:
            cfg = CoreConfig(**{**_config_fields(host.config), **changes})
            host.config = cfg
            if port is not None:
                # The old port stays behind as a refusing socket of a dead process.
                old = SimHost(
                    name + "-old", host.address, host.config, host.node, state=HostState.CRASHED
                )
                self.by_address[host.address] = old
                host.address = cfg.address
                self.by_address[host.address] = host
        cfg = host.config
        host.node = Node(
            cfg, self._keyring(), rng=random.Random(self.rng.getrandbits(64)), now=self.now
        )
        host.state = HostState.RUNNING
        host.backlog.clear()
        host.timer_at = None
        host.restarts += 1
        self._attach(host)
        self._boot(host)
        return host

    def clock_jump(self, name: str, delta: float) -> None:
        """Step the host's wall clock by ``delta`` seconds (its monotonic clock is unmoved)."""
        self.hosts[name].node.wall_offset += delta

    # --------------------------------------------------------------- running

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at virtual time ``when``."""
        self._push(when, _CALL, (fn,))

    def _push(self, when: float, kind: int, args: tuple[Any, ...]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, args))

    def run_until(self, t: float) -> None:
        """Process every event up to virtual time ``t``; the clock ends at ``t``."""
        heap = self._heap
        while heap and heap[0][0] <= t:
            when, _, kind, args = heapq.heappop(heap)
            if when > self.now:
                self.now = when
            self.steps += 1
            self._dispatch(kind, args)
        self.now = max(self.now, t)

    def run_for(self, dt: float) -> None:
        """Advance the virtual clock by ``dt`` seconds."""
        self.run_until(self.now + dt)

    def run_until_true(
        self, predicate: Callable[[], bool], *, timeout: float, step: float = 0.05
    ) -> float | None:
        """Run until ``predicate()`` holds (checked every ``step``); its time, or None."""
        end = self.now + timeout
        while self.now < end:
            if predicate():
                return self.now
            self.run_until(min(self.now + step, end))
        return self.now if predicate() else None

    def _dispatch(self, kind: int, args: tuple[Any, ...]) -> None:
        if kind == _CALL:
            args[0]()
            return
        host: SimHost = args[0]
        if host.state is HostState.PAUSED and kind != _TIMER:
            if len(host.backlog) < BACKLOG_LIMIT:
                host.backlog.append((kind, args))
            return
        if kind == _TIMER:
            if host.state is HostState.RUNNING and args[1] == host.timer_version:
                host.timer_at = None
                host.node.handle_timer(now=self.now)
                self._flush(host)
        elif kind == _DGRAM:
            if host.state is HostState.RUNNING:
                host.received += 1
                host.node.receive_datagram(args[2], args[1], now=self.now)
                self._flush(host)
            elif host.state is HostState.CRASHED:
                self._port_unreachable(host, args[1])
        elif kind == _UNREACH:
            if host.state is HostState.RUNNING and host.node is args[1]:
                host.node.unreachable(args[2], now=self.now)
                self._flush(host)
        elif kind == _STREAM_REQ:
            self._serve_stream(host, args[1], args[2], args[3])
        elif kind == _STREAM_RESP:
            node, rid, data, refused = args[1:]
            if host.state is not HostState.RUNNING or host.node is not node:
                return
            if data is None:
                node.stream_failed(rid, refused=refused, now=self.now)
            else:
                node.stream_reply(rid, data, now=self.now)
            self._flush(host)

    def _port_unreachable(self, host: SimHost, sender: Address) -> None:
        """A datagram reached a crashed process's port: the host answers with ICMP."""
        back = self.by_address.get(sender)
        if back is not None:
            for delay in self.network.datagram_delays(host.name, back.name)[:1]:
                self._push(self.now + delay, _UNREACH, (back, back.node, host.address))

    def _serve_stream(self, server: SimHost, client: SimHost, node: Node, req: Any) -> None:
        back = self.network.stream_delay(server.name, client.name)
        if back is None or server.state is HostState.DOWN:
            return  # the client's timeout finishes the request
        if server.state is HostState.CRASHED:
            self._push(self.now + back, _STREAM_RESP, (client, node, req.request_id, None, True))
            return
        reply = server.node.handle_stream(req.data, client.address, now=self.now)
        self._flush(server)
        self._push(self.now + back, _STREAM_RESP, (client, node, req.request_id, reply, False))

    def _flush(self, host: SimHost) -> None:
        node = host.node
        now = self.now
        net = self.network
        # Simulated disks are written at once: a capability's records (the election's
        # VoteStore, ...) live in objects the scenario keeps across restarts.
        for effect in node.effects_to_apply():
            host.effects += 1
            for hook in self.effect_listeners:
                hook(host, effect)
        for d in node.datagrams_to_send(now=now):
            host.sent += 1
            host.sent_bytes += len(d.data)
            if d.address is None:
                if not net.multicast:
                    continue
                targets: Iterable[SimHost] = (h for h in self.hosts.values() if h is not host)
            else:
                dst = self.by_address.get(d.address)
                targets = () if dst is None else (dst,)
            for dst in targets:
                for delay in net.datagram_delays(host.name, dst.name):
                    self._push(now + delay, _DGRAM, (dst, host.address, d.data))
        for s in node.streams_to_open(now=now):
            # Every request gets its timeout; an earlier answer makes this one a no-op.
            self._push(now + STREAM_TIMEOUT, _STREAM_RESP, (host, node, s.request_id, None, False))
            dst = self.by_address.get(s.address)
            if dst is None:
                continue
            one_way = net.stream_delay(host.name, dst.name)
            if one_way is not None:
                self._push(now + one_way, _STREAM_REQ, (dst, host, node, s))
        events = node.pop_events()
        if events:
            if self.record_events:
                host.events.extend((now, e) for e in events)
            for listener in self.listeners:
                for e in events:
                    listener(host, now, e)
        t = node.get_timer()
        if t is not None and t != host.timer_at:
            host.timer_at = t
            host.timer_version += 1
            self._push(max(t, now), _TIMER, (host, host.timer_version))

    # ------------------------------------------------------------- inspection

    def running(self) -> list[SimHost]:
        """Hosts whose process is up (running or paused)."""
        return [h for h in self.hosts.values() if h.up]

    def view(self, name: str) -> dict[str, MemberState]:
        """Member name → state as host ``name`` sees it."""
        return {m.name: m.state for m in self.hosts[name].node.members()}

    def converged(self, hosts: Iterable[SimHost] | None = None) -> bool:
        """True when every up host sees exactly the up hosts alive, and no one else live."""
        up = list(hosts) if hosts is not None else self.running()
        want = {h.config.node_id for h in up}
        for h in up:
            table = h.node.table
            if table.live_count != len(want):
                return False
            for nid in want:
                m = table.members.get(nid)
                if m is None or m.state is not MemberState.ALIVE:
                    return False
        return True


def _config_fields(cfg: CoreConfig) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
