"""Cluster-wide actions: run a named handler once on every live node (seed 000's zstop).

Theory of operation. ``start(name, payload)`` stamps an ``ActionRequest`` with a fresh
random id and the origin's Lamport time, sends it straight to every live member of a
small cluster (the path a node's own tags take, see ``CoreConfig.direct_push_limit``) and
spreads it by gossip (keyed by id) for whoever missed that. Every node that hears of it
for the first time remembers the id (so duplicates from gossip, push-pull or
retransmission are ignored: *exactly once* per node) and delivers it at once: there is
no hold. The origin's own copy is delivered the same way.

Ordering. Delivery runs on an immediate timer (``next_deadline`` is the time the action
was heard), so the actions heard in one step — one datagram, one push-pull, or several
heard before the node's next timer run — are delivered together, in Lamport order
``(lamport, origin, id)``. Across steps, a node delivers in the order it hears: two
concurrent actions from different nodes may run in different orders on different nodes,
and so may two actions of one origin if their datagrams are reordered or one is lost and
comes later by gossip or push-pull. Each ``ActionDelivered`` carries its Lamport time, so a
handler that needs a total order can use it (e.g. ignore an action older than the last
one it ran). Before 2026-12 every action was held 0.1 s first, which ordered concurrent
actions that arrived within the hold alike everywhere, at the price of 0.1 s per action.

The core never runs a handler itself. Delivering an action hands out a
:class:`RecordAction` effect (``handle.persist``) and then emits :class:`ActionDelivered`;
the runtime writes a step's effects before it publishes that step's events, so whoever
runs handlers on ``ActionDelivered`` (the agent's action runner, a simulation scenario)
runs one only once the id is on disk. It reports the outcome with :meth:`Actions.answer`,
which sends it back to the origin over TCP (``ActionResult``, answered by ``ActionAck``),
so the sender learns who applied the action and with what result. If the record could not
be written, the runner must not run the handler and answers a refusal instead. The origin
expects an answer from every member that was live when it started the action and still
is; what is missing at the caller's timeout is reported. Gossip alone can miss a node
(every copy lost under loss), so the origin sends the request again, by TCP straight to
each member it still expects an answer from — after :data:`RESEND_FIRST` seconds, then
with doubling gaps, for :data:`RESEND_FOR` seconds — and a node that already answered
answers such a copy again (its first answer may be the one that was lost).

Push-pull carries the actions heard in the last :data:`SYNC_WINDOW` seconds, so a node that
lost every gossip copy (or joined within that window) still runs them. Remembered ids
expire after :data:`SEEN_TTL`. A restarted node is given the ids its store recorded
(``restored``) and refuses them: exactly once across restarts, except that a crash
between the record and the handler's end leaves that action not run here (reported to
the origin as missing), never run twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field
from typing import TYPE_CHECKING, Any

from covey.core.effects import Effect
from covey.core.plugin import Extension, ExtensionEvent, ExtensionMessage
from covey.core.records import record
from covey.core.state.messages import ActionAck, ActionRequest, ActionResult, check_key, check_value
from covey.core.types import MemberState
from covey.core.wire.messages import MalformedMessage

if TYPE_CHECKING:
    from covey.core.types import Address

#: Seconds an action id is remembered after it was first heard.
SEEN_TTL = 600.0
#: Seconds an action is carried in push-pull after it was first heard.
SYNC_WINDOW = 30.0
#: Most recent actions carried in one push-pull.
SYNC_MAX = 64
#: Seconds before the origin first sends its request again to members that did not answer.
RESEND_FIRST = 1.0
#: Largest gap between two such sends, and how long after the start they go on.
RESEND_MAX_GAP = 8.0
RESEND_FOR = 120.0


#: What a node's store recorded at start: (Lamport clock, ids of the last SEEN_TTL seconds).
Restored = tuple[int, Iterable[bytes]]

#: The refusal a runner answers when the record of an action could not be written.
UNRECORDED = "cannot record the action (store error)"


@record
class RecordAction(Effect):
    """Record that action ``action_id`` runs here, and the Lamport ``clock``, durably:
    written before the :class:`ActionDelivered` of the same step is published."""

    action_id: bytes
    clock: int


@record
class ActionDelivered(ExtensionEvent):
    """Action ``name`` from ``origin`` is to run here (once); answer with ``Actions.answer``."""

    action_id: bytes
    origin: bytes
    lamport: int
    name: str
    payload: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "action",
            "id": self.action_id.hex(),
            "origin": self.origin.hex(),
            "lamport": self.lamport,
            "name": self.name,
            "payload": self.payload,
        }


@record
class ActionAnswered(ExtensionEvent):
    """Node ``node`` answered our action ``action_id``."""

    action_id: bytes
    node: str
    ok: bool
    result: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "action_result",
            "id": self.action_id.hex(),
            "node": self.node,
            "ok": self.ok,
            "result": self.result,
        }


@record(frozen=False)
class Outstanding:
    """An action we started: who should answer, who did."""

    request: ActionRequest
    expected: set[bytes]
    results: dict[bytes, tuple[bool, str]] = field(default_factory=dict)
    #: When it started, and when the request next goes again to who has not answered.
    started: float = 0.0
    resend_at: float | None = None
    resend_gap: float = RESEND_FIRST


class Actions(Extension):
    """Cluster-wide actions, delivered once per node as soon as heard.

    The actions heard in one step are delivered in Lamport order (see the module
    docstring for what is, and is not, ordered). Each delivery persists a
    :class:`RecordAction` and emits an :class:`ActionDelivered`; whoever runs the
    handlers answers it once with :meth:`answer` (an action nobody answers is reported
    to its origin as missing).

    Args:
        restored: (Lamport clock, ids) the store recorded in a past life of this node;
            those ids are never delivered again (None: nothing stored, or memory only).
    """

    name = "actions"
    message_types = (ActionRequest, ActionResult, ActionAck)

    def __init__(self, *, restored: Restored | None = None) -> None:
        super().__init__()
        self.clock = 0
        self._ran_before: set[bytes] = set()  # ids a past life of this node ran
        if restored is not None:
            self.clock, self._ran_before = restored[0], set(restored[1])
        self._unanswered: set[bytes] = set()  # delivered here, outcome not reported yet
        self._answers: dict[bytes, tuple[bool, str]] = {}  # what we answered, to repeat
        self.seen: dict[bytes, tuple[float, ActionRequest]] = {}
        self.outstanding: dict[bytes, Outstanding] = {}
        self.delivered = 0
        self._due: list[ActionRequest] = []  # heard, delivered on the next (immediate) timer
        self._due_at: float | None = None
        self._next_expiry: float | None = None
        self._now = 0.0
        self._window_end: float | None = None  # a timer, so _now passes the sync window

    def start(self, name: str, payload: str, now: float) -> bytes:
        """Send action ``name`` with ``payload`` to every live node (us included); its id.

        Raises:
            LimitError: bad name or payload.
        """
        check_key(name, "name")
        check_value(payload, "payload")
        self.clock += 1
        rng = self.handle.rng  # the core's Rng offers randrange, not randbytes
        action_id = b"".join(rng.randrange(1 << 32).to_bytes(4, "big") for _ in range(4))
        req = ActionRequest(action_id, self.handle.node_id, self.clock, name, payload)
        live = {
            nid
            for nid, m in self.handle.members.members.items()
            if m.state in (MemberState.ALIVE, MemberState.SUSPECT)
        }
        self.outstanding[action_id] = Outstanding(
            req, live, started=now, resend_at=now + RESEND_FIRST
        )
        self._receive(req, now, direct=True)
        return action_id

    def pending(self, action_id: bytes) -> set[bytes]:
        """Members still expected to answer our action (those still live)."""
        out = self.outstanding.get(action_id)
        if out is None:
            return set()
        table = self.handle.members
        return {
            nid
            for nid in out.expected - out.results.keys()
            if (m := table.get(nid)) is not None
            and m.state in (MemberState.ALIVE, MemberState.SUSPECT)
        }

    def answer(self, action_id: bytes, ok: bool, result: str, now: float) -> bool:
        """Report the outcome of an action delivered here (``result`` cut to fit).

        Each delivery is answered once: False (nothing sent) for an id that was not
        delivered here, was answered already, or has expired.
        """
        if action_id not in self._unanswered:
            return False
        self._unanswered.discard(action_id)
        self._answers[action_id] = (ok, _fit(result))
        self._reply(self.seen[action_id][1], *self._answers[action_id], now)
        return True

    # ------------------------------------------------------------------ receiving

    def _receive(self, req: ActionRequest, now: float, *, direct: bool = False) -> None:
        self._now = max(self._now, now)
        self.clock = max(self.clock, req.lamport)
        if req.action_id in self.seen or req.action_id in self._ran_before:
            return
        self.seen[req.action_id] = (now, req)
        self._window_end = now + SYNC_WINDOW
        if self._next_expiry is None:
            self._next_expiry = now + SEEN_TTL
        # ``direct`` (our own action): one hop to every member of a small cluster at once.
        self.handle.gossip(b"a" + req.action_id, req, now=now, direct=direct)
        self._due.append(req)
        if self._due_at is None:
            self._due_at = now  # an immediate timer: delivered in this step's timer run

    def on_message(self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float) -> None:
        if isinstance(msg, ActionRequest):
            self._receive(msg, now)

    def on_stream(
        self, msg: ExtensionMessage, sender: bytes, addr: Address, now: float
    ) -> list[ExtensionMessage]:
        if isinstance(msg, ActionResult):
            self._record(msg.action_id, sender, msg.ok, msg.result, now)
            return [ActionAck(msg.action_id)]
        if isinstance(msg, ActionRequest) and sender == msg.origin:
            said = self._answers.get(msg.action_id)
            if said is not None:  # the origin asks again: our answer was lost
                self._reply(msg, *said, now)
            self._receive(msg, now)
            return [ActionAck(msg.action_id)]  # received: the stream ends cleanly
        self.on_message(msg, sender, addr, now)
        return []

    def _record(self, action_id: bytes, node_id: bytes, ok: bool, result: str, now: float) -> None:
        out = self.outstanding.get(action_id)
        if out is None or node_id in out.results:
            return
        out.results[node_id] = (ok, result)
        m = self.handle.members.get(node_id)
        self.handle.emit(ActionAnswered(action_id, m.name if m else node_id.hex(), ok, result, now))

    def _reply(self, req: ActionRequest, ok: bool, result: str, now: float) -> None:
        if req.origin == self.handle.node_id:
            self._record(req.action_id, req.origin, ok, result, now)
            return
        origin = self.handle.members.get(req.origin)
        if origin is not None:
            msg = ActionResult(req.action_id, ok, result)
            self.handle.open_stream(origin.address, [msg], now=now)

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        due = [self._due_at, self._next_expiry, self._window_end]
        due += [out.resend_at for out in self.outstanding.values()]
        return min((t for t in due if t is not None), default=None)

    def on_timer(self, now: float) -> None:
        self._now = max(self._now, now)
        if self._window_end is not None and now >= self._window_end:
            self._window_end = None
        if self._due:
            # Everything heard since the last run goes together, in Lamport order.
            batch, self._due, self._due_at = self._due, [], None
            for req in sorted(batch, key=lambda r: (r.lamport, r.origin, r.action_id)):
                self._deliver(req, now)
        if self._next_expiry is not None and now >= self._next_expiry:
            self._expire(now)
        for out in self.outstanding.values():
            if out.resend_at is not None and now >= out.resend_at:
                self._resend(out, now)

    def _resend(self, out: Outstanding, now: float) -> None:
        """Send our request again, by TCP, to every live member that has not answered."""
        pending = self.pending(out.request.action_id) - {self.handle.node_id}
        if not pending or now - out.started >= RESEND_FOR:
            out.resend_at = None
            return
        for nid in sorted(pending):
            m = self.handle.members.get(nid)
            if m is not None:
                self.handle.open_stream(m.address, [out.request], now=now)
        out.resend_gap = min(out.resend_gap * 2, RESEND_MAX_GAP)
        out.resend_at = now + out.resend_gap

    def on_start(self, now: float) -> None:
        if self._ran_before and self._next_expiry is None:
            self._next_expiry = now + SEEN_TTL  # then the past life's ids expire too

    def _deliver(self, req: ActionRequest, now: float) -> None:
        # The record first: the runtime writes it before it publishes the event below,
        # and handlers run on the event, so none runs for an id that is not on disk.
        self.handle.persist(RecordAction(req.action_id, self.clock))
        self.delivered += 1
        self._unanswered.add(req.action_id)
        self.handle.emit(
            ActionDelivered(req.action_id, req.origin, req.lamport, req.name, req.payload, now)
        )

    def _expire(self, now: float) -> None:
        self._ran_before.clear()  # recorded at least SEEN_TTL ago by now
        for action_id, (at, _) in list(self.seen.items()):
            if at + SEEN_TTL <= now:
                del self.seen[action_id]
                self.outstanding.pop(action_id, None)
                self._unanswered.discard(action_id)
                self._answers.pop(action_id, None)
        oldest = min((at for at, _ in self.seen.values()), default=None)
        self._next_expiry = None if oldest is None else oldest + SEEN_TTL

    # ------------------------------------------------------------------ anti-entropy

    def sync_state(self) -> Any:
        # sync_state gets no clock: "now" is the latest time the node showed us.
        recent = sorted(
            (e for e in self.seen.values() if self._now - e[0] <= SYNC_WINDOW),
            key=lambda e: -e[0],
        )[:SYNC_MAX]
        return [req.to_array() for _, req in recent] or None

    def merge_sync_state(self, state: Any, sender: bytes, now: float) -> None:
        if not isinstance(state, list) or len(state) > SYNC_MAX:
            return
        for arr in state:
            try:
                req = ActionRequest.from_array(arr)
            except MalformedMessage:
                continue
            self._receive(req, now)


def _fit(text: str) -> str:
    """Cut ``text`` to the result limit (on a character boundary)."""
    data = text.replace("\x00", "").encode()[:1024]
    return data.decode(errors="ignore")
