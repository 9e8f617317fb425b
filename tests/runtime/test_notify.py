"""Webhook notifications against real aiohttp receivers on 127.0.0.1.

Each receiver verifies every request with :func:`verify` (the receiver's recipe) and
records it. A receiver that is "down" holds a bound socket that does not listen (the
kernel refuses connections to it); starting it makes that same socket listen, so the
port cannot be taken by anything else in between.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from covey.runtime.config.model import ConfigError
from covey.runtime.features.deliveries.notify import Notifier, sign, verify

SECRET = secrets.token_bytes(32)


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait for ``predicate`` (checked every 10 ms), failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    valid: bool

    @property
    def plain(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class Receiver:
    """A webhook receiver; ``fail_first`` requests get 503; with ``gate`` set up, each
    request waits for it before being recorded and answered."""

    fail_first: int = 0
    gate: asyncio.Event | None = None
    secret: bytes = SECRET
    got: list[Request] = field(default_factory=list)
    arrived: int = 0
    sock: socket.socket = field(default_factory=lambda: socket.socket())
    runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self.sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    @property
    def valid(self) -> list[Request]:
        return [r for r in self.got if r.valid]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        self.sock.close()

    async def _hook(self, request: web.Request) -> web.Response:
        self.arrived += 1
        if self.gate is not None:
            await self.gate.wait()
        body = await request.read()
        ok = verify(
            self.secret,
            request.headers.get("X-Covey-Timestamp", ""),
            body,
            request.headers.get("X-Covey-Signature", ""),
        )
        self.got.append(Request(dict(request.headers), body, ok))
        if not ok:
            return web.Response(status=401)
        if len(self.got) <= self.fail_first:
            return web.Response(status=503)
        return web.Response(status=204)


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**kw: Any) -> Receiver:
        made.append(Receiver(**kw))
        return made[-1]

    yield make
    for r in made:
        if r.gate is not None:
            r.gate.set()
        await r.close()


@pytest.fixture
async def notifiers() -> AsyncIterator[Callable[..., Notifier]]:
    """Running notifiers with a fast back-off (closed at the end)."""
    made: list[Notifier] = []
    tasks: list[asyncio.Task[None]] = []

    def make(urls: list[str], **kw: Any) -> Notifier:
        kw = {"retry_min": 0.02, "retry_max": 0.1, "rng": random.Random(7), **kw}
        n = Notifier(urls, SECRET, **kw)
        made.append(n)
        tasks.append(asyncio.create_task(n.run()))
        return n

    yield make
    for n in made:
        await n.close(timeout=5.0)
    for t in tasks:
        assert t.done()


def state(n: Notifier, delivery: bytes, index: int = 0) -> str:
    found = n.outcomes(delivery)
    return str(found[index]["state"]) if len(found) > index else ""


async def test_every_notification_arrives_signed(receivers: Any, notifiers: Any) -> None:
    a, b = receivers(), receivers()
    await a.start()
    await b.start()
    n = notifiers([a.url, b.url])
    d1, d2 = secrets.token_bytes(16), secrets.token_bytes(16)
    sent: list[tuple[str, bytes, dict[str, Any]]] = [
        ("receipt", d1, {"receiver": "n1"}),
        ("stage", d1, {"stage": 1}),
        ("receipt", d2, {"receiver": "n2"}),
        ("complete", d1, {"acks": 3}),
        ("failed", d2, {"reason": "deadline"}),
    ]
    for kind, delivery, body in sent:
        assert n.submit(kind, delivery, body)
    await until(lambda: len(a.got) == 5 and len(b.got) == 5)
    for r in (a, b):
        assert all(req.valid for req in r.got)
        for req, (kind, delivery, body) in zip(r.got, sent, strict=True):  # in order
            assert req.plain["event"] == kind == req.headers["X-Covey-Event"]
            assert req.plain["delivery"] == delivery.hex() == req.headers["X-Covey-Delivery"]
            assert body.items() <= req.plain.items()
            assert req.headers["Content-Type"] == "application/json"
            compact = json.dumps(req.plain, sort_keys=True, separators=(",", ":"))
            assert req.body == compact.encode()
    # One notification carries one id to every receiver; different ones differ.
    ids = [req.headers["X-Covey-Id"] for req in a.got]
    assert ids == [req.headers["X-Covey-Id"] for req in b.got]
    assert len(set(ids)) == 5
    await until(lambda: n.counters["sent"] == 10)
    shown = n.outcomes(d1)
    assert [(o["event"], o["url"]) for o in shown] == [
        (k, u) for k in ("receipt", "stage", "complete") for u in (a.url, b.url)
    ]
    assert all(o["state"] == "sent" and o["attempts"] == 1 and o["status"] == 204 for o in shown)
    assert all(o["error"] == "" and isinstance(o["at"], float) for o in shown)
    assert n.counters["failed_attempts"] == 0 and n.pending() == 0


async def test_tampered_body_or_timestamp_fails(receivers: Any, notifiers: Any) -> None:
    r = receivers()
    await r.start()
    n = notifiers([r.url])
    assert n.submit("complete", b"\x01" * 16, {"acks": 2})
    await until(lambda: len(r.got) == 1)
    req = r.got[0]
    stamp, sig, body = req.headers["X-Covey-Timestamp"], req.headers["X-Covey-Signature"], req.body
    assert req.valid and sig == sign(SECRET, stamp, body) and sig.startswith("sha256=")
    tampered = body.replace(b'"acks":2', b'"acks":3')
    assert tampered != body
    assert not verify(SECRET, stamp, tampered, sig)
    assert not verify(SECRET, stamp, body + b" ", sig)
    assert not verify(SECRET, str(int(stamp) + 1), body, sig)  # re-stamped
    assert not verify(secrets.token_bytes(32), stamp, body, sig)  # another secret
    # Replayed later: the signature is right but the timestamp is out of the window.
    assert verify(SECRET, stamp, body, sig, now=int(stamp) + 299)
    assert not verify(SECRET, stamp, body, sig, now=int(stamp) + 301)
    assert not verify(SECRET, stamp, body, sig, now=int(stamp) - 301)
    for bad_stamp in ("", " " + stamp, stamp + ".0", "+" + stamp, "1_000", "x"):
        assert not verify(SECRET, bad_stamp, body, sign(SECRET, "0", body), now=0)
    for bad_sig in ("", sig.upper(), sig[:-1], "sha256=é" + sig[8:], sig[7:]):
        assert not verify(SECRET, stamp, body, bad_sig)


async def test_receiver_down_gets_it_after_it_comes_back(receivers: Any, notifiers: Any) -> None:
    r = receivers()  # not started: refuses connections
    n = notifiers([r.url])
    d = secrets.token_bytes(16)
    assert n.submit("receipt", d, {"receiver": "n1"})
    await until(lambda: state(n, d) == "retrying" and n.outcomes(d)[0]["attempts"] >= 2)
    before = n.outcomes(d)[0]
    assert before["status"] is None and "connect" in before["error"].lower()
    assert r.got == []
    await r.start()
    await until(lambda: state(n, d) == "sent")
    after = n.outcomes(d)[0]
    assert after["attempts"] > before["attempts"] >= 2
    assert after["status"] == 204 and after["error"] == ""
    assert len(r.got) == 1 and r.got[0].valid
    assert r.got[0].plain["receiver"] == "n1"
    assert n.counters["failed_attempts"] == after["attempts"] - 1


async def test_an_error_status_is_retried(receivers: Any, notifiers: Any) -> None:
    r = receivers(fail_first=2)
    await r.start()
    n = notifiers([r.url])
    d = secrets.token_bytes(16)
    assert n.submit("stage", d, {"stage": 2})
    await until(lambda: state(n, d) == "sent")
    assert n.outcomes(d)[0]["attempts"] == 3 and n.outcomes(d)[0]["status"] == 204
    assert len(r.got) == 3 and all(req.valid for req in r.got)
    assert len({req.headers["X-Covey-Id"] for req in r.got}) == 1  # the same notification


async def test_a_slow_receiver_delays_nobody_else(receivers: Any, notifiers: Any) -> None:
    slow, fast = receivers(gate=asyncio.Event()), receivers()
    await slow.start()
    await fast.start()
    n = notifiers([slow.url, fast.url], timeout=60.0)
    ds = [secrets.token_bytes(16) for _ in range(3)]
    for d in ds:
        assert n.submit("complete", d, {})
    await until(lambda: len(fast.got) == 3 and slow.arrived == 1)
    assert slow.arrived == 1 and slow.got == []  # its first is held, the rest wait
    assert [state(n, d, 0) for d in ds] == ["queued"] * 3
    assert [state(n, d, 1) for d in ds] == ["sent"] * 3
    assert slow.gate is not None
    slow.gate.set()
    await until(lambda: len(slow.got) == 3)
    assert [req.plain["delivery"] for req in slow.got] == [d.hex() for d in ds]
    await until(lambda: all(state(n, d, 0) == "sent" for d in ds))


async def test_a_timeout_is_retried(receivers: Any, notifiers: Any) -> None:
    r = receivers(gate=asyncio.Event())
    await r.start()
    n = notifiers([r.url], timeout=0.2)
    d = secrets.token_bytes(16)
    assert n.submit("receipt", d, {})
    await until(lambda: state(n, d) == "retrying")
    assert "timeout" in n.outcomes(d)[0]["error"]
    assert r.gate is not None
    r.gate.set()
    await until(lambda: state(n, d) == "sent")
    assert n.outcomes(d)[0]["attempts"] >= 2
    assert r.got and all(req.valid for req in r.got)  # at least once: earlier ones too


async def test_the_queue_is_bounded(receivers: Any, notifiers: Any) -> None:
    r = receivers()  # down
    n = notifiers([r.url], queue_limit=5)
    ds = [secrets.token_bytes(16) for _ in range(6)]
    assert all(n.submit("receipt", d, {"i": i}) for i, d in enumerate(ds[:5]))
    assert not n.submit("receipt", ds[5], {"i": 5})
    assert n.counters["dropped_queue_full"] == 1 and n.pending() == 5
    assert n.outcomes(ds[5]) == [
        {
            "url": r.url,
            "event": "receipt",
            "state": "dropped",
            "attempts": 0,
            "status": None,
            "error": "queue full",
            "at": None,
        }
    ]
    await r.start()
    await until(lambda: len(r.got) == 5)
    assert [req.plain["i"] for req in r.got] == [0, 1, 2, 3, 4]
    await until(lambda: n.pending() == 0)
    assert n.counters["dropped_queue_full"] == 1 and n.counters["sent"] == 5


async def test_it_gives_up(receivers: Any, notifiers: Any) -> None:
    r = receivers()  # down
    n = notifiers([r.url], give_up_after=0.5)
    d = secrets.token_bytes(16)
    assert n.submit("failed", d, {})
    await until(lambda: state(n, d) == "gave up")
    shown = n.outcomes(d)[0]
    assert shown["attempts"] > 1 and "connect" in shown["error"].lower()
    assert n.counters == {
        "sent": 0,
        "failed_attempts": shown["attempts"],
        "dropped_queue_full": 0,
        "gave_up": 1,
        "rejected": 0,
    }


async def test_a_late_backlog_is_not_tried(receivers: Any, notifiers: Any) -> None:
    # The first attempt outlasts everybody's give-up time (a 1 s timeout against 0.3 s):
    # the second, still queued behind it, gives up without costing another timeout.
    r = receivers(gate=asyncio.Event())
    await r.start()
    n = notifiers([r.url], timeout=1.0, give_up_after=0.3)
    d1, d2 = secrets.token_bytes(16), secrets.token_bytes(16)
    assert n.submit("receipt", d1, {}) and n.submit("receipt", d2, {})
    await until(lambda: state(n, d2) == "gave up")
    assert state(n, d1) == "gave up" and n.outcomes(d1)[0]["attempts"] == 1
    assert n.outcomes(d2)[0]["attempts"] == 0
    assert n.outcomes(d2)[0]["error"].startswith("not tried")
    assert r.arrived <= 1 and n.counters["gave_up"] == 2


@pytest.mark.parametrize(
    "urls",
    [
        ["ftp://127.0.0.1/hook"],
        ["http://"],
        ["127.0.0.1:8080/hook"],
        ["http://127.0.0.1:99999/hook"],
        ["http://127.0.0.1:port/hook"],
        ["http://127.0.0.1/a b"],
        [""],
        [],
        "http://127.0.0.1/hook",  # a string, not a list of them
        ["http://127.0.0.1/hook", "http://127.0.0.1/hook"],
    ],
)
def test_a_bad_url_is_a_config_error(urls: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        Notifier(urls, SECRET)
    assert caught.value.field == "notify" and str(caught.value).startswith("notify: ")


@pytest.mark.parametrize(
    "settings",
    [
        {"secret": b""},
        {"kinds": frozenset({"receipt", "bogus"})},
        {"kinds": frozenset()},
        {"queue_limit": 0},
        {"timeout": 0.0},
        {"retry_min": 0.0},
        {"retry_min": 2.0, "retry_max": 1.0},
        {"give_up_after": -1.0},
        {"keep_deliveries": 0},
    ],
)
def test_a_bad_setting_is_a_config_error(settings: dict[str, Any]) -> None:
    secret = settings.pop("secret", SECRET)
    with pytest.raises(ConfigError, match=r"^notify: "):
        Notifier(["http://127.0.0.1:9/hook"], secret, **settings)


def test_kinds_and_bodies_that_are_not_sent() -> None:
    n = Notifier(["http://127.0.0.1:9/hook"], SECRET, kinds=frozenset({"complete"}))
    d = secrets.token_bytes(16)
    assert not n.submit("receipt", d, {})  # not a configured kind: ignored
    assert not n.submit("nonsense", d, {})
    assert n.outcomes(d) == [] and n.pending() == 0
    assert not n.submit("complete", d, {"x": object()})
    assert not n.submit("complete", d, {"x": float("nan")})
    assert not n.submit("complete", "not bytes", {})  # type: ignore[arg-type]
    assert not n.submit("complete", d, None)  # type: ignore[arg-type]
    assert n.counters["rejected"] == 4 and n.counters["dropped_queue_full"] == 0
    assert n.outcomes(d) == []


async def test_the_fixed_fields_win(receivers: Any, notifiers: Any) -> None:
    r = receivers()
    await r.start()
    n = notifiers([r.url], wall=lambda: 1_700_000_000.5)
    d = secrets.token_bytes(16)
    assert n.submit("stage", d, {"event": "x", "delivery": "y", "at": 0, "stage": 3})
    await until(lambda: len(r.got) == 1)
    got = r.got[0]
    assert got.plain == {"event": "stage", "delivery": d.hex(), "at": 1_700_000_000.5, "stage": 3}
    assert got.headers["X-Covey-Timestamp"] == "1700000000"
    assert not got.valid  # the receiver's clock is now, far from 2023: out of the window
    assert verify(SECRET, "1700000000", got.body, got.headers["X-Covey-Signature"], now=1.7e9)


def test_outcomes_are_bounded_and_show_no_credentials() -> None:
    n = Notifier(
        ["http://user:pw@127.0.0.1:9/hook?q=1"], SECRET, keep_deliveries=3, keep_per_delivery=2
    )
    ds = [bytes([i]) * 16 for i in range(5)]
    for d in ds:
        assert n.submit("receipt", d, {})
    assert [len(n.outcomes(d)) for d in ds] == [0, 0, 1, 1, 1]
    for kind in ("stage", "complete"):
        assert n.submit(kind, ds[2], {})
    assert [o["event"] for o in n.outcomes(ds[2])] == ["stage", "complete"]
    assert n.submit("receipt", ds[0], {})  # ds[2] was used last: ds[3] goes
    assert [len(n.outcomes(d)) for d in ds] == [1, 0, 2, 0, 1]
    assert n.outcomes(ds[0])[0]["url"] == "http://127.0.0.1:9/hook?q=1"


async def test_close_drops_what_is_queued(receivers: Any) -> None:
    r = receivers()  # down
    n = Notifier([r.url], SECRET, retry_min=0.02, retry_max=0.05)
    task = asyncio.create_task(n.run())
    d = secrets.token_bytes(16)
    assert n.submit("receipt", d, {}) and n.submit("complete", d, {})
    await until(lambda: state(n, d) == "retrying")
    await n.close(timeout=5.0)
    assert task.done()
    assert [(o["state"], o["error"]) for o in n.outcomes(d)] == [("dropped", "notifier closed")] * 2
    assert not n.submit("receipt", d, {}) and n.pending() == 0
    with pytest.raises(RuntimeError):
        await n.run()
