"""ZRE mode between in-process agents on loopback: the Python API (``agent.zre``), the
foreign-member listing, and the beacons covey emits when fed mutated ones.

Each module gets a free ZRE port, so these agents never meet a real ZRE node; beacons go
to 225.25.25.25 with ``IP_MULTICAST_IF`` 127.0.0.1 (loopback only). The interop with real
pyre nodes is in tests/lab/test_zre.py.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from pathlib import Path

from covey.runtime.agent import Agent
from covey.runtime.localcluster import free_port
from covey.runtime.zre.beacon import LENGTH, MAGIC, Beacon, encode_beacon
from covey.runtime.zre.events import ZreExit, ZreReceived
from covey.runtime.zre.transport import LOOPBACK_GROUP

from .configs import config_factory

ZRE_PORT = free_port()
make_config = config_factory(
    "zre", zre=True, zre_port=ZRE_PORT, zre_groups=("chat",), election=False
)


async def test_two_agents_meet_as_zre_peers_and_talk() -> None:
    got: list[ZreReceived] = []
    async with Agent(make_config("a")) as a, Agent(make_config("b")) as b:
        b.zre.on_message(got.append)
        await a.wait_for(lambda x: len(x.zre.peers()) == 1, 30)
        await b.wait_for(lambda x: len(x.zre.peers()) == 1, 30)
        (peer,) = a.zre.peers()
        assert peer["kind"] == "zre" and peer["name"] == "b" and peer["id"] == b.node_id.hex()
        assert peer["tags"]["X-COVEY-CLUSTER"] == "zre"
        assert peer["tags"]["zre.groups"] == "chat"
        # Listed beside the covey members, never among them.
        await a.wait_for_members(2, timeout=30)
        kinds = sorted(str(m.get("kind", "covey")) for m in a.member_listing())
        assert kinds == ["covey", "covey", "zre"]
        assert len(a.members()) == 2 and a.statistics().members == {"alive": 2}

        messages = b.zre.messages()
        first = asyncio.ensure_future(anext(messages))
        await asyncio.sleep(0)  # the iterator subscribes before the SHOUT goes out
        assert a.zre.shout("chat", "hello", b"\x00raw") == 1
        shout = await asyncio.wait_for(first, 10)
        assert shout.group == "chat" and shout.content == (b"hello", b"\x00raw")
        assert shout.name == "a" and shout.to_json()["event"] == "zre-shout"
        assert b.zre.whisper("a", "psst") == a.node_id.hex()
        await b.wait_for(lambda _: len(got) == 1, 10)
        await a.wait_for(lambda x: x.info()["zre"]["counters"].get("messages_in", 0) >= 2, 10)
        assert b.zre.join("ops") and b.zre.groups() == ["chat", "ops"]
        await a.wait_for(lambda x: "ops" in x.zre.peers()[0]["tags"]["zre.groups"], 10)

        exits: list[ZreExit] = []
        b.hub.listen(lambda e: exits.append(e) if isinstance(e, ZreExit) else None)
        await a.stop()
        await b.wait_for(lambda _: bool(exits), 10)
        assert exits[0].reason == "left" and b.zre.peers() == []


def _mutations(rng: random.Random, count: int) -> list[bytes]:
    """Mutated beacons; none that would be a valid beacon of a live peer (those would open
    connections to closed ports; five such are added on purpose)."""
    base = encode_beacon(Beacon(bytes(16), 0))
    out = []
    while len(out) < count:
        b = bytearray(base)
        op = rng.randrange(4)
        if op == 0:
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(20)] = rng.randrange(256)  # never the port bytes
        elif op == 1:
            del b[rng.randrange(LENGTH) :]
        elif op == 2:
            b += rng.randbytes(rng.randint(1, 30))
        else:
            b = bytearray(MAGIC + rng.randbytes(rng.randint(0, 60)))
        if len(b) == LENGTH and b.startswith(MAGIC) and b[20:] != b"\x00\x00":
            continue
        out.append(bytes(b))
    out += [encode_beacon(Beacon(rng.randbytes(16), free_port())) for _ in range(5)]
    return out


async def test_mutated_beacons_in_only_22_byte_beacons_out() -> None:
    """10,000 mutated beacons into a running agent: every datagram it sends on the ZRE port
    is a 22-byte ZRE beacon (pyre issue 130), the bad ones are dropped and counted."""
    capture = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    capture.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    capture.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    capture.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    capture.bind(("0.0.0.0", ZRE_PORT))
    mreq = socket.inet_aton(LOOPBACK_GROUP) + socket.inet_aton("127.0.0.1")
    capture.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    capture.setblocking(False)
    inject = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    inject.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    emitted: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data, (_, port) = capture.recvfrom(4096)
            except BlockingIOError:
                return
            if port == ZRE_PORT:  # sent from the agent's ZRE socket, not by the injector
                emitted.append(data)

    try:
        async with Agent(make_config("m")) as agent:
            mutations = _mutations(random.Random(130), 10_000)
            for i, data in enumerate(mutations):
                inject.sendto(data, (LOOPBACK_GROUP, ZRE_PORT))
                if i % 200 == 0:
                    drain()
                    await asyncio.sleep(0)  # let the agent read (its socket buffer is finite)
            deadline = time.monotonic() + 10
            while len(emitted) < 3 and time.monotonic() < deadline:
                drain()
                await asyncio.sleep(0.05)
            counters = agent.info()["zre"]["counters"]
            assert agent.ready
        await asyncio.sleep(0.05)
        drain()
    finally:
        capture.close()
        inject.close()
    assert len(emitted) >= 4  # beacons while running, then the port-0 ones
    assert all(len(d) == LENGTH and d.startswith(MAGIC) for d in emitted), emitted
    assert emitted[-1][20:] == b"\x00\x00"
    refused = sum(v for k, v in counters.items() if k.startswith("beacon_"))
    assert refused > 5000 and counters["beacons_in"] >= 1, counters


async def test_control_operations_refuse_clearly() -> None:
    """With ZRE off the operations say so; with it on, bad requests are refused, not raised."""
    from covey.cli.render import event_line
    from covey.runtime.control.codec import ControlError
    from covey.runtime.control.server import handle_request

    async with Agent(make_config("off", zre=False)) as off, Agent(make_config("on")) as on:
        assert handle_request(off, {"op": "zre_peers"}) == []
        assert "zre" not in off.info()
        for agent, request, says in [
            (off, {"op": "zre_shout", "group": "chat", "content": "x"}, "ZRE mode is off"),
            (on, {"op": "zre_shout", "group": "", "content": "x"}, '"group" must be text'),
            (on, {"op": "zre_shout", "group": "chat", "content": [1]}, '"content" must be'),
            (on, {"op": "zre_whisper", "peer": "nobody", "content": "x"}, "no ZRE peer"),
            (on, {"op": "zre_whisper", "content": "x"}, '"peer" must be'),
        ]:
            try:
                handle_request(agent, request)
            except ControlError as exc:
                assert says in str(exc), (request, exc)
            else:
                raise AssertionError(f"{request} was not refused")
        assert handle_request(on, {"op": "zre_join", "group": "ops"}) == {"joined": True}
        assert handle_request(on, {"op": "zre_shout", "group": "ops", "content": "x"}) == {
            "group": "ops",
            "peers": 0,
        }
    # A SHOUT's text is shown as text by covey monitor, never read as markup.
    line = event_line({"event": "zre-shout", "time": 0, "content": ["[bold]hi[/]"]})
    assert "\\[bold]" in line


def test_zre_settings_are_checked_naming_the_field() -> None:
    import pytest

    from covey.runtime.config.model import ConfigError

    for settings, says in [
        ({"zre_port": 0}, "zre_port: must be 1..65535"),
        ({"zre_groups": ("",)}, "zre_group: '' must be text of 1 to 255 bytes"),
        ({"zre_groups": ("g" * 256,)}, "zre_group: "),
        ({"discovery": False}, "zre: beacons on the discovery interfaces"),
        ({"bind": ("::1", free_port())}, "zre: ZRE beacons are IPv4"),
    ]:
        with pytest.raises(ConfigError) as err:
            make_config("x", **settings)
        assert str(err.value).startswith(says), (settings, err.value)
    with pytest.raises(ConfigError, match="name: a ZRE name holds at most 255 bytes"):
        make_config("é" * 200, control=Path("/tmp/unused.sock"))  # 200 characters, 400 bytes
    port = free_port()
    with pytest.raises(ConfigError, match=r"zre_port: port \d+ is already covey's own"):
        make_config("x", bind=("127.0.0.1", port), zre_port=port)
