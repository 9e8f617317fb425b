"""Deliveries in the agent: the core capability with its store, handler and notifications.

:class:`DeliveriesFeature` plugs :class:`~covey.core.deliveries.Deliveries` into the node
(unless ``--deliveries off``) with

* its **store** (store.py): SQLite in the data directory by default, Redis with
  ``--scheduler redis://...``, memory only without a data directory. The capability is
  built from what the store holds, and its ``SaveDelivery`` / ``SaveHandled`` effects are
  written by the store on the driver's writer thread, before the messages they cause
  leave;
* its **handler** (handler.py), run on each ``DeliveryRequested``;
* its **notifications** (notify.py), per receipt, stage and end, with ``--notify``;
* with a **shared store**, the owner lease (renewed every ``LEASE / 3`` s) and the
  takeover of the live deliveries of owners whose lease expired, due or not (checked
  every ``TAKEOVER_EVERY`` s; dispatch itself is woken by due times, never polled).

When the store cannot be written (Redis down) the capability is *held*: nothing new is
promised while its record cannot be stored. The feature probes the store until it
answers, then resumes: the records whose writes failed are written again and every live
delivery is acted on at once. ``covey info`` shows the store and why it waits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from covey.core import Extension
from covey.core.deliveries import (
    Deliveries,
    DeliveriesConfig,
    DeliveryComplete,
    DeliveryFailed,
    DeliveryReceiptAccepted,
    DeliveryRecord,
    DeliveryRequested,
    DeliveryStageComplete,
    HandledRecord,
    SaveDelivery,
    SaveHandled,
)
from covey.core.effects import Effect
from covey.runtime.config.model import AgentConfig, ConfigError
from covey.runtime.features.base import ControlHandler, EffectWriter, Feature, HttpRoute
from covey.runtime.features.deliveries.api import DeliveriesAPI
from covey.runtime.features.deliveries.handler import HandlerRunner
from covey.runtime.features.deliveries.store import (
    DeliveryStore,
    Fenced,
    SharedStore,
    StoreUnavailable,
    shared,
)

if TYPE_CHECKING:
    from covey.runtime.context import AgentContext
    from covey.runtime.events import AgentEvent
    from covey.runtime.features.deliveries.notify import Notifier

log = logging.getLogger("covey.deliveries")

#: Seconds an owner's lease lasts in a shared store (renewed every third of it).
LEASE = 3.0
#: Seconds between looks for deliveries left by dead owners.
TAKEOVER_EVERY = 1.0
#: Deliveries claimed from dead owners at one time.
TAKEOVER_BATCH = 100
#: Seconds between probes of a store that cannot be reached.
PROBE_EVERY = 0.5


def open_store(config: AgentConfig) -> DeliveryStore | None:
    """The configured store (None: memory only); ConfigError when it cannot be opened."""
    if config.scheduler is not None:
        from covey.runtime.features.deliveries.redis_store import RedisDeliveryStore

        redis_store = RedisDeliveryStore(config.scheduler, config.cluster)
        redis_store.check()  # unreachable at start: a one-line error and exit 2
        store: DeliveryStore = redis_store
        return store
    if config.data_dir is not None:
        from covey.runtime.features.deliveries.sqlite_store import FILENAME, SqliteDeliveryStore

        return SqliteDeliveryStore(config.data_dir / FILENAME)
    return None


class DeliveriesFeature(Feature):
    """The deliveries of one agent (see the module docstring).

    Raises:
        ConfigError: the store cannot be opened or reached, or ``--notify`` is bad.
    """

    name = "deliveries"

    def __init__(self, config: AgentConfig, node_id: bytes) -> None:
        self.config = config
        self.node_id = node_id
        self.ctx: AgentContext | None = None
        self.store: DeliveryStore | None = None
        self.caps: Deliveries | None = None
        self.runner = HandlerRunner(config.delivery_handler)
        self.notifier: Notifier | None = None
        #: Deliveries whose last write failed (written again on resume).
        self.unsaved: set[bytes] = set()
        #: Why the store cannot be written ("" while it can), and since when (wall s).
        self.store_error = ""
        self.store_down_since: float | None = None
        #: Times the store came back (a create being acknowledged checks it, see api.py).
        self.resumes = 0
        self.counters: dict[str, int] = {"taken_over": 0, "fenced": 0, "store_errors": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._probing = False
        self.waiters: dict[bytes, list[asyncio.Future[dict[str, Any]]]] = {}
        self.api = DeliveriesAPI(self)
        if not config.deliveries:
            return
        self.store = open_store(config)
        records, handled = self._load(self.store, node_id)
        self.caps = Deliveries(
            records=records,
            handled=handled,
            config=DeliveriesConfig(ask_deadline=config.delivery_deadline),
            wall_offset=self._wall_offset,
        )
        if config.notify:
            from covey.runtime.features.deliveries.notify import Notifier

            assert config.notify_secret is not None  # checked by the config
            self.notifier = Notifier(
                config.notify, config.notify_secret.encode(), kinds=frozenset(config.notify_events)
            )

    @staticmethod
    def _load(
        store: DeliveryStore | None, node_id: bytes
    ) -> tuple[list[DeliveryRecord], list[HandledRecord]]:
        """What ``store`` holds of ours; in a shared store, our lease is taken first."""
        if store is None:
            return [], []
        try:
            if (common := shared(store)) is not None:
                # Before loading: once the lease is back nobody can claim our deliveries,
                # so none we load is taken over (and dispatched by two nodes) meanwhile;
                # those claimed while we were down are not in our set any more.
                common.renew(node_id, LEASE)
            return store.load(node_id)
        except StoreUnavailable as exc:
            store.close()
            raise ConfigError("scheduler", str(exc)) from None

    def _wall_offset(self) -> float:
        # The node's clock is the loop's, time.monotonic(): this is the driver's offset.
        return self.ctx.wall_offset if self.ctx is not None else time.time() - time.monotonic()

    # ------------------------------------------------------------------ the contract

    def capabilities(self) -> Sequence[Extension]:
        return () if self.caps is None else (self.caps,)

    def effect_writers(self) -> Mapping[type[Effect], EffectWriter]:
        if self.store is None:
            return {}
        return {SaveDelivery: self._write_delivery, SaveHandled: self._write_handled}

    def control_ops(self) -> Mapping[str, ControlHandler]:
        from covey.runtime.features.deliveries.ops import delivery_ops

        return delivery_ops(self.api)

    def http_routes(self) -> Sequence[HttpRoute]:
        from covey.runtime.features.deliveries.ops import delivery_routes

        return delivery_routes(self.api)

    def info(self) -> Mapping[str, object]:
        return self.api.info()

    def start(self, ctx: AgentContext) -> None:
        """Listen for requests and news; with a shared store, renew the lease and take
        over what dead owners left."""
        self.ctx = ctx
        self._loop = asyncio.get_running_loop()
        if self.caps is None:
            return
        ctx.listen(self._on_event)
        if self.notifier is not None:
            ctx.spawn(self.notifier.run())
        if (common := shared(self.store)) is not None:
            ctx.spawn(self._shared_loop(ctx, common))

    def stop(self) -> None:
        """Close the store (the writer thread has finished its writes by now).

        Notifications still queued are dropped with the agent (their outcome is lost).
        """
        for futures in self.waiters.values():
            for f in futures:
                if not f.done():
                    f.cancel()
        if self.store is not None:
            self.store.close()

    # ------------------------------------------------------------------ writes

    def _write_delivery(self, effect: Effect) -> None:
        """(writer thread) Store one record; report an unreachable store or a fence."""
        assert isinstance(effect, SaveDelivery) and self.store is not None
        try:
            self.store.save_delivery(self.node_id, effect.record)
        except StoreUnavailable as exc:
            self._from_writer(self._store_down, str(exc), effect.record.id)
            raise
        except Fenced as exc:
            self._from_writer(self._fenced, exc.delivery)
            raise

    def _write_handled(self, effect: Effect) -> None:
        """(writer thread) Store one receiver record."""
        assert isinstance(effect, SaveHandled) and self.store is not None
        try:
            self.store.save_handled(self.node_id, effect.record)
        except StoreUnavailable as exc:
            self._from_writer(self._store_down, str(exc), effect.record.delivery)
            raise

    def _from_writer(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _store_down(self, reason: str, item: bytes | None) -> None:
        """(loop) The store cannot be reached (``item``: the delivery whose write failed):
        hold the deliveries, and probe until it answers."""
        self.counters["store_errors"] += 1
        if item is not None:
            self.unsaved.add(item)
        caps, ctx = self.caps, self.ctx
        if caps is None or ctx is None or not ctx.running:
            return
        if not caps.held:
            log.warning("deliveries wait: %s", reason)
            self.store_error = reason
            self.store_down_since = time.time()
            ctx.call(lambda now: caps.hold(reason))
        if not self._probing:
            self._probing = True
            ctx.spawn(self._probe(ctx, caps))

    async def _probe(self, ctx: AgentContext, caps: Deliveries) -> None:
        store = self.store
        assert store is not None
        common = shared(store)
        try:
            while ctx.running:
                try:
                    if common is not None:
                        await asyncio.to_thread(common.renew, self.node_id, LEASE)
                        live = [r.id for r in caps.deliveries() if not r.state.done]
                        taken = await asyncio.to_thread(self._taken_from_us, common, live)
                    else:
                        await asyncio.to_thread(store.describe)
                        taken = set()
                    break
                except Exception as exc:  # StoreUnavailable, or anything the client raises
                    self.store_error = str(exc) or type(exc).__name__
                    await asyncio.sleep(PROBE_EVERY)
            if not ctx.running:
                return
            log.warning("deliveries resume: the store answers again")
            unsaved, self.unsaved = self.unsaved - taken, set()
            self.store_error, self.store_down_since = "", None

            def back(now: float) -> None:
                # What another node took over while we could not renew our lease is its
                # now: drop it before acting, so no stage is dispatched by two owners.
                for item in taken:
                    caps.release(item)
                caps.resume(unsaved, now=now)

            self.counters["fenced"] += len(taken)
            self.resumes += 1
            ctx.call(back)
        finally:
            self._probing = False

    def _taken_from_us(self, store: SharedStore, live: list[bytes]) -> set[bytes]:
        """(a worker thread) Those of our ``live`` deliveries that the shared store says
        another node owns now."""
        return {i for i in live if (o := store.owner(i)) is not None and o != self.node_id}

    def _fenced(self, item: bytes) -> None:
        """(loop) Another node owns ``item`` now: forget it here."""
        self.counters["fenced"] += 1
        caps, ctx = self.caps, self.ctx
        if caps is not None and ctx is not None and ctx.running:
            ctx.call(lambda now: caps.release(item))

    # ------------------------------------------------------------------ a shared store

    async def _shared_loop(self, ctx: AgentContext, store: SharedStore) -> None:
        """Renew our lease; take over the due deliveries of owners whose lease expired."""
        caps = self.caps
        assert caps is not None
        renewed = 0.0
        while ctx.running:
            try:
                if time.monotonic() - renewed >= LEASE / 3:
                    await asyncio.to_thread(store.renew, self.node_id, LEASE)
                    renewed = time.monotonic()
                if not caps.held:
                    # Every live delivery of a dead owner, not only the due ones: its asks
                    # may have been answered to a dead node, and adopt() re-sends them at
                    # once; waiting for the due time would stall each for its ask deadline.
                    claimed = await asyncio.to_thread(
                        store.takeover, self.node_id, math.inf, TAKEOVER_BATCH
                    )
                    for rec in claimed:
                        self.counters["taken_over"] += 1
                        log.info("took over delivery %s from %s", rec.id.hex(), rec.owner.hex())
                        ctx.call(functools.partial(_adopt, caps, rec))
            except StoreUnavailable as exc:
                if not caps.held:
                    self._store_down(str(exc), None)
            except Exception:
                log.exception("deliveries: shared store loop")
            await asyncio.sleep(min(TAKEOVER_EVERY, LEASE / 3))

    # ------------------------------------------------------------------ events

    def _on_event(self, event: AgentEvent) -> None:
        """(loop, synchronous) Run handlers, send notifications, wake waiters."""
        ctx = self.ctx
        if ctx is None:
            return
        if isinstance(event, DeliveryRequested):
            ctx.spawn(self._handle(ctx, event))
            return
        notifier = self.notifier
        if isinstance(event, DeliveryReceiptAccepted):
            if notifier is not None:
                body = {"stage": event.stage, "node": event.node.hex()}
                notifier.submit("receipt", event.record.id, body)
        elif isinstance(event, DeliveryStageComplete):
            if notifier is not None:
                notifier.submit("stage", event.record.id, event.to_json())
        elif isinstance(event, DeliveryComplete | DeliveryFailed):
            shown = event.record.to_json()
            if notifier is not None:
                kind = "complete" if isinstance(event, DeliveryComplete) else "failed"
                notifier.submit(kind, event.record.id, {"record": shown})
            for f in self.waiters.pop(event.record.id, ()):
                if not f.done():
                    f.set_result(shown)

    async def _handle(self, ctx: AgentContext, request: DeliveryRequested) -> None:
        answer = await self.runner.run(request)
        caps = self.caps
        if caps is not None and ctx.running:
            ctx.call(lambda now: caps.answer(request.delivery, request.stage, answer, now=now))


def _adopt(caps: Deliveries, rec: DeliveryRecord, now: float) -> DeliveryRecord:
    return caps.adopt(rec, now=now)
