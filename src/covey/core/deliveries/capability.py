"""Acknowledged deliveries: a payload that must collect receipts, stage after stage.

Theory of operation. A *delivery* (seed 002's block awaiting verifications) is created
on one node, its *owner*, with a payload and one or more *stages*; a stage needs K
receipts from distinct live members that its selector picks (``any``, ``tag=value``, a
name, a list), optionally not those that answered an earlier stage. The owner keeps one
:class:`~covey.core.deliveries.model.DeliveryRecord` per delivery and a
:class:`~covey.core.deliveries.schedule.Schedule`: a sorted set of delivery ids scored
by when each is next due, the seed's ``broadcast:in-flight``.

* **Dispatch.** When a stage starts, the owner asks K matching live members (chosen at
  random with the node's rng) with a :class:`DeliveryRequest` carrying the payload and a
  wall-clock deadline, over a stream. The delivery is scheduled at the earliest deadline.
* **Receipts** come back over a stream and are answered (:class:`ReceiptAnswer`). One
  from a member not asked in the current stage, for another stage, or beyond K is
  refused and counted. The K-th promotes the stage (:class:`DeliveryStageComplete`) and
  dispatches the next; after the last the delivery is complete (:class:`DeliveryComplete`).
* **Replacement.** When the schedule says a delivery is due, asks past their deadline
  are dropped and other matching live members are asked, with a fresh deadline; only
  they are asked. A member that fails or leaves while asked, or refuses, is replaced at
  once (``on_member_event``, :class:`Refusal`). Too few matching members: the delivery
  waits, rescheduled with a doubling back-off, its record saying why ("waiting: 1 of 3
  matching members alive"); a joining member wakes it. No member at all for
  ``starve_timeout``, a cancel, or the overall deadline: it fails, with the reason
  (:class:`DeliveryFailed`).
* **Scheduling** is never a poll: :meth:`Deliveries.next_deadline` is the schedule's
  lowest score, so the node's timer fires when the first delivery is due, and every
  action ends with a reschedule (or a removal once the delivery ended).
* **Durability.** Every change of a record is handed out as a
  :class:`~covey.core.deliveries.effects.SaveDelivery` before the requests and events it
  causes, and the node writes a step's effects before anything leaves it. A restarted
  owner is built from its stored records (``records=``): it re-sends the outstanding
  asks as their members reappear (a repeated request is answered from the receiver's
  record, never run again) and carries on; an ended delivery stays ended, so nothing
  is lost and nothing completes twice.
* **Receivers** (:mod:`covey.core.deliveries.receiver`) store a ``started`` record
  before the handler runs and the answer before it is sent, so the handler runs at
  most once per delivery stage per node, across restarts; a request past its deadline is
  discarded unhandled and counted.

Times in records and messages are wall-clock seconds: ``now + wall_offset()``, where
``wall_offset`` is given by the caller (the simulator: none; the runtime: the node's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from covey.core.deliveries.config import Answer, DeliveriesConfig, Handler, Unavailable
from covey.core.deliveries.messages import (
    MESSAGE_TYPES,
    DeliveryRequest,
    Receipt,
    ReceiptAnswer,
    Refusal,
)
from covey.core.deliveries.model import DeliveryRecord, DeliveryState, HandledRecord
from covey.core.deliveries.owner import Owner
from covey.core.deliveries.receiver import Receiver
from covey.core.deliveries.schedule import MemorySchedule, Schedule
from covey.core.deliveries.selectors import MAX_STAGES, SelectorError, StageSpec
from covey.core.events import MemberEvent, MemberFailed, MemberLeft, MemberReaped
from covey.core.plugin import Capability, ExtensionMessage
from covey.core.types import Address


class Deliveries(Capability):
    """The deliveries capability: owner and receiver of acknowledged deliveries.

    Args:
        handler: the receiver's callback (see :mod:`covey.core.deliveries.config`); None
            announces each request as a ``DeliveryRequested`` event, to be answered with
            :meth:`answer`.
        records: the owner's stored delivery records, to resume from.
        handled: the receiver's stored records, to resume from.
        config: timings and limits.
        schedule: the sorted set of due times (default: in memory, rebuilt from records).
        wall_offset: gives the seconds to add to the node's ``now`` for wall time.
    """

    name: ClassVar[str] = "deliveries"
    message_types: ClassVar[tuple[type[ExtensionMessage], ...]] = MESSAGE_TYPES

    def __init__(
        self,
        *,
        handler: Handler | None = None,
        records: Iterable[DeliveryRecord] = (),
        handled: Iterable[HandledRecord] = (),
        config: DeliveriesConfig | None = None,
        schedule: Schedule | None = None,
        wall_offset: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self.config = config or DeliveriesConfig()
        self._offset = wall_offset or (lambda: 0.0)
        sched = schedule if schedule is not None else MemorySchedule()
        self.owner = Owner(lambda: self.handle, self.wall, self.config, sched, records)
        self.receiver = Receiver(lambda: self.handle, self.wall, handler, handled)
        #: Why the deliveries wait for their store ("" while it works), see :meth:`hold`.
        self.held = ""

    def wall(self, now: float) -> float:
        """Wall-clock seconds at the node's ``now``."""
        return now + self._offset()

    # ------------------------------------------------------------------ the API

    def create(
        self,
        payload: bytes,
        stages: Sequence[StageSpec],
        *,
        now: float,
        deadline: float | None = None,
    ) -> DeliveryRecord:
        """Create a delivery owned by this node and dispatch its first stage at once.

        Args:
            payload: the octets every receiver gets (at most ``config.payload_limit``).
            stages: one or more stages.
            deadline: seconds from now after which it fails if not complete.

        Raises:
            SelectorError: no stage, too many, K above the cluster's size, a bad deadline.
            ValueError: a payload over the limit.
        """
        if type(payload) is not bytes:
            raise ValueError("payload must be bytes")
        if self.held:
            raise Unavailable(f"deliveries wait for their store: {self.held}")
        if len(payload) > self.config.payload_limit:
            raise ValueError(
                f"payload of {len(payload)} octets is over the limit of {self.config.payload_limit}"
            )
        if not 1 <= len(stages) <= MAX_STAGES:
            raise SelectorError(f"a delivery has 1 to {MAX_STAGES} stages, not {len(stages)}")
        others = len(self.handle.members.members) - 1
        for spec in stages:
            if spec.required > others:
                raise SelectorError(
                    f"stage {spec} needs {spec.required} receipts: the cluster has "
                    f"{others} other member{'s' if others != 1 else ''}"
                )
        if deadline is not None and not deadline > 0:
            raise SelectorError(f"deadline must be positive, not {deadline!r}")
        t = self.wall(now)
        item = self.handle.rng.randrange(1 << 128).to_bytes(16, "big")
        rec = DeliveryRecord(
            id=item,
            owner=self.handle.node_id,
            payload=payload,
            stages=tuple(stages),
            created=t,
            deadline=None if deadline is None else t + deadline,
            due=t,
        )
        return self.owner.act(rec, now)

    def cancel(self, delivery: bytes, *, now: float) -> bool:
        """Cancel a delivery this node owns; False if unknown or already ended."""
        rec = self.owner.records.get(delivery)
        if rec is None or rec.state.done:
            return False
        self.owner.end(rec, DeliveryState.CANCELLED, "cancelled", now)
        return True

    def adopt(self, record: DeliveryRecord, *, now: float) -> DeliveryRecord:
        """Take over ``record`` from its dead owner (a shared store claimed it for us)."""
        return self.owner.adopt(record, now)

    def release(self, delivery: bytes) -> None:
        """Forget ``delivery``: it is owned by another node now."""
        self.owner.release(delivery)

    def hold(self, reason: str) -> None:
        """The store cannot be written: stop acting until :meth:`resume`.

        While held nothing is created, nothing due is acted on, requests are kept
        unhandled (up to a limit) until :meth:`resume`, and receipts are refused ("store
        unavailable"): their requests are sent again on resume, and nothing is promised
        that could not be stored.
        """
        self.held = reason or "store unavailable"

    def resume(self, unsaved: Iterable[bytes], *, now: float) -> None:
        """The store works again: save again the records whose writes failed
        (``unsaved``: delivery ids), send again every outstanding request (the receipts
        and refusals that came meanwhile were refused or dropped; a receiver answers a
        repeat from its record), handle the requests kept while held, then act on every
        live delivery at once."""
        self.held = ""
        unsaved = set(unsaved)
        for item in sorted(unsaved):
            rec = self.owner.records.get(item)
            if rec is not None:
                self.owner.store(rec)
        for handled in list(self.receiver.records.values()):
            if handled.delivery in unsaved:
                self.receiver.resave(handled)
        self.owner.resend(now)
        self.receiver.run_deferred(now)
        t = self.wall(now)
        for rec in list(self.owner.records.values()):
            if not rec.state.done:
                self.owner.schedule.add(rec.id, t)
        self.owner.due(now)

    def get(self, delivery: bytes) -> DeliveryRecord | None:
        """The record of a delivery this node owns."""
        return self.owner.records.get(delivery)

    def deliveries(self, state: DeliveryState | None = None) -> list[DeliveryRecord]:
        """The records this node owns (in ``state``), oldest first."""
        recs = self.owner.records.values()
        return sorted(
            (r for r in recs if state is None or r.state is state), key=lambda r: r.created
        )

    def answer(self, delivery: bytes, stage: int, answer: Answer, *, now: float) -> bool:
        """Give the handler's answer to a ``DeliveryRequested``; False if not pending."""
        return self.receiver.answer(delivery, stage, answer, now)

    def lateness(self) -> dict[str, float | int]:
        """Due → dispatched delays of the last due items (ms): ``count``, ``p50``, ``p99``,
        ``max`` — how late the scheduler acted on what the sorted set said was due."""
        xs = sorted(self.owner.lateness)
        if not xs:
            return {"count": 0}

        def pick(q: float) -> float:
            return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 3)

        return {"count": len(xs), "p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0)}

    @property
    def counters(self) -> dict[str, int]:
        """Counts of what happened (refused receipts by reason, expired requests...)."""
        both: Counter[str] = Counter()
        both.update({f"owner.{k}": v for k, v in self.owner.counters.items()})
        both.update({f"receiver.{k}": v for k, v in self.receiver.counters.items()})
        return dict(both)

    # --------------------------------------------------------- the node's calls

    def on_start(self, now: float) -> None:
        """Re-send outstanding asks to members already known (after a restart)."""
        for node in sorted(self.owner.unsent_to()):
            if self.handle.members.get(node) is not None:
                self.owner.member_here(node, now)

    def on_message(self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float) -> None:
        """A message outside a stream exchange (a stream's reply): handled, not answered."""
        self.on_stream(msg, sender, addr, now)

    def on_stream(
        self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float
    ) -> list[ExtensionMessage]:
        """Route a message to the owner or the receiver; returns the reply."""
        if self.held:
            if isinstance(msg, DeliveryRequest):
                self.receiver.defer(msg, sender)  # handled on resume
                return []
            self.receiver.counters["held_dropped"] += 1
            if isinstance(msg, Receipt):
                return [ReceiptAnswer(msg.delivery, msg.stage, False, "store unavailable")]
            return []
        match msg:
            case DeliveryRequest():
                return self.receiver.on_request(msg, sender, now)
            case Receipt():
                return [self.owner.on_receipt(msg, sender, now)]
            case Refusal():
                self.owner.on_refusal(msg.delivery, msg.stage, sender, msg.reason, now)
            case ReceiptAnswer():
                self.receiver.on_answer(msg)
        return []

    def on_member_event(self, event: MemberEvent, now: float) -> None:
        """Replace a failed or departed member at once; greet a new one."""
        node = event.member.node_id
        if self.held:
            return  # resume() acts on every delivery anyway
        if isinstance(event, MemberFailed | MemberLeft | MemberReaped):
            self.owner.member_gone(node, now)
        else:
            self.owner.member_here(node, now)

    def next_deadline(self) -> float | None:
        """The schedule's lowest score (as the node's ``now``), or a queued handler run."""
        due = None if self.held else self.owner.schedule.next_due()
        times = [self.receiver.next_deadline()]
        if due is not None:
            times.append(due - self._offset())
        return min((t for t in times if t is not None), default=None)

    def on_timer(self, now: float) -> None:
        """Run queued handlers, then act on every due delivery."""
        self.receiver.run_queued(now)
        if not self.held:
            self.owner.due(now)

    def sync_state(self) -> Any:
        """Deliveries share nothing by push-pull: owners keep their own records."""
        return None
