"""The receiver's side: run the handler at most once per delivery stage, answer repeats.

A request is handled in three steps, each its own core step, so that the durable record
always leads what it promises:

1. the request arrives: a repeat is answered from the stored record (a receipt or a
   refusal) and nothing runs; a request whose deadline has passed is discarded and
   counted; otherwise a ``started`` record is handed out (:class:`SaveHandled`) and the
   request is queued (callback) or announced (:class:`DeliveryRequested`, for the runtime);
2. the handler runs: the callback from the node's next timer call (by then the step that
   stored ``started`` has been written), or the runtime's handler on the event;
3. the answer: an ``answered`` / ``refused`` record is stored, then the receipt or the
   refusal is sent to the owner over a stream.

A ``started`` record found after a restart means the handler may have run and its answer
was lost: it is not run again; the request is refused ("interrupted by a restart"), and
the owner asks another member.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from covey.core.deliveries.config import Answer, Handler, Refused
from covey.core.deliveries.effects import DeliveryRequested, SaveHandled
from covey.core.deliveries.messages import DeliveryRequest, Receipt, ReceiptAnswer, Refusal
from covey.core.deliveries.model import RESULT_LIMIT, HandledRecord, HandledState, clip
from covey.core.plugin import ExtensionMessage, Handle

_Key = tuple[bytes, int]

#: Requests kept while the store cannot be written (see :meth:`Receiver.defer`).
DEFERRED_LIMIT = 256


class Receiver:
    """This node's handled requests and its handler.

    Args:
        handle: gives the node's handle.
        wall: turns the node's ``now`` into wall-clock seconds.
        handler: the callback, or None to announce requests as events.
        records: the stored records to resume from (a restart).
    """

    def __init__(
        self,
        handle: Callable[[], Handle],
        wall: Callable[[float], float],
        handler: Handler | None,
        records: Iterable[HandledRecord],
    ) -> None:
        self._handle = handle
        self._wall = wall
        self.handler = handler
        self.records: dict[_Key, HandledRecord] = {r.key: r for r in records}
        self.counters: Counter[str] = Counter()
        #: Requests started in this process, not yet answered.
        self._running: set[_Key] = set()
        #: Started requests waiting for the callback (run by the next timer call).
        self._queue: dict[_Key, tuple[float, DeliveryRequested]] = {}
        #: Requests that came while the store could not be written, and their senders.
        self._deferred: dict[_Key, tuple[DeliveryRequest, bytes]] = {}

    def _store(self, rec: HandledRecord) -> None:
        self._handle().persist(SaveHandled(rec))
        self.records[rec.key] = rec

    def resave(self, rec: HandledRecord) -> None:
        """Hand ``rec`` out again (its earlier write failed)."""
        self._store(rec)

    @staticmethod
    def _reply(rec: HandledRecord) -> ExtensionMessage:
        if rec.state is HandledState.ANSWERED:
            return Receipt(rec.delivery, rec.stage, rec.result)
        return Refusal(rec.delivery, rec.stage, rec.reason)

    def on_request(self, msg: DeliveryRequest, sender: bytes, now: float) -> list[ExtensionMessage]:
        """Handle a request from ``sender`` (the owner); returns the immediate reply."""
        key = (msg.delivery, msg.stage)
        rec = self.records.get(key)
        t = self._wall(now)
        if rec is not None:
            self.counters["requests_repeated"] += 1
            if rec.state is not HandledState.STARTED:
                return [self._reply(rec)]
            if key in self._running:
                return []  # the handler is at work; its answer follows
            why = "interrupted by a restart"
            rec = HandledRecord(
                *key, rec.owner, HandledState.REFUSED, rec.deadline, reason=why, at=t
            )
            self._store(rec)
            return [self._reply(rec)]
        deadline = msg.deadline_ms / 1000
        if deadline <= t:
            self.counters["requests_expired"] += 1
            return []
        self.counters["requests_started"] += 1
        self._store(HandledRecord(msg.delivery, msg.stage, sender, HandledState.STARTED, deadline))
        self._running.add(key)
        request = DeliveryRequested(msg.delivery, msg.stage, sender, deadline, msg.payload)
        if self.handler is None:
            self._handle().emit(request)
        else:
            self._queue[key] = (now, request)
        return []

    def defer(self, msg: DeliveryRequest, sender: bytes) -> None:
        """Keep a request that came while the store cannot be written (the newest per
        delivery stage, at most :data:`DEFERRED_LIMIT`; beyond that it is dropped and
        counted, and its owner asks again), to be handled by :meth:`run_deferred`."""
        key = (msg.delivery, msg.stage)
        if key not in self._deferred and len(self._deferred) >= DEFERRED_LIMIT:
            self.counters["held_dropped"] += 1
            return
        self.counters["held_deferred"] += 1
        self._deferred[key] = (msg, sender)

    def run_deferred(self, now: float) -> None:
        """Handle the kept requests (the store works again); a reply goes to its owner."""
        deferred, self._deferred = self._deferred, {}
        h = self._handle()
        for key in sorted(deferred):
            msg, sender = deferred[key]
            replies = self.on_request(msg, sender, now)
            owner = h.members.get(sender)
            if replies and owner is not None:
                h.open_stream(owner.address, replies, now=now)

    def next_deadline(self) -> float | None:
        """When queued requests must be handed to the callback."""
        return min((at for at, _ in self._queue.values()), default=None)

    def run_queued(self, now: float) -> None:
        """Run the callback for each queued request (their ``started`` records are out)."""
        handler = self.handler
        if handler is None:
            return
        queue, self._queue = self._queue, {}
        for key in sorted(queue):
            request = queue[key][1]
            if request.deadline <= self._wall(now):
                self.counters["requests_expired"] += 1
                self.answer(key[0], key[1], Refused("expired before the handler ran"), now)
                continue
            self.counters["handler_runs"] += 1
            try:
                answer = handler(request)
            except Exception as exc:  # a handler's bug is a refusal, not a crashed node
                answer = Refused(f"handler raised {type(exc).__name__}: {exc}")
            self.answer(key[0], key[1], answer, now)

    def answer(self, delivery: bytes, stage: int, answer: Answer, now: float) -> bool:
        """Record the handler's ``answer`` and send it to the owner; False if not started."""
        key = (delivery, stage)
        rec = self.records.get(key)
        if rec is None or rec.state is not HandledState.STARTED or key not in self._running:
            return False
        self._running.discard(key)
        self._queue.pop(key, None)
        t = self._wall(now)
        if isinstance(answer, Refused):
            state, result, reason = HandledState.REFUSED, b"", clip(answer.reason)
        elif len(answer) > RESULT_LIMIT:
            state, result, reason = HandledState.REFUSED, b"", f"result over {RESULT_LIMIT} octets"
        else:
            state, result, reason = HandledState.ANSWERED, bytes(answer), ""
        rec = HandledRecord(delivery, stage, rec.owner, state, rec.deadline, result, reason, t)
        self._store(rec)
        self.counters["answered" if state is HandledState.ANSWERED else "refused"] += 1
        h = self._handle()
        owner = h.members.get(rec.owner)
        if owner is not None:  # else the owner's next request is answered from the record
            h.open_stream(owner.address, [self._reply(rec)], now=now)
        return True

    def on_answer(self, msg: ReceiptAnswer) -> None:
        """The owner's answer to one of our receipts (counted: it changes nothing here)."""
        self.counters["receipts_accepted" if msg.accepted else "receipts_refused"] += 1
