"""Bad input to a real collector process: counted, answered, never fatal; and the server's
bounds (connections, idle time, failing requests) on a real socket in this process."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from covey.core.crypto.fernet import MultiKey, generate_key
from covey.runtime.collector.client import split_records
from covey.runtime.collector.server import LINE_LIMIT, Collector
from covey.runtime.collector.store import TraceStore
from covey.runtime.control.server import LINE_LIMIT as CONTROL_LINE_LIMIT
from covey.runtime.control.server import SealedCodec

from .collector_helpers import CollectorProcess, make_key, node_id, record


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    proc = CollectorProcess.start(tmp_path / "data", make_key(tmp_path / "key"))
    try:
        yield proc
    finally:
        proc.kill()


def connect(c: CollectorProcess) -> socket.socket:
    host, _, port = c.address.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=10)


def plain_answer(sock: socket.socket) -> object:
    """The one plain line the collector answers before it closes the connection."""
    with sock.makefile("rb") as fh:
        line = fh.readline()
        rest = fh.read()
    assert rest == b""  # then closed
    return json.loads(line)


def test_bad_lines_are_counted_answered_and_the_collector_keeps_serving(
    collector: CollectorProcess,
) -> None:
    keys = [collector.key_file.read_bytes().strip()]
    codec = SealedCodec(keys)
    with connect(collector) as sock:  # not a token
        sock.sendall(b"hello, collector\n")
        assert plain_answer(sock) == {"ok": False, "error": "unauthenticated"}

    good = codec.encode({"op": "stats"})
    bad_batch = {"op": "traces", "node_id": node_id("a"), "node": "a", "cluster": "test",
                 "boot": 1000.0, "sent": time.time()}  # fmt: skip
    wrong = [
        (MultiKey(keys).encrypt_at_time(b"not json", int(time.time())) + b"\n", "not JSON"),
        (codec.encode([1, 2]), 'an object with an "op"'),
        (codec.encode({"op": "nope"}), "unknown op 'nope' (traces, members, stable"),
        (codec.encode({**bad_batch, "records": [{**record("a", 1, 5.0, "join"), "seq": "x"}]}),
         "records[0].seq must be an integer ≥ 1"),
        (codec.encode({**bad_batch, "records": [record("b", 1, 5.0, "join")]}),
         "records[0].node_id is not the sender's"),
        (codec.encode({**bad_batch, "records": [record("a", 1, 5.0, "join", detail="é" * 101)]}),
         "records[0].detail must be text of at most 200 octets"),
        (codec.encode({"op": "stable", "for": -1}), "for must be between 0"),
        (codec.encode({"op": "timeline", "limit": 0}), "limit must be an integer"),
    ]  # fmt: skip
    with connect(collector) as sock, sock.makefile("rb") as fh:
        for line, error in wrong:  # each answered, sealed; the connection stays open
            sock.sendall(line)
            answer = codec.decode(fh.readline())
            assert answer["ok"] is False and error in answer["error"], (error, answer)
        sock.sendall(good)
        assert codec.decode(fh.readline())["ok"] is True
    with connect(collector) as sock:  # the same token again
        sock.sendall(good)
        assert plain_answer(sock) == {"ok": False, "error": "replayed request"}
    with connect(collector) as sock:  # 2 MiB in one line
        sock.sendall(b"x" * (2 * LINE_LIMIT) + b"\n")
        answer = plain_answer(sock)
        assert answer == {"ok": False, "error": f"line longer than {LINE_LIMIT} octets"}

    stats = collector.client().request("stats")
    assert stats["malformed"] == len(wrong) + 1  # the long line too
    assert stats["unauthenticated"] == 1 and stats["replayed"] == 1
    assert stats["stored"] == 0 and stats["received"] == 0 and stats["errors"] == 0
    assert collector.client().request("members") == []


async def _open(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, port = address.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def test_connections_beyond_the_bound_are_refused_and_idle_ones_closed(
    tmp_path: Path,
) -> None:
    keys = [generate_key()]
    server = Collector(TraceStore(tmp_path), keys, data_dir=tmp_path, max_connections=2,
                       idle_timeout=0.5)  # fmt: skip
    address = await server.start("127.0.0.1", 0)
    serving = asyncio.create_task(server.serve())
    try:
        first, second = await _open(address), await _open(address)
        # Wait until the server has accepted both (bounded), then a third is refused.
        async with asyncio.timeout(10):
            while server.store.counters["connections"] < 2:
                await asyncio.sleep(0.01)
        reader, writer = await _open(address)
        async with asyncio.timeout(10):
            line = await reader.readline()
            assert json.loads(line) == {"ok": False, "error": "too many connections"}
            assert await reader.read() == b""
        writer.close()
        # Silent for longer than idle_timeout: both closed by the server.
        async with asyncio.timeout(10):
            assert await first[0].read() == b"" and await second[0].read() == b""
        assert server.store.counters["idle_closed"] == 2
        assert server.store.counters["refused_connections"] == 1
        for _, w in (first, second):
            w.close()
    finally:
        server.request_stop()
        await asyncio.wait_for(serving, 10)


async def test_a_request_that_fails_inside_is_answered_counted_and_not_fatal(
    tmp_path: Path,
) -> None:
    keys = [generate_key()]
    broken = {"now": False}

    def clock() -> float:  # a fault injected where the server reads the time
        if broken["now"]:
            raise RuntimeError("clock failed")
        return time.time()

    server = Collector(TraceStore(tmp_path), keys, data_dir=tmp_path, clock=clock)
    address = await server.start("127.0.0.1", 0)
    serving = asyncio.create_task(server.serve())
    codec = SealedCodec(keys)
    try:
        reader, writer = await _open(address)
        async with asyncio.timeout(10):
            broken["now"] = True
            writer.write(codec.encode({"op": "stable"}))
            answer = codec.decode(await reader.readline())
            assert answer == {"ok": False, "error": "internal error (see the collector's log)"}
            broken["now"] = False
            writer.write(codec.encode({"op": "stop"}))
            assert codec.decode(await reader.readline()) == {
                "ok": True,
                "result": {"stopping": True},
            }
            assert await reader.read() == b""  # closed by the stop
        writer.close()
        await asyncio.wait_for(serving, 10)
        assert server.store.counters["errors"] == 1
        reopened = TraceStore(tmp_path)  # the counters were flushed at the stop
        assert reopened.counters["errors"] == 1 and reopened.counters["requests"] == 2
        reopened.close()
    finally:
        server.request_stop()
        await asyncio.wait_for(serving, 10)


def test_a_full_batch_fits_the_collectors_line_limit(collector: CollectorProcess) -> None:
    """A batch as the client cuts it (up to BATCH_OCTETS of records' JSON) is one sealed line
    far above the control endpoints' 256 KiB limit; the collector must still take it."""
    detail = "d" * 200  # the longest detail a record may carry
    records = [record("a", seq, 5.0 + seq, "probe", detail=detail) for seq in range(1, 1001)]
    batches = list(split_records(records))
    assert len(batches) == 1  # 1000 records of about 450 octets: under BATCH_OCTETS
    line = SealedCodec([collector.key_file.read_bytes().strip()]).encode({"op": "stats"})
    assert len(json.dumps(batches[0])) * 4 // 3 > CONTROL_LINE_LIMIT > len(line)
    assert collector.send("a", batches[0])["stored"] == 1000
