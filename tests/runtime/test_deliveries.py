"""Deliveries between real agent processes, on SQLite and on a real redis-server.

Each test runs on both backends (the ``backend`` fixture). Handlers are real commands
that log every run (deliveries_helpers.handler), so "at most once per node" is counted,
not assumed. Receipts and requests that break the rules come from an in-process agent of
the cluster (it has the key, so its frames are authentic) that forges them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from covey.core.deliveries import DeliveryRequest, Receipt, Refused
from covey.core.deliveries.messages import to_ms
from covey.runtime import Agent, AgentConfig
from covey.runtime.config.model import DEFAULT_GROUP
from covey.runtime.localcluster import LocalCluster, free_port, wait_until

from .deliveries_helpers import (
    TIMEOUT,
    Backend,
    alive,
    counters,
    ended,
    handler,
    runs,
    show,
    start,
)


def _cli(sock: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "covey", "deliver", *args, "--control", str(sock)],
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_stages_promote_in_order_and_the_cli_shows_them(
    cluster: LocalCluster, backend: Backend
) -> None:
    n0, *_ = start(cluster, backend, ["n0", "n1", "n2", "n3"])
    w = cluster.workdir
    stages = ["--stage", "2:any", "--stage", "1!:any"]
    made = _cli(n0.control, "create", *stages, "--wait", "--json", "hello")
    assert made.returncode == 0, made.stderr
    d = json.loads(made.stdout)
    assert d["state"] == "complete" and d["stage"] == 1
    first, second = d["stages"]
    assert first["required"] == 2 and len(first["receipts"]) == 2
    assert len(second["receipts"]) == 1
    answered0 = {r["node"] for r in first["receipts"]}
    # 1!: the second stage asked none of those that answered the first.
    assert {r["node"] for r in second["receipts"]}.isdisjoint(answered0)
    assert not set(second["asked"]) & answered0
    assert {r["result"] for r in first["receipts"] + second["receipts"]} <= {
        "ok-n1\n",
        "ok-n2\n",
        "ok-n3\n",
    }
    assert all(s["refused"] == 0 and r["at"] > 0 for s in d["stages"] for r in s["receipts"])
    # Each receiver ran its handler once for the stage it answered, and never for n0.
    total = sum(sum(runs(w, n).values()) for n in ("n0", "n1", "n2", "n3"))
    assert total == 3 and not runs(w, "n0")

    # create without --wait prints the id; show/list/cancel find it.
    args = ["--stage", "3:any", "--deadline", "20s", "--json", "-"]
    slow = _cli(n0.control, "create", *args, stdin=b"\x00bin")
    assert slow.returncode == 0, slow.stderr
    item = json.loads(slow.stdout)["id"]
    assert len(item) == 32
    wait_until(lambda: ended(n0, item), TIMEOUT, what="the second delivery to end")
    listed = _cli(n0.control, "list", "--state", "complete", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {x["id"] for x in json.loads(listed.stdout)} == {d["id"], item}
    shown = _cli(n0.control, "show", item)
    assert shown.returncode == 0 and item in shown.stdout and "complete" in shown.stdout
    again = _cli(n0.control, "cancel", item)
    assert again.returncode == 1 and "already ended" in again.stdout
    info = n0.client().info()["deliveries"]
    assert info["store"]["backend"] == backend.name and info["waiting_for_store"] is None
    assert info["owned"] == {"complete": 2}


def test_silent_members_are_replaced_at_the_deadline_failed_ones_at_once(
    cluster: LocalCluster, backend: Backend
) -> None:
    w = cluster.workdir
    n0, _, n2, n3 = start(cluster, backend, ["n0", "n1", "n2", "n3"])
    # Silent: n3 is paused (SIGSTOP) — its sockets stay open, nothing answers. A stage
    # that needs every other member asks n3 too; at the 1 s deadline it is replaced by
    # n4, which joins only after the delivery was created.
    n3.signal(signal.SIGSTOP)
    try:
        item = n0.client().request("deliver_create", payload="p", stages=["3:any@1s"])["id"]
        first = show(n0, item)
        assert sorted(first["stages"][0]["asked"]) == sorted(
            m["id"] for m in n0.members() if m["name"] != "n0"
        )
        start(cluster, backend, ["n4"], seen_by=n0)
        d = wait_until(lambda: ended(n0, item), TIMEOUT, what="the delivery to complete")
        assert d["state"] == "complete"
        names = {m["id"]: m["name"] for m in n0.members()}
        assert {names[r["node"]] for r in d["stages"][0]["receipts"]} == {"n1", "n2", "n4"}
        assert counters(n0)["owner.replaced_silent"] >= 1
        assert not runs(w, "n3")
    finally:
        n3.signal(signal.SIGCONT)
    # n3 wakes up past the request's deadline: it discards it unhandled, and counts it.
    wait_until(
        lambda: counters(n3).get("receiver.requests_expired", 0) >= 1,
        TIMEOUT,
        what="n3 to discard the expired request",
    )
    assert not runs(w, "n3")

    # Failed while asked: n5's handler hangs, the stage (every other member) waits for
    # it with a 60 s deadline; n5 is killed and replaced as soon as it is declared failed.
    n2.stop()
    slow = {"n5": handler(w, "n5", sleep=120)}
    n5 = start(cluster, backend, ["n5"], handlers=slow, seen_by=n0)[0]
    wait_until(lambda: alive(n0, ["n1", "n3", "n4", "n5"]), TIMEOUT, what="n3 back alive")
    item = n0.client().request("deliver_create", payload="q", stages=["4:any@60s"])["id"]
    wait_until(lambda: _started(n5), TIMEOUT, what="n5's handler to start")
    before = time.monotonic()
    n5.signal(signal.SIGKILL)
    start(cluster, backend, ["n6"], seen_by=n0)
    d = wait_until(lambda: ended(n0, item), TIMEOUT, what="the delivery to complete")
    assert d["state"] == "complete"
    assert time.monotonic() - before < 45, "replaced at the 60 s deadline, not at once"
    assert counters(n0)["owner.replaced_gone"] >= 1


def _started(agent: Any) -> bool:
    return bool(counters(agent).get("receiver.requests_started", 0))


# ---------------------------------------------------------------- forged traffic


def _rogue_config(cluster: LocalCluster) -> AgentConfig:
    port = free_port()
    return AgentConfig(
        name="rogue",
        cluster=cluster.cluster,
        bind=("127.0.0.1", port),
        interfaces=("127.0.0.1",),
        multicast=(DEFAULT_GROUP, cluster.group_port),
        keys=(cluster.key_file.read_bytes().strip(),),
        control=cluster.workdir / "rogue.sock",
        probe_interval=0.5,
        probe_timeout=0.25,
        gossip_interval=0.1,
    )


def _send(rogue: Agent, address: tuple[str, int], msg: Any) -> None:
    (feature,) = [f for f in rogue.features if f.name == "deliveries"]
    caps = feature.caps  # type: ignore[attr-defined]
    rogue._driver.call(lambda now: caps.handle.open_stream(address, [msg], now=now))  # type: ignore[union-attr]


async def test_receipts_and_requests_that_break_the_rules_are_refused_and_counted(
    cluster: LocalCluster, backend: Backend
) -> None:
    w = cluster.workdir
    n0, n1 = await asyncio.to_thread(start, cluster, backend, ["n0", "n1"])
    held = asyncio.Event()
    async with Agent(_rogue_config(cluster)) as rogue:

        async def answer(req: Any) -> Any:
            if req.payload == b"hold":
                await held.wait()
                return b"late"
            return Refused("the rogue refuses")

        rogue.deliveries.on_request(answer)
        await asyncio.to_thread(wait_until, lambda: alive(n0, ["n1", "rogue"]), TIMEOUT)
        c0 = n0.client(timeout=10)
        owner = ("127.0.0.1", n0.port)

        # Beyond K: both others are asked; the rogue refuses and is replaced by n2 (it
        # joins after); a receipt the rogue sends afterwards is beyond K.
        a = c0.request("deliver_create", payload="a", stages=["2:any"])["id"]
        await asyncio.to_thread(start, cluster, backend, ["n2"], seen_by=n0)
        d = await asyncio.to_thread(wait_until, lambda: ended(n0, a), TIMEOUT)
        assert d["state"] == "complete" and rogue.node_id.hex() in d["stages"][0]["asked"]
        _send(rogue, owner, Receipt(bytes.fromhex(a), 0, b"me too"))

        # Wrong stage: a delivery waiting in stage 0 for the rogue (its handler holds).
        b = c0.request("deliver_create", payload="hold", stages=["1:rogue", "1:rogue"])["id"]
        await asyncio.to_thread(wait_until, lambda: show(n0, b)["stages"][0]["asked"], TIMEOUT)
        _send(rogue, owner, Receipt(bytes.fromhex(b), 1, b"stage 1 already?"))
        # Not asked: a delivery the rogue was never asked for.
        c = c0.request("deliver_create", payload="c", stages=["1:n1"])["id"]
        await asyncio.to_thread(wait_until, lambda: ended(n0, c), TIMEOUT)
        _send(rogue, owner, Receipt(bytes.fromhex(c), 0, b"me?"))

        def refused() -> dict[str, int] | None:
            k = counters(n0)
            want = (
                "owner.refused_beyond_K",
                "owner.refused_stage_not_current",
                "owner.refused_not_asked",
            )
            return k if all(k.get(x, 0) >= 1 for x in want) else None

        await asyncio.to_thread(wait_until, refused, TIMEOUT, what="three refusals")
        assert show(n0, a)["stages"][0]["refused"] == 1
        assert len(show(n0, a)["stages"][0]["receipts"]) == 2  # never beyond K
        assert show(n0, b)["stage"] == 0 and show(n0, c)["stages"][0]["refused"] == 1
        held.set()
        done = await asyncio.to_thread(wait_until, lambda: ended(n0, b), TIMEOUT)
        assert done["state"] == "complete"

        # A repeated request is answered from the stored receipt: n1's handler ran once.
        item = bytes(range(16))
        deadline = to_ms(time.time() + 30)
        n1_addr = ("127.0.0.1", n1.port)
        _send(rogue, n1_addr, DeliveryRequest(item, 0, deadline, b"twice"))
        await asyncio.to_thread(wait_until, lambda: runs(w, "n1")[(item.hex(), 0)] == 1, TIMEOUT)
        _send(rogue, n1_addr, DeliveryRequest(item, 0, deadline, b"twice"))
        await asyncio.to_thread(
            wait_until, lambda: counters(n1).get("receiver.requests_repeated", 0) >= 1, TIMEOUT
        )
        # Past its deadline: discarded without running the handler, and counted.
        late = bytes(range(1, 17))
        _send(rogue, n1_addr, DeliveryRequest(late, 0, to_ms(time.time() - 1), b"late"))
        await asyncio.to_thread(
            wait_until, lambda: counters(n1).get("receiver.requests_expired", 0) >= 1, TIMEOUT
        )
        assert runs(w, "n1")[(item.hex(), 0)] == 1 and runs(w, "n1")[(late.hex(), 0)] == 0
