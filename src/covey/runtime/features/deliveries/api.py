"""The deliveries' Python facade, ``agent.deliveries``.

    async with covey.Agent(config) as agent:
        agent.deliveries.on_request(lambda req: b"seen " + req.payload[:8])
        item = agent.deliveries.create(b"block 17", ["3:any", "2!:role=auditor"], deadline=30)
        shown = await agent.deliveries.wait(item, timeout=60)
        print(shown["state"], [len(s["receipts"]) for s in shown["stages"]])

Every call refuses with :class:`~covey.runtime.control.server.ControlError` when the
deliveries are off or the agent is not running, and names the field on bad input.
A delivery is shown as ``DeliveryRecord.to_json()`` (``id``, ``state``, ``stage``,
``stages`` with ``required``, ``asked``, ``receipts``, ``refused``...) plus
``notifications``, the outcome of each webhook POST.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from covey.core.deliveries import (
    Deliveries,
    DeliveryState,
    SelectorError,
    StageSpec,
    Unavailable,
)
from covey.runtime.control.server import ControlError
from covey.runtime.features.deliveries.store import shared

if TYPE_CHECKING:
    from covey.core.deliveries import DeliveryRecord
    from covey.runtime.context import AgentContext
    from covey.runtime.features.deliveries.feature import DeliveriesFeature
    from covey.runtime.features.deliveries.handler import RequestFn

#: Longest wait ``wait`` (and ``covey deliver create --wait``) may ask for.
MAX_WAIT = 3600.0
#: Longest wait for a new delivery's record to be written before its create is refused.
STORE_WAIT = 10.0


def parse_id(text: object) -> bytes:
    """A delivery id from its 32 hex digits (ControlError otherwise)."""
    if isinstance(text, str):
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if len(raw) == 16:
            return raw
    raise ControlError(f"id: {text!r} is not a delivery id (32 hex digits)")


def parse_state(text: object) -> DeliveryState | None:
    """A state filter (None: all); ControlError naming the states otherwise."""
    if text is None:
        return None
    try:
        return DeliveryState(text)
    except ValueError:
        names = ", ".join(s.value for s in DeliveryState)
        raise ControlError(f"state: {text!r} is not one of {names}") from None


class DeliveriesAPI:
    """Create, follow, list and cancel deliveries; register the request handler."""

    def __init__(self, feature: DeliveriesFeature) -> None:
        self._feature = feature

    @property
    def enabled(self) -> bool:
        """True unless the agent runs with ``--deliveries off``."""
        return self._feature.caps is not None

    def _caps(self) -> Deliveries:
        caps = self._feature.caps
        if caps is None:
            raise ControlError("deliveries are off on this agent (--deliveries off)")
        return caps

    def _ctx(self) -> AgentContext:
        ctx = self._feature.ctx
        if ctx is None or not ctx.running:
            raise ControlError("agent is not running")
        return ctx

    def on_request(self, fn: RequestFn) -> None:
        """Answer requests with ``fn(request)`` (see handler.py): the result's octets, or
        a ``Refused``; may be a coroutine. Takes precedence over ``--delivery-handler``."""
        self._feature.runner.callbacks.append(fn)

    def create(
        self,
        payload: bytes | str,
        stages: Sequence[str | StageSpec] = ("1:any",),
        *,
        deadline: float | None = None,
        expire: float | None = None,
    ) -> str:
        """Create a delivery owned by this node; returns its id (hex).

        Args:
            payload: up to 64 KiB (text is sent as UTF-8).
            stages: ``"K:SELECTOR[@DEADLINE]"`` each (``"3:any"``, ``"2:role=db@10s"``,
                ``"1!:a,b"``...).
            deadline: seconds an asked member has to answer before it is replaced, for
                stages without their own (None: the agent's ``--delivery-deadline``).
            expire: seconds until the delivery fails if not complete (None: never).

        The record is handed to the store's writer before this returns, and written
        shortly after: await :meth:`stored` before acknowledging the delivery to anyone
        who must not lose it (``covey deliver create`` does).

        Raises:
            ControlError: a bad stage or selector, K above the cluster's size, a payload
                over the limit, the store unavailable — the message names the field.
        """
        caps, ctx = self._caps(), self._ctx()
        data = payload.encode() if isinstance(payload, str) else payload
        try:
            specs = [
                s if isinstance(s, StageSpec) else StageSpec.parse(s, deadline=deadline)
                for s in stages
            ]
            rec = ctx.call(lambda now: caps.create(bytes(data), specs, now=now, deadline=expire))
        except SelectorError as exc:
            raise ControlError(f"stage: {exc}") from None
        except Unavailable as exc:
            raise ControlError(str(exc)) from None
        except ValueError as exc:
            raise ControlError(f"payload: {exc}") from None
        return rec.id.hex()

    async def stored(self, delivery: str | bytes, timeout: float = STORE_WAIT) -> None:
        """Wait until the record of ``delivery``, just created, is written to the store.

        Raises:
            ControlError: (field ``store``) it could not be written (the store became
                unavailable) or not within ``timeout`` seconds. The delivery is then
                cancelled, so that what was never acknowledged does not go on (its first
                requests may have left: a receiver runs its handler at most once anyway).
        """
        item = parse_id(delivery) if isinstance(delivery, str) else delivery
        f, ctx = self._feature, self._ctx()
        # A bounded loop: the store coming back re-writes what failed in a later step, so
        # when it came back meanwhile, wait for that step too.
        for _ in range(3):
            resumes = f.resumes
            if not await ctx.written(timeout):
                why = f"the record was not written within {timeout:g}s"
                break
            if item in f.unsaved:
                why = f"a write of its record failed: {f.store_error or 'store unavailable'}"
                break
            if f.resumes == resumes:
                return
        else:
            why = "the store kept failing and coming back"
        if ctx.running:
            self.cancel(item)
        raise ControlError(f"store: delivery {item.hex()} was not created: {why}")

    def _shown(self, rec: DeliveryRecord) -> dict[str, Any]:
        out = rec.to_json()
        notifier = self._feature.notifier
        out["notifications"] = [] if notifier is None else notifier.outcomes(rec.id)
        return out

    def get(self, delivery: str | bytes) -> dict[str, Any] | None:
        """One delivery as shown (this node's, or any in a shared store); None: unknown."""
        item = parse_id(delivery) if isinstance(delivery, str) else delivery
        rec = self._caps().get(item)
        common = shared(self._feature.store)
        if rec is None and common is not None:  # owned by another node of the store
            rec = common.get(item)
        return None if rec is None else self._shown(rec)

    def list(self, state: str | None = None) -> list[dict[str, Any]]:
        """This node's deliveries (in ``state``), oldest first, without their stages."""
        wanted = parse_state(state)
        out = []
        for rec in self._caps().deliveries(wanted):
            shown = rec.to_json()
            shown["stages"] = [
                {k: s[k] for k in ("required", "selector")} | {"receipts": len(s["receipts"])}
                for s in shown["stages"]
            ]
            out.append(shown)
        return out

    def cancel(self, delivery: str | bytes) -> bool:
        """Cancel a delivery this node owns; False if unknown or already ended."""
        item = parse_id(delivery) if isinstance(delivery, str) else delivery
        caps = self._caps()
        return self._ctx().call(lambda now: caps.cancel(item, now=now))

    async def wait(self, delivery: str | bytes, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the delivery ended (complete, failed or cancelled); returns it shown.

        Raises:
            ControlError: unknown delivery.
            TimeoutError: not ended within ``timeout`` seconds.
        """
        item = parse_id(delivery) if isinstance(delivery, str) else delivery
        rec = self._caps().get(item)
        if rec is None:
            raise ControlError(f"id: no delivery {item.hex()} on this node")
        if rec.state.done:
            return self._shown(rec)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._feature.waiters.setdefault(item, []).append(future)
        try:
            async with asyncio.timeout(timeout):
                await future
        finally:
            waiting = self._feature.waiters.get(item, [])
            if future in waiting:
                waiting.remove(future)
        done = self._caps().get(item)
        assert done is not None
        return self._shown(done)

    def counters(self) -> dict[str, int]:
        """The capability's and the feature's counters."""
        caps = self._caps()
        return {
            **caps.counters,
            **self._feature.counters,
            **{f"handler.{k}": v for k, v in self._feature.runner.counters.items()},
        }

    def owned(self) -> dict[str, int]:
        """The deliveries this node owns, counted per state (``pending`` and ``stage``
        are in flight); empty with deliveries off. Reads memory only, never the store."""
        caps = self._feature.caps
        states: dict[str, int] = {}
        for rec in () if caps is None else caps.deliveries():
            states[rec.state.value] = states.get(rec.state.value, 0) + 1
        return states

    def info(self) -> dict[str, Any]:
        """What ``covey info`` shows: on/off, the store and whether it waits for it."""
        f = self._feature
        if f.caps is None:
            return {"enabled": False}
        store = f.store
        described: dict[str, Any] = {"backend": "memory"}
        if store is not None:
            try:
                described = store.describe()
            except Exception as exc:  # an unreachable store is news, not a failed info
                described = {"backend": store.backend, "error": str(exc)}
        return {
            "enabled": True,
            "store": described,
            "waiting_for_store": f.store_error or None,
            "store_down_since": f.store_down_since,
            "owned": self.owned(),
            "counters": self.counters(),
            "due_to_dispatch_ms": f.caps.lateness(),
            "notify": [] if f.notifier is None else list(f.config.notify),
        }
