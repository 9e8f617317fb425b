"""Deliveries at their edges: webhooks to a real receiver, the HTTP API, and bad input.

The webhook receiver is a real aiohttp server on 127.0.0.1 that checks every request's
signature with the receiver's recipe (notify.verify); it starts only after the
delivery ended, so every notification reaches it through the retries.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from covey.runtime.features.deliveries.notify import verify
from covey.runtime.localcluster import LocalCluster, free_port, wait_until

from .deliveries_helpers import TIMEOUT, Backend, ended, show, start
from .test_notify import SECRET, Receiver


async def test_every_notification_arrives_signed_even_after_the_receiver_was_down(
    cluster: LocalCluster,
) -> None:
    secret = secrets.token_hex(16)
    hook = Receiver(secret=secret.encode())
    notify = ["--notify", hook.url, "--notify-secret", secret]
    sqlite = Backend("sqlite")
    n0, *_ = await asyncio.to_thread(
        start, cluster, sqlite, ["n0", "n1", "n2", "n3"], extra={"n0": notify}
    )
    try:
        c0 = n0.client(timeout=10)
        item = c0.request("deliver_create", payload="x", stages=["2:any", "1!:any"])["id"]
        await asyncio.to_thread(wait_until, lambda: ended(n0, item), TIMEOUT)
        # The receiver is down: the outcomes say the notifications are being retried.
        retrying = await asyncio.to_thread(
            wait_until,
            lambda: [n for n in show(n0, item)["notifications"] if n["state"] == "retrying"],
            TIMEOUT,
        )
        assert retrying[0]["attempts"] >= 1 and retrying[0]["error"]
        await hook.start()

        def arrived() -> list[Any] | None:
            kinds = sorted(r.plain["event"] for r in hook.got)
            return hook.got if len(kinds) >= 6 else None

        await asyncio.to_thread(wait_until, arrived, TIMEOUT, what="six notifications")
        got = hook.got
        assert all(r.valid for r in got)
        kinds = sorted(r.plain["event"] for r in got)
        assert kinds == ["complete", "receipt", "receipt", "receipt", "stage", "stage"]
        assert {r.plain["delivery"] for r in got} == {item}
        done = next(r for r in got if r.plain["event"] == "complete")
        assert done.plain["record"]["state"] == "complete"
        # A tampered body no longer verifies; the untouched one does.
        ts, sig = done.headers["X-Covey-Timestamp"], done.headers["X-Covey-Signature"]
        assert verify(secret.encode(), ts, done.body, sig)
        assert not verify(secret.encode(), ts, done.body.replace(b"complete", b"failed"), sig)
        assert not verify(SECRET, ts, done.body, sig)  # another secret
        outcomes = await asyncio.to_thread(
            wait_until,
            lambda: (
                (o := show(n0, item)["notifications"])
                and all(n["state"] == "sent" for n in o)
                and o
            ),
            TIMEOUT,
        )
        assert len(outcomes) == 6 and max(n["attempts"] for n in outcomes) >= 2
    finally:
        await hook.close()


def _http(
    url: str, method: str = "GET", body: object = None, token: str | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_http_api_creates_lists_shows_and_cancels(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    port = free_port()
    token = secrets.token_urlsafe(24)
    (tmp_path / "token").write_text(token + "\n")
    http = ["--http", f"127.0.0.1:{port}", "--http-token-file", str(tmp_path / "token")]
    start(cluster, Backend("sqlite"), ["n0", "n1", "n2"], extra={"n0": http})
    base = f"http://127.0.0.1:{port}/v1/deliveries"
    # Creating and cancelling need the token; without it nothing is created.
    assert _http(base, "POST", {"payload": "p"})[0] == 401
    assert _http(base, "POST", {"payload": "p"}, token="x" * 32)[0] == 401
    assert _http(base)[1] == []
    post = functools.partial(_http, token=token)
    status, made = post(base, "POST", {"payload": "p", "stages": ["2:any"], "wait": 30})
    assert status == 201 and made["state"] == "complete"
    status, one = _http(f"{base}/{made['id']}")
    assert status == 200 and one["id"] == made["id"] and len(one["stages"][0]["receipts"]) == 2
    # A stage nobody can answer waits, and can be cancelled.
    status, waiting = post(base, "POST", {"payload": "p", "stages": ["1:nobody"]})
    assert status == 201
    status, listed = _http(f"{base}?state=stage")
    assert status == 200 and [d["id"] for d in listed] == [waiting["id"]]
    assert "waiting: 0 of 1 matching members alive" in listed[0]["reason"]
    assert _http(f"{base}/{waiting['id']}", "DELETE")[0] == 401
    assert post(f"{base}/{waiting['id']}", "DELETE") == (200, {"cancelled": True})
    assert _http(f"{base}/{waiting['id']}")[1]["state"] == "cancelled"
    # Refusals name the field.
    assert post(base, "POST", {"stages": ["x:any"]})[0] == 400
    status, bad = post(base, "POST", {"stages": ["9:any"]})
    assert status == 400 and bad["error"].startswith("stage:")
    assert _http(f"{base}/00")[0] == 400
    assert _http(f"{base}/{'0' * 32}")[0] == 404
    assert _http(f"{base}?state=odd")[0] == 400


def _deliver(sock: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "covey", "deliver", "create", *args, "--control", str(sock)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_bad_input_is_refused_with_exit_2_and_loses_nothing(cluster: LocalCluster) -> None:
    n0, _ = start(cluster, Backend("sqlite"), ["n0", "n1"])
    cases = {
        "stage": ["--stage", "2:colour~blue", "p"],  # an unknown selector
        "needs 5 receipts": ["--stage", "5:any", "p"],  # K larger than the cluster
        "over the limit": ["-"],  # a payload over 64 KiB
        "deadline": ["--deadline", "soon", "p"],
    }
    for why, args in cases.items():
        r = _deliver(n0.control, *args, stdin="x" * (64 * 1024 + 1) if args == ["-"] else None)
        assert r.returncode == 2, (why, r.stdout, r.stderr)
        assert why in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    # Nothing was created by the refused requests; the agent still works.
    assert n0.client().request("deliver_list") == []
    ok = _deliver(n0.control, "--stage", "1:any", "--wait", "fine")
    assert ok.returncode == 0, ok.stderr


def test_an_agent_refuses_bad_delivery_settings_at_start(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"")
    base = [sys.executable, "-m", "covey", "agent", "--name", "bad", "--bind", "127.0.0.1:7"]
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    cases = {
        "scheduler": ["--plaintext", "--scheduler", "http://x"],
        "cannot reach redis": ["--plaintext", "--scheduler", unreachable],
        "notify-secret": ["--plaintext", "--notify", "http://127.0.0.1:9/h"],
        "notify": ["--plaintext", "--notify", "ftp://x", "--notify-secret", "s"],
        "delivery-deadline": ["--plaintext", "--delivery-deadline", "0"],
    }
    for why, args in cases.items():
        argv = [*base, "--control", str(tmp_path / "bad.sock"), "--data-dir", str(tmp_path), *args]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 2, (why, r.stderr)
        assert why in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
