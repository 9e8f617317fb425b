"""Webhook notifications of deliveries: signed JSON POSTs, retried, never in the way.

The deliveries feature calls :meth:`Notifier.submit` per receipt, per stage and on
completion (the kinds it is configured for); the call only queues. :meth:`Notifier.run`,
a task in the agent's event loop, POSTs each notification to every configured URL. Each
URL has its own queue and worker, so a slow or down receiver delays nobody else; a
failure (connection refused, timeout, a status outside 2xx — redirects are not
followed) is retried with jittered exponential back-off until ``give_up_after`` seconds
after the submit. What became of each notification is kept per delivery
(:meth:`Notifier.outcomes`, shown by ``covey deliver show``).

The request::

    POST <url>
    Content-Type: application/json
    X-Covey-Event: receipt | stage | complete | failed
    X-Covey-Delivery: <delivery id, hex>
    X-Covey-Id: <notification id, hex; the same for every URL and every retry>
    X-Covey-Timestamp: <unix seconds of this attempt, an integer as text>
    X-Covey-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

    {"at":...,"delivery":"<hex>","event":"<kind>",...}   (sorted keys, compact)

The receiver's recipe (aiohttp shown; any framework works the same way)::

    from covey.runtime.features.deliveries.notify import verify

    async def hook(request):
        body = await request.read()              # the raw octets, before any parsing
        if not verify(SECRET, request.headers.get("X-Covey-Timestamp", ""), body,
                      request.headers.get("X-Covey-Signature", "")):
            return web.Response(status=401)
        event = json.loads(body)
        ...                                      # dedupe on X-Covey-Id: delivery is
        return web.Response(status=204)          # at least once (a lost answer is retried)

The timestamp is inside the signature, so a captured request replayed later fails the
``tolerance`` window, and one re-stamped fails the signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from covey.core.records import record
from covey.runtime.config.model import ConfigError

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

#: Every kind of notification there is.
KINDS = frozenset({"receipt", "stage", "complete", "failed"})
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``"sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body))``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """True when ``signature`` is :func:`sign` of (``timestamp``, ``body``) under ``secret``
    and ``timestamp`` is within ``tolerance`` seconds of ``now`` (default: the wall clock).

    For receivers (see the module docstring). Never raises on bad header values: a
    malformed timestamp or signature is simply False. The comparison is constant-time.
    """
    if not isinstance(timestamp, str) or not _TIMESTAMP.fullmatch(timestamp):
        return False
    if not isinstance(signature, str) or not signature.isascii():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@record(frozen=False)
class _Outcome:
    """What became of one notification to one URL (its worker updates it); the fields,
    in this order, are what :meth:`Notifier.outcomes` shows."""

    url: str
    event: str
    state: str = "queued"
    attempts: int = 0
    status: int | None = None
    error: str = ""
    at: float | None = None


@record(frozen=False)
class _Job:
    delivery: bytes
    event: str
    ident: str
    body: bytes
    deadline: float  # monotonic
    outcome: _Outcome


@record(frozen=False)
class _Lane:
    """One URL: its queue (the head is the job in hand) and its worker's wake-up."""

    url: str
    shown: str  # the URL without credentials, for outcomes and logs
    jobs: deque[_Job] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    failing: str = ""  # the error of the last attempt, "" when it succeeded


