"""Effects are written off the event loop's thread (an InlineWriter's on it, when nothing
is held), and what a step sends waits for them.

Real UDP sockets on 127.0.0.1 and a real core; the effect writer blocks on a gate the test
opens, so "the datagram left before the write finished" would show as an order inversion
(receiver's clock before the writer's) and "the loop waited for the disk" as a test that
cannot even reach its next line while the gate is shut.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.fernet import Fernet

from covey.core import Address, CoreConfig, Keyring, MemberEvent, Node
from covey.core.effects import Effect
from covey.core.plugin import Capability
from covey.core.wire.messages import Ping
from covey.runtime.driver import CoreDriver
from covey.runtime.steps import InlineWriter

BOUND = 10.0
KEY = Fernet.generate_key()


@dataclass(frozen=True)
class Mark(Effect):
    """A test effect: "remember n"."""

    n: int


class Receiver(asyncio.DatagramProtocol):
    """Records (arrival time, size) of every datagram."""

    def __init__(self) -> None:
        self.got: list[tuple[float, int]] = []
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append((time.monotonic(), len(data)))
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(BOUND):
            while len(self.got) < count:
                self.arrived.clear()
                await self.arrived.wait()


@dataclass
class SlowWriter:
    """Blocks on ``gate`` (a worker thread may wait; the loop must not), then records."""

    gate: threading.Event = field(default_factory=threading.Event)
    written: list[tuple[int, float]] = field(default_factory=list)
    fail: bool = False

    def write(self, effect: Effect) -> None:
        assert isinstance(effect, Mark)
        assert self.gate.wait(BOUND), "the test never opened the gate"
        self.written.append((effect.n, time.monotonic()))
        if self.fail:
            raise OSError("disk full")


class PersistOnJoin(Capability):
    """Persists a Mark for every membership change (as the election persists a vote)."""

    name = "persist-on-join"

    def on_member_event(self, event: MemberEvent, now: float) -> None:
        if event.member.node_id != self.handle.node_id:
            self.handle.persist(Mark(len(event.member.name)))


@dataclass
class Rig:
    driver: CoreDriver
    node: Node
    receiver: Receiver
    to: Address
    writer: SlowWriter
    tasks: set[asyncio.Task[None]]


def _node(name: str, address: Address, *extras: Capability) -> Node:
    cfg = CoreConfig(node_id=uuid.uuid4().bytes, name=name, cluster="fx", address=address)
    node = Node(cfg, Keyring([KEY]), rng=random.Random(7), now=time.monotonic())
    for ext in extras:
        node.add_capability(ext)
    return node


async def _udp(protocol: asyncio.DatagramProtocol) -> tuple[asyncio.DatagramTransport, Address]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: protocol, local_addr=("127.0.0.1", 0)
    )
    host, port = transport.get_extra_info("sockname")[:2]
    return transport, (host, port)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    receiver = Receiver()
    recv_transport, to = await _udp(receiver)
    own, addr = await _udp(asyncio.DatagramProtocol())
    node = _node("w", addr, PersistOnJoin())
    writer = SlowWriter()
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        tasks.add(asyncio.ensure_future(coro))

    driver = CoreDriver(
        node,
        own,
        [],
        spawn=spawn,
        publish=lambda event: None,
        stream_timeout=2.0,
        clock_leap=60.0,
        effect_writers={Mark: writer.write},
    )
    driver.start(())
    assert driver.held == 0
    try:
        yield Rig(driver, node, receiver, to, writer, tasks)
    finally:
        writer.gate.set()
        driver.close()
        for task in tasks:
            task.cancel()
        own.close()
        recv_transport.close()


def _ping(rig: Rig, count: int, mark: int | None = None) -> None:
    def step(now: float) -> None:
        if mark is not None:
            rig.node.persist(Mark(mark))
        rig.node.send(rig.to, [Ping(i, b"\x01" * 16) for i in range(count)], now=now)

    rig.driver.call(step)


async def test_a_datagram_after_a_write_leaves_only_once_it_is_written(rig: Rig) -> None:
    _ping(rig, 1, mark=1)
    # We are back on the loop while the writer thread still waits at its gate.
    assert rig.writer.written == [] and rig.driver.held == 1
    _ping(rig, 3)  # no effect of its own, but it must not overtake the held step
    assert rig.driver.held == 2
    rig.writer.gate.set()
    await rig.receiver.wait_for(2)
    ((n, written_at),) = rig.writer.written
    (first_at, first_size), (second_at, second_size) = rig.receiver.got
    assert n == 1
    assert written_at <= first_at <= second_at
    assert first_size < second_size  # one Ping, then the three: order kept
    assert rig.driver.held == 0
    assert rig.driver.counters["effect_error"] == 0


async def test_a_step_without_effects_goes_out_at_once(rig: Rig) -> None:
    _ping(rig, 1)
    assert rig.driver.held == 0  # nothing held: sent inside the call
    await rig.receiver.wait_for(1)
    assert rig.writer.written == []


async def test_a_failing_writer_is_counted_and_its_step_still_leaves(rig: Rig) -> None:
    rig.writer.fail = True
    rig.writer.gate.set()
    _ping(rig, 1, mark=5)
    await rig.receiver.wait_for(1)
    assert [n for n, _ in rig.writer.written] == [5]
    assert rig.driver.counters["effect_error"] == 1
    assert rig.driver.held == 0
    assert await rig.driver.drain(BOUND)


async def test_an_inbound_stream_reply_waits_for_the_steps_effects(rig: Rig) -> None:
    # A second core joins ours: the join stream makes a member event, hence a Mark.
    peer = _node("peer", ("127.0.0.1", 1))
    peer.wall_offset = time.time() - time.monotonic()  # Fernet timestamps on the wall clock
    peer.start(now=time.monotonic())
    peer.join([rig.node.config.address], now=time.monotonic())
    (request,) = peer.streams_to_open(now=time.monotonic())
    answer = asyncio.ensure_future(rig.driver.handle_stream(request.data, ("127.0.0.1", 1)))
    for _ in range(5):
        await asyncio.sleep(0)  # let the loop run; the reply must still wait
    assert not answer.done() and rig.writer.written == []
    rig.writer.gate.set()
    async with asyncio.timeout(BOUND):
        reply = await answer
    assert reply is not None and rig.writer.written
    assert rig.node.member(peer.node_id) is not None


@dataclass(frozen=True)
class Quick(Effect):
    """A test effect for an inline writer."""

    n: int


async def test_an_inline_writer_runs_on_the_loop_and_holds_nothing(rig: Rig) -> None:
    threads: list[int] = []
    rig.driver._effect_writers[Quick] = InlineWriter(
        lambda e: threads.append(threading.get_ident())
    )

    def step(now: float) -> None:
        rig.node.persist(Quick(1))
        rig.node.send(rig.to, [Ping(0, b"\x01" * 16)], now=now)

    rig.driver.call(step)
    # Written inside the call, on this thread, and the step went out with it.
    assert threads == [threading.get_ident()] and rig.driver.held == 0
    await rig.receiver.wait_for(1)


async def test_an_inline_write_behind_a_held_step_waits_its_turn(rig: Rig) -> None:
    order: list[tuple[str, int]] = []
    rig.driver._effect_writers[Quick] = InlineWriter(
        lambda e: order.append(("quick", threading.get_ident()))
    )
    _ping(rig, 1, mark=1)  # held: the slow writer waits at its gate
    rig.driver.call(lambda now: rig.node.persist(Quick(2)))
    assert order == [] and rig.driver.held == 2  # queued behind, not written here
    rig.writer.gate.set()
    assert await rig.driver.drain(BOUND)
    ((_, thread),) = order
    assert thread != threading.get_ident()  # on the writer thread, after the slow one
    assert [n for n, _ in rig.writer.written] == [1]
