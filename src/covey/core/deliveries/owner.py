"""The owner's side: dispatch each stage, collect receipts, replace the silent and the dead.

One method, :meth:`Owner.act`, moves a delivery forward and is run whenever the
scheduler says it is due (a stage starts, an ask's deadline passes, a back-off ends, the
overall deadline comes) or at once when something changes (a member it waits for fails,
a receiver refuses, a matching member joins). It drops the asks that expired or whose
member is gone, asks as many other matching live members as are still missing, and
reschedules the delivery at its next due time. Every change is stored
(:class:`~covey.core.deliveries.effects.SaveDelivery`) *before* the requests it causes are
handed to the node, which writes a step's effects before sending anything.

Receipts are accepted only from a member asked in the current stage, once per member,
and only up to K (the K-th promotes the stage, so any later one is "beyond K"); the rest
are refused, counted, and the count is kept in the stage's record.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import replace

from covey.core.deliveries.config import DeliveriesConfig
from covey.core.deliveries.effects import (
    DeliveryComplete,
    DeliveryFailed,
    DeliveryReceiptAccepted,
    DeliveryStageComplete,
    SaveDelivery,
)
from covey.core.deliveries.messages import DeliveryRequest, Receipt, ReceiptAnswer, to_ms
from covey.core.deliveries.model import (
    Ask,
    DeliveryRecord,
    DeliveryState,
    ReceiptEntry,
    clip,
)
from covey.core.deliveries.schedule import Schedule
from covey.core.plugin import Handle, MemberView
from covey.core.types import MemberState

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)
#: Due → dispatched delays kept for the percentiles (the last ones).
LATENESS_KEPT = 10_000


class Owner:
    """The deliveries this node created: their records, schedule and counters.

    Args:
        handle: gives the node's handle (the capability is attached after construction).
        wall: turns the node's ``now`` into wall-clock seconds.
        config: timings.
        schedule: the sorted set of due times (wall seconds).
        records: the stored records to resume from (a restart).
    """

    def __init__(
        self,
        handle: Callable[[], Handle],
        wall: Callable[[float], float],
        config: DeliveriesConfig,
        schedule: Schedule,
        records: Iterable[DeliveryRecord],
    ) -> None:
        self._handle = handle
        self._wall = wall
        self.config = config
        self.schedule = schedule
        self.records: dict[bytes, DeliveryRecord] = {}
        self.counters: Counter[str] = Counter()
        #: member -> deliveries waiting for its receipt (to act at once when it fails).
        self._waiting_on: dict[bytes, set[bytes]] = {}
        #: member -> deliveries whose request to it may not have left before a restart.
        self._unsent: dict[bytes, set[bytes]] = {}
        #: deliveries short of matching members (woken when a member joins).
        self._short: set[bytes] = set()
        #: How late (s) each of the last due items was acted on: due → dispatched.
        self.lateness: deque[float] = deque(maxlen=LATENESS_KEPT)
        for rec in records:
            self._index(rec)
            if not rec.state.done:
                for a in rec.current.waiting:
                    self._unsent.setdefault(a.node, set()).add(rec.id)

    # ------------------------------------------------------------------ records

    def _index(self, rec: DeliveryRecord) -> None:
        old = self.records.get(rec.id)
        if old is not None:
            for a in old.current.waiting:
                ids = self._waiting_on.get(a.node)
                if ids is not None:
                    ids.discard(rec.id)
                    if not ids:
                        del self._waiting_on[a.node]
        self.records[rec.id] = rec
        if rec.state.done or rec.due is None:
            self.schedule.remove(rec.id)
            self._short.discard(rec.id)
            return
        for a in rec.current.waiting:
            self._waiting_on.setdefault(a.node, set()).add(rec.id)
        self.schedule.add(rec.id, rec.due)
        if rec.reason:
            self._short.add(rec.id)
        else:
            self._short.discard(rec.id)

    def store(self, rec: DeliveryRecord) -> None:
        """Make ``rec`` the current record: persist it, index it, (re)schedule it."""
        self._handle().persist(SaveDelivery(rec))
        self._index(rec)

    # ------------------------------------------------------------------ members

    def _live(self, node: bytes) -> MemberView | None:
        m = self._handle().members.get(node)
        return m if m is not None and m.state in _LIVE else None

    def _gone(self, node: bytes) -> bool:
        # An unknown member is not gone: after a restart the table is still filling up.
        m = self._handle().members.get(node)
        return m is not None and m.state not in _LIVE

    def _eligible(self, rec: DeliveryRecord) -> list[MemberView]:
        """Live members the current stage may ask (self excluded: no stream to itself)."""
        h = self._handle()
        spec = rec.spec
        excluded = rec.answered_before() if spec.exclude_previous else frozenset()
        return [
            m
            for m in h.members.live()
            if m.node_id != h.node_id
            and m.node_id not in excluded
            and spec.selector.matches(m.name, m.tags)
        ]

    # ------------------------------------------------------------------ acting

    def act(self, rec: DeliveryRecord, now: float) -> DeliveryRecord:
        """Move ``rec`` forward at ``now`` (see the module docstring); returns the new record."""
        t = self._wall(now)
        if rec.state.done:
            self.schedule.remove(rec.id)
            return rec
        if rec.deadline is not None and t >= rec.deadline:
            return self.end(rec, DeliveryState.FAILED, "past its overall deadline", now)
        spec, p = rec.spec, rec.current
        keep = tuple(a for a in p.waiting if a.deadline > t and not self._gone(a.node))
        self.counters["replaced_silent"] += sum(a.deadline <= t for a in p.waiting)
        need = spec.required - len(p.receipts) - len(keep)
        eligible = self._eligible(rec)
        taken = p.answered() | {a.node for a in keep} | {n for n, _ in p.refusals}
        fresh = [m for m in eligible if m.node_id not in taken and m.node_id not in p.asked]
        again = [m for m in eligible if m.node_id not in taken and m.node_id in p.asked]
        rng = self._handle().rng
        rng.shuffle(fresh)
        rng.shuffle(again)
        chosen = (fresh + again)[: max(need, 0)]
        ask_by = t + (spec.deadline or self.config.ask_deadline)
        asks = tuple(Ask(m.node_id, ask_by) for m in chosen)
        asked = p.asked + tuple(m.node_id for m in chosen if m.node_id not in p.asked)
        waiting = keep + asks
        due = [a.deadline for a in waiting]
        reason, starved, backoff = "", None, 0.0
        if need > len(chosen):
            refused = {n for n, _ in p.refusals}
            matching = sum(m.node_id not in refused for m in eligible)
            reason = f"waiting: {matching} of {spec.required} matching members alive"
            if refused:
                reason += f" ({len(refused)} refused)"
            if not waiting:
                starved = rec.starved_since if rec.starved_since is not None else t
                # The same sum as the due time below: a difference may round under it.
                if t >= starved + self.config.starve_timeout:
                    failed = rec.with_current(replace(p, asked=asked, waiting=()))
                    why = f"no matching member for {self.config.starve_timeout:g}s ({reason})"
                    return self.end(failed, DeliveryState.FAILED, why, now)
                due.append(starved + self.config.starve_timeout)
            backoff = min(max(rec.backoff * 2, self.config.backoff_min), self.config.backoff_max)
            due.append(t + backoff)
        if rec.deadline is not None:
            due.append(rec.deadline)
        progress = replace(p, asked=asked, waiting=waiting)
        new = rec.with_current(
            progress,
            state=DeliveryState.STAGE,
            due=min(due),
            reason=clip(reason),
            starved_since=starved,
            backoff=backoff,
        )
        self.store(new)
        self._send(new, asks, now)
        return new

    def _send(self, rec: DeliveryRecord, asks: Iterable[Ask], now: float) -> None:
        h = self._handle()
        for a in asks:
            m = h.members.get(a.node)
            if m is None:
                self._unsent.setdefault(a.node, set()).add(rec.id)
                continue
            self.counters["requests_sent"] += 1
            msg = DeliveryRequest(rec.id, rec.stage, to_ms(a.deadline), rec.payload)
            h.open_stream(m.address, [msg], now=now)

    def end(
        self, rec: DeliveryRecord, state: DeliveryState, reason: str, now: float
    ) -> DeliveryRecord:
        """End ``rec`` failed or cancelled (stored, then announced)."""
        new = rec.changed(state=state, reason=clip(reason), due=None)
        self.store(new)
        self.counters[state.value] += 1
        self._handle().emit(DeliveryFailed(new))
        return new

    def due(self, now: float) -> None:
        """Act on every delivery the schedule says is due at ``now``."""
        t = self._wall(now)
        # Claim every due item first: an action reschedules its item, and one rescheduled
        # at (or, by rounding, before) ``t`` waits for the next call instead of looping.
        claimed: list[bytes] = []
        while (score := self.schedule.next_due()) is not None and score <= t:
            item = self.schedule.pop(t)
            if item is None:
                break
            claimed.append(item)
            self.lateness.append(t - score)
        for item in claimed:
            rec = self.records.get(item)
            if rec is not None:
                self.act(rec, now)

    def adopt(self, rec: DeliveryRecord, now: float) -> DeliveryRecord:
        """Own ``rec``, taken over from a dead owner: store it, re-send its outstanding asks
        (a receiver that already answered answers again from its record) and act on it
        when due, or at once when the old owner was waiting for us."""
        h = self._handle()
        new = rec.changed(owner=h.node_id)
        self.counters["adopted"] += 1
        p = new.current
        mine = not new.state.done and any(a.node == h.node_id for a in p.waiting)
        if mine:
            # The old owner asked us: an owner never asks itself (the receipt would go to
            # the dead owner, and no stream runs to ourselves), so another member is asked.
            waiting = tuple(a for a in p.waiting if a.node != h.node_id)
            new = new.with_current(replace(p, waiting=waiting))
        self.store(new)
        if new.state.done:
            return new
        self._send(new, new.current.waiting, now)
        if mine or (new.due is not None and new.due <= self._wall(now)):
            return self.act(new, now)
        return new

    def resend(self, now: float) -> None:
        """Send again every outstanding ask still in time (after the store was away)."""
        t = self._wall(now)
        for rec in list(self.records.values()):
            if not rec.state.done:
                self._send(rec, [a for a in rec.current.waiting if a.deadline > t], now)

    def release(self, delivery: bytes) -> None:
        """Forget ``delivery``: another node owns it now (this one was fenced off)."""
        rec = self.records.pop(delivery, None)
        if rec is None:
            return
        self.counters["released"] += 1
        self.schedule.remove(delivery)
        self._short.discard(delivery)
        for ids in (*self._waiting_on.values(), *self._unsent.values()):
            ids.discard(delivery)

    # ------------------------------------------------------------------ answers

    def _refuse(self, rec: DeliveryRecord | None, msg: Receipt, why: str) -> ReceiptAnswer:
        self.counters[f"refused_{why.split(':')[0].replace(' ', '_')}"] += 1
        if rec is not None and msg.stage < len(rec.progress):
            progress = list(rec.progress)
            p = progress[msg.stage]
            progress[msg.stage] = replace(p, refused=p.refused + 1)
            self.store(rec.changed(progress=tuple(progress)))
        return ReceiptAnswer(msg.delivery, msg.stage, False, why)

    def on_receipt(self, msg: Receipt, sender: bytes, now: float) -> ReceiptAnswer:
        """Accept or refuse a receipt; the answer goes back to its sender."""
        rec = self.records.get(msg.delivery)
        if rec is None:
            return self._refuse(None, msg, "unknown delivery")
        if msg.stage < len(rec.progress) and sender in rec.progress[msg.stage].answered():
            self.counters["receipts_repeated"] += 1
            return ReceiptAnswer(msg.delivery, msg.stage, True, "already held")
        if msg.stage < rec.stage or rec.state is DeliveryState.COMPLETE:
            if msg.stage < len(rec.progress) and sender in rec.progress[msg.stage].asked:
                return self._refuse(rec, msg, "beyond K: the stage holds its receipts")
            return self._refuse(rec, msg, "not asked")
        if rec.state.done or msg.stage != rec.stage:
            return self._refuse(rec, msg, "stage not current")
        p = rec.current
        if sender not in p.asked:
            return self._refuse(rec, msg, "not asked")
        if len(p.receipts) >= rec.spec.required:  # unreachable: the K-th promotes at once
            return self._refuse(rec, msg, "beyond K")
        self.counters["receipts_accepted"] += 1
        entry = ReceiptEntry(sender, msg.result, self._wall(now))
        waiting = tuple(a for a in p.waiting if a.node != sender)
        receipts = (*p.receipts, entry)
        rec = rec.with_current(replace(p, waiting=waiting, receipts=receipts))
        short = len(receipts) < rec.spec.required
        if short:
            self.store(rec)
        # With the K-th, the promotion stores the record: the step's effects are written
        # before its events are published either way.
        self._handle().emit(DeliveryReceiptAccepted(rec, msg.stage, sender))
        if not short:
            self._promote(rec, now)
        return ReceiptAnswer(msg.delivery, msg.stage, True, "")

    def _promote(self, rec: DeliveryRecord, now: float) -> None:
        stage = rec.stage
        if stage + 1 == len(rec.stages):
            done = rec.changed(state=DeliveryState.COMPLETE, reason="", due=None)
            self.store(done)
            self.counters["complete"] += 1
            self._handle().emit(DeliveryStageComplete(done, stage))
            self._handle().emit(DeliveryComplete(done))
            return
        nxt = rec.changed(stage=stage + 1, reason="", starved_since=None, backoff=0.0)
        self._handle().emit(DeliveryStageComplete(nxt, stage))
        # Not stored apart from its first asks: a record in the next stage with no ask yet
        # still has the last stage's due time, and an owner that crashed between the two
        # writes would dispatch the stage only then (30 s later by default).
        self.act(nxt, now)

    def on_refusal(self, delivery: bytes, stage: int, sender: bytes, why: str, now: float) -> None:
        """A receiver refused: note it and ask someone else at once."""
        rec = self.records.get(delivery)
        if rec is None or rec.state.done or stage != rec.stage:
            return
        p = rec.current
        if sender not in p.asked or any(n == sender for n, _ in p.refusals):
            return
        self.counters["refusals"] += 1
        waiting = tuple(a for a in p.waiting if a.node != sender)
        refusals = (*p.refusals, (sender, clip(why)))
        rec = rec.with_current(replace(p, waiting=waiting, refusals=refusals))
        self.act(rec, now)

    # ------------------------------------------------------------------ members

    def member_gone(self, node: bytes, now: float) -> None:
        """``node`` failed or left: replace it at once wherever it was asked."""
        for item in sorted(self._waiting_on.get(node, ())):
            rec = self.records[item]
            if not rec.state.done:
                self.counters["replaced_gone"] += 1
                self.act(rec, now)

    def unsent_to(self) -> set[bytes]:
        """Members owed a request that may not have left before a restart."""
        return set(self._unsent)

    def member_here(self, node: bytes, now: float) -> None:
        """``node`` joined or came back: send what may not have left, wake the short."""
        unsent = self._unsent.pop(node, set())
        h = self._handle()
        m = h.members.get(node)
        for item in sorted(unsent):
            rec = self.records.get(item)
            if rec is None or rec.state.done or m is None:
                continue
            asks = [a for a in rec.current.waiting if a.node == node]
            self._send(rec, asks, now)
        t = self._wall(now)
        for item in sorted(self._short):
            self.schedule.add(item, t)