def _check_url(url: str) -> str:
    """``url`` without user:password (what outcomes show); ConfigError when unusable."""
    if not isinstance(url, str) or not url or any(c.isspace() for c in url):
        raise ConfigError("notify", f"not a URL: {url!r}")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        raise ConfigError("notify", f"bad URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError("notify", f"URL {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ConfigError("notify", f"URL {url!r} names no host")
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class Notifier:
    """Queues notifications and POSTs them to ``urls`` (see the module docstring).

    Args:
        urls: http:// or https:// URLs; every notification goes to each.
        secret: the HMAC key receivers verify with (:func:`verify`).
        kinds: the kinds to send; others are ignored by :meth:`submit`.
        queue_limit: notifications waiting per URL (the one in hand included); a submit
            finding a URL's queue full is dropped there, and counted.
        timeout: seconds per attempt (connect to answer).
        retry_min, retry_max: the back-off after the first failure, and its cap; it
            doubles per failure, times a jitter in [1, 1.5).
        give_up_after: seconds after the submit when a failing notification gives up.
        keep_deliveries, keep_per_delivery: how many deliveries keep their outcomes, and
            how many per delivery (the oldest go first: memory stays bounded).
        rng: the jitter's randomness (default: a fresh ``random.Random``).
        wall: the wall clock (the body's ``at``, outcomes' ``at``, the timestamp).

    Raises:
        ConfigError: (field ``notify``) a URL or a setting is unusable.

    Call :meth:`submit` from the event loop's thread only (it wakes asyncio events).
    """

    def __init__(
        self,
        urls: Sequence[str],
        secret: bytes,
        *,
        kinds: frozenset[str] = KINDS,
        queue_limit: int = 1000,
        timeout: float = 5.0,
        retry_min: float = 0.5,
        retry_max: float = 30.0,
        give_up_after: float = 3600.0,
        keep_deliveries: int = 10_000,
        keep_per_delivery: int = 1_000,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(urls, str) or not urls:
            raise ConfigError("notify", "give at least one URL (a list of them)")
        shown = [_check_url(u) for u in urls]
        if len(set(urls)) != len(urls):
            raise ConfigError("notify", "a URL is given twice")
        if not isinstance(secret, bytes) or not secret:
            raise ConfigError("notify", "the secret must be non-empty bytes")
        if not kinds or not kinds <= KINDS:
            raise ConfigError("notify", f"kinds must be among {sorted(KINDS)}: {sorted(kinds)}")
        if queue_limit < 1 or keep_deliveries < 1 or keep_per_delivery < 1:
            raise ConfigError("notify", "queue and keep limits must be at least 1")
        if not (timeout > 0 and 0 < retry_min <= retry_max and give_up_after >= 0):
            raise ConfigError(
                "notify", "need timeout > 0, 0 < retry_min <= retry_max, give_up_after >= 0"
            )
        self._lanes = [_Lane(u, s) for u, s in zip(urls, shown, strict=True)]
        self._secret = secret
        self._kinds = frozenset(kinds)
        self._limit = queue_limit
        self._timeout = timeout
        self._retry = (retry_min, retry_max)
        self._give_up_after = give_up_after
        self._keep = (keep_deliveries, keep_per_delivery)
        self._rng = rng if rng is not None else random.Random()
        self._wall = wall
        self._outcomes: OrderedDict[bytes, deque[_Outcome]] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: sent, failed_attempts (each failed try), dropped_queue_full (per URL),
        #: gave_up (per URL), rejected (a submit whose body is not JSON).
        self.counters: dict[str, int] = dict.fromkeys(
            ("sent", "failed_attempts", "dropped_queue_full", "gave_up", "rejected"), 0
        )

    # ------------------------------------------------------------------ the caller's side

    def submit(self, kind: str, delivery: bytes, body: dict[str, Any]) -> bool:
        """Queue notification ``kind`` of ``delivery`` with ``body``'s fields, for every URL.

        Never blocks, never raises. ``event``, ``delivery`` and ``at`` are set by the
        notifier (``body`` cannot override them). Returns True when queued for every
        URL; False when ``kind`` is not sent (ignored), when closed, when ``body`` is
        not JSON (counted ``rejected``), or when a URL's queue was full (that URL's
        copy is dropped, counted ``dropped_queue_full`` and shown ``dropped``).
        """
        if self._closed or kind not in self._kinds:
            return False
        try:
            if not isinstance(delivery, bytes):
                raise TypeError(f"the delivery id must be bytes, not {type(delivery).__name__}")
            plain = {**body, "event": kind, "delivery": delivery.hex(), "at": self._wall()}
            data = json.dumps(plain, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, AttributeError) as exc:
            self.counters["rejected"] += 1
            log.warning("notify: %s of %r not sent: %s", kind, delivery, exc)
            return False
        encoded = data.encode("utf-8")
        deadline = time.monotonic() + self._give_up_after
        notification = secrets.token_hex(8)
        queued = True
        for lane in self._lanes:
            outcome = _Outcome(lane.shown, kind)
            self._remember(delivery, outcome)
            if len(lane.jobs) >= self._limit:
                outcome.state, outcome.error = "dropped", "queue full"
                self.counters["dropped_queue_full"] += 1
                queued = False
                continue
            lane.jobs.append(_Job(delivery, kind, notification, encoded, deadline, outcome))
            lane.wake.set()
        return queued

    def outcomes(self, delivery: bytes) -> list[dict[str, Any]]:
        """Per notification of ``delivery`` (oldest first) and URL: ``url`` (without
        credentials), ``event``, ``state`` (queued, retrying, sent, gave up, dropped),
        ``attempts``, ``status`` (last HTTP status or None), ``error`` (last error or
        ""), ``at`` (wall time of the last attempt or None)."""
        kept = self._outcomes.get(delivery)
        return [asdict(o) for o in kept] if kept else []

    def pending(self) -> int:
        """Notifications waiting or in hand, over every URL."""
        return sum(len(lane.jobs) for lane in self._lanes)

    def _remember(self, delivery: bytes, outcome: _Outcome) -> None:
        kept = self._outcomes.get(delivery)
        if kept is None:
            kept = self._outcomes[delivery] = deque(maxlen=self._keep[1])
            while len(self._outcomes) > self._keep[0]:
                self._outcomes.popitem(last=False)
        else:
            self._outcomes.move_to_end(delivery)
        kept.append(outcome)

    # ------------------------------------------------------------------ the worker's side

    async def run(self) -> None:
        """POST what is queued, one worker per URL, until cancelled or :meth:`close`
        (RuntimeError when already running or closed)."""
        if self._closed or self._task is not None:
            raise RuntimeError("notifier is closed or already running")
        import aiohttp  # here, not at module level: only agents that notify load it

        self._task = asyncio.current_task()
        try:
            limit = aiohttp.ClientTimeout(total=self._timeout)
            async with (
                aiohttp.ClientSession(timeout=limit) as session,
                asyncio.TaskGroup() as group,
            ):
                for lane in self._lanes:
                    group.create_task(self._work(session, lane))
        finally:
            self._task = None

    async def close(self, timeout: float = 5.0) -> None:
        """Stop: cancel the workers (waiting up to ``timeout`` s); what was still queued
        shows ``dropped`` ("notifier closed"). Later submits return False. Idempotent."""
        self._closed = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task}, timeout=timeout)  # its outcome is not ours to raise
        for lane in self._lanes:
            for job in lane.jobs:
                if job.outcome.state in ("queued", "retrying"):
                    job.outcome.state, job.outcome.error = "dropped", "notifier closed"
            lane.jobs.clear()

    async def _work(self, session: aiohttp.ClientSession, lane: _Lane) -> None:
        # Bounded by the task's life (cancelled at close/shutdown); one job at a time,
        # so a receiver sees a delivery's notifications in the order they happened.
        while True:
            while not lane.jobs:
                lane.wake.clear()
                await lane.wake.wait()
            job = lane.jobs[0]
            try:
                await self._deliver(session, lane, job)
            except Exception:  # a bug must not end the lane; the job is given up
                log.exception("notify: worker for %s", lane.shown)
                job.outcome.state = "gave up"
                self.counters["gave_up"] += 1
            if lane.jobs and lane.jobs[0] is job:
                lane.jobs.popleft()

    async def _deliver(self, session: aiohttp.ClientSession, lane: _Lane, job: _Job) -> None:
        outcome = job.outcome
        if lane.failing and time.monotonic() > job.deadline:
            # It waited its whole time behind a receiver that is still failing: do not
            # spend a timeout on each of a backlog that is already too late.
            outcome.state = "gave up"
            outcome.error = f"not tried, the receiver is failing: {lane.failing}"
            self.counters["gave_up"] += 1
            return
        retry_min, retry_max = self._retry
        for _ in range(1_000_000):  # ends by give_up_after long before this count
            ok = await self._attempt(session, lane, job)
            if ok:
                outcome.state, lane.failing = "sent", ""
                self.counters["sent"] += 1
                return
            self.counters["failed_attempts"] += 1
            lane.failing = outcome.error
            base = min(retry_max, retry_min * 2.0 ** min(outcome.attempts - 1, 60))
            delay = min(retry_max, base * self._rng.uniform(1.0, 1.5))
            if time.monotonic() + delay > job.deadline:
                break
            outcome.state = "retrying"
            await asyncio.sleep(delay)
        outcome.state = "gave up"
        self.counters["gave_up"] += 1
        log.warning("notify: gave up %s to %s: %s", job.event, lane.shown, outcome.error)

    async def _attempt(self, session: aiohttp.ClientSession, lane: _Lane, job: _Job) -> bool:
        """One POST of ``job`` to ``lane.url``; True on a 2xx answer. Never raises."""
        outcome = job.outcome
        wall = self._wall()
        stamp = str(int(wall))
        headers = {
            "Content-Type": "application/json",
            "X-Covey-Event": job.event,
            "X-Covey-Delivery": job.delivery.hex(),
            "X-Covey-Id": job.ident,
            "X-Covey-Timestamp": stamp,
            "X-Covey-Signature": sign(self._secret, stamp, job.body),
        }
        outcome.attempts, outcome.at = outcome.attempts + 1, wall
        try:
            async with session.post(
                lane.url, data=job.body, headers=headers, allow_redirects=False
            ) as answer:
                outcome.status = answer.status
        except TimeoutError:
            outcome.status, outcome.error = None, f"timeout after {self._timeout:g} s"
            return False
        except Exception as exc:  # refused, reset, DNS, TLS, bad answer: all retried
            outcome.status, outcome.error = None, f"{type(exc).__name__}: {exc}"[:300]
            return False
        if 200 <= outcome.status < 300:
            outcome.error = ""
            return True
        outcome.error = f"HTTP {outcome.status}"
        return False
