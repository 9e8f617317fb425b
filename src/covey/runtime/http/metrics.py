"""``GET /metrics``: the agent's counters in the Prometheus text format.

A custom collector (:class:`AgentCollector`) reads the agent's live counters at scrape
time — the core's statistics, the driver's runtime counters, the features' own and the
per-interface counters — from the very objects ``covey info`` reads, so the two agree.
Each app has its own ``CollectorRegistry`` (never the process-global one: two agents in
one process must not mix). The metrics are listed, with their meaning, in
docs/operations.md ("Metrics").

The event loop's lag is measured by a timer that fires every :data:`LAG_EVERY` s while the
HTTP API is served (:meth:`Metrics.serving`, the app's cleanup context) and records how
late it ran; agents without ``--http`` have no such timer, and never import this module
(nor ``prometheus_client``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from covey.runtime.features.election import ElectionFeature
from covey.runtime.http.routes import Route

if TYPE_CHECKING:
    from covey.runtime.agent import Agent

#: The text exposition format served (what every Prometheus version scrapes).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds between two ticks of the loop-lag timer.
LAG_EVERY = 1.0
#: Ticks over which the largest lag is kept.
LAG_WINDOW = 60
_STATES = ("alive", "suspect", "failed", "left")
_IN_FLIGHT = ("pending", "stage")


class LoopLag:
    """How late a timer set :data:`LAG_EVERY` s ahead fires: the event loop's lag.

    Attributes:
        last: the lag of the latest tick, in seconds.
        ticks: ticks so far.
    """

    def __init__(self) -> None:
        self.last = 0.0
        self.ticks = 0
        self._recent: deque[float] = deque(maxlen=LAG_WINDOW)
        self._handle: asyncio.TimerHandle | None = None

    @property
    def max(self) -> float:
        """The largest lag of the last :data:`LAG_WINDOW` ticks."""
        return max(self._recent, default=0.0)

    def start(self) -> None:
        """Begin ticking (on the running loop)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + LAG_EVERY
        self._handle = loop.call_at(due, self._tick, loop, due)

    def stop(self) -> None:
        """Stop ticking."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = loop.time()
        # call_at may fire up to a clock tick early: that is no negative lag.
        self.last = max(0.0, now - due)
        self._recent.append(self.last)
        self.ticks += 1
        due = now + LAG_EVERY
        self._handle = loop.call_at(due, self._tick, loop, due)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counters(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)


def _gauges(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class AgentCollector:
    """Yields the agent's metrics at each scrape (see docs/operations.md, "Metrics")."""

    def __init__(self, agent: Agent, lag: LoopLag) -> None:
        self.agent = agent
        self.lag = lag

    def describe(self) -> list[Metric]:
        """Nothing up front: the registry must not scrape the agent to register it."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every metric, read now."""
        yield from self._membership()
        yield from self._runtime()
        yield from self._features()
        yield from self._interfaces()

    def _membership(self) -> Iterator[Metric]:
        stats = self.agent.statistics()
        members = _gauges("covey_members", "Members by state.", ["state"])
        for state in _STATES:
            members.add_metric([state], stats.members.get(state, 0))
        yield members
        for name, doc, value in (
            ("probes_sent", "SWIM probes started.", stats.probes_sent),
            ("probes_failed", "Probes that ended with no ack.", stats.probes_failed),
            ("suspicions", "Times a member became suspect here.", stats.suspicions),
            ("refutations", "Times this node refuted a wrong view of itself.", stats.refutations),
            ("datagrams_sent", "UDP datagrams sent.", stats.datagrams_sent),
            ("datagrams_received", "UDP datagrams received.", stats.datagrams_received),
            ("bytes_sent", "Octets sent in UDP datagrams.", stats.bytes_sent),
            ("bytes_received", "Octets received in UDP datagrams.", stats.bytes_received),
            ("streams_opened", "TCP exchanges this node started.", stats.streams_opened),
            ("streams_served", "TCP exchanges this node answered.", stats.streams_served),
        ):
            yield _counter(f"covey_{name}", doc, value)
        drops = _counters("covey_drops", "Inbound frames dropped, by reason.", ["reason"])
        for reason, n in sorted(stats.drops.items()):
            drops.add_metric([reason], n)
        yield drops
        yield _gauge("covey_health_score", "Lifeguard local health (0: healthy).", stats.health)
        yield _gauge("covey_incarnation", "This node's incarnation.", stats.incarnation)

    def _runtime(self) -> Iterator[Metric]:
        agent = self.agent
        counters = _counters(
            "covey_runtime_events",
            "The driver's counters (internal_error, send_error, clock_leap...).",
            ["counter"],
        )
        shown = {**agent.runtime_counters(), "events_dropped": agent.hub.dropped}
        for name, n in sorted(shown.items()):
            counters.add_metric([name], n)
        yield counters
        yield _gauge(
            "covey_event_loop_lag_seconds", "How late the latest 1 s timer fired.", self.lag.last
        )
        yield _gauge(
            "covey_event_loop_lag_max_seconds",
            f"The largest loop lag of the last {LAG_WINDOW} ticks.",
            self.lag.max,
        )

    def _features(self) -> Iterator[Metric]:
        agent = self.agent
        election = next(f for f in agent.features if isinstance(f, ElectionFeature))
        ext = election.election
        if ext is not None:
            yield _gauge("covey_leader_term", "The election's current term.", ext.term)
            for name, doc in (
                ("elections", "Elections this node stood in (real votes, not pre-votes)."),
                ("fencings", "Fencing decisions this node took as leader."),
                ("panics", "Times this node entered panic mode."),
            ):
                yield _counter(f"covey_{name}", doc, election.counts[name])
            shown = election.info()
            leads = shown.get("role") == "leader"
            yield _gauge("covey_leader", "1 while this node is the leader, else 0.", leads)
            panic = shown.get("mode") == "panic"
            yield _gauge("covey_panic_mode", "1 while the election is in panic mode.", panic)
        traces = agent.traces
        yield _gauge("covey_trace_buffer_records", "Trace records held.", len(traces.buffer))
        yield _gauge(
            "covey_trace_buffer_capacity",
            "Trace records the buffer holds at most (0: tracing off).",
            traces.config.trace_buffer,
        )
        yield _counter(
            "covey_traces_lost",
            "Trace records that left the buffer before the collector stored them.",
            traces.buffer.lost,
        )
        owned = agent.deliveries.owned()
        by_state = _gauges("covey_deliveries", "Deliveries this node owns, by state.", ["state"])
        for state, n in sorted(owned.items()):
            by_state.add_metric([state], n)
        yield by_state
        yield _gauge(
            "covey_deliveries_in_flight",
            "Deliveries this node owns that are not finished (pending or in a stage).",
            sum(owned.get(s, 0) for s in _IN_FLIGHT),
        )

    def _interfaces(self) -> Iterator[Metric]:
        net = self.agent.net
        where = ["interface", "address"]
        sent = _counters(
            "covey_interface_beacons_sent",
            "Beacons sent, per interface.",
            where,
        )
        heard = _counters(
            "covey_interface_beacons_received",
            "Beacons heard and opened, per interface.",
            where,
        )
        drops = _counters(
            "covey_interface_drops",
            "Frames heard on an interface and dropped, by reason.",
            [*where, "reason"],
        )
        last = _gauges(
            "covey_interface_last_beacon_received_timestamp_seconds",
            "Unix time of the last beacon opened on an interface (absent: never).",
            where,
        )
        offset = time.time() - time.monotonic()
        for iface in net.interfaces:
            labels = [iface.name, iface.address]
            sent.add_metric(labels, iface.beacons_out)
            heard.add_metric(labels, iface.beacons_in)
            for reason, n in sorted(iface.drops.counts.items()):
                drops.add_metric([*labels, reason], n)
            if iface.last_in is not None:
                last.add_metric(labels, iface.last_in + offset)
        yield from (sent, heard, drops, last)
        unicast = net.unicast
        yield _counter(
            "covey_unicast_datagrams_received",
            "Datagrams that arrived on the unicast socket.",
            unicast.datagrams_in,
        )
        yield _counter(
            "covey_unicast_datagrams_sent",
            "Datagrams sent by the unicast socket.",
            unicast.datagrams_out,
        )
        udrops = _counters(
            "covey_unicast_drops",
            "Datagrams that arrived on the unicast socket and were dropped, by reason.",
            ["reason"],
        )
        for reason, n in sorted(unicast.drops.counts.items()):
            udrops.add_metric([reason], n)
        yield udrops


class Metrics:
    """One HTTP app's metrics: its own registry, holding the agent's collector, and the
    loop-lag timer that runs while the app serves."""

    def __init__(self, agent: Agent) -> None:
        self.lag = LoopLag()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AgentCollector(agent, self.lag))

    def text(self) -> bytes:
        """The exposition text of every metric, read now."""
        return generate_latest(self.registry)

    async def serving(self, app: web.Application) -> AsyncIterator[None]:
        """The app's cleanup context: tick while it serves."""
        self.lag.start()
        try:
            yield
        finally:
            self.lag.stop()

    def route(self) -> Route:
        """``GET /metrics``."""

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=self.text(), headers={"Content-Type": CONTENT_TYPE})

        return Route(
            "GET",
            "/metrics",
            metrics,
            "The agent's counters in the Prometheus text format (docs/operations.md).",
            {"type": "string", "description": "Prometheus text exposition format 0.0.4."},
            tag="meta",
            content_type=CONTENT_TYPE,
        )
