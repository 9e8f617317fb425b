"""Interface health with real agents on loopback: a bad key, a dead interface.

"A user who sees nothing arrive can tell a dead interface from a bad key": ``GET
/v1/interfaces``, ``covey info`` and the health verdict say which.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from covey.runtime import Agent, AgentConfig
from covey.runtime.control.client import http_get
from covey.runtime.features.health import ALONE_AFTER
from covey.runtime.localcluster import free_port

TIMEOUT = 30.0


@pytest.fixture
def make_config() -> Callable[..., AgentConfig]:
    key = Fernet.generate_key()

    def make(name: str, group_port: int, **kw: object) -> AgentConfig:
        base: dict[str, object] = {
            "name": name,
            "cluster": "ifaces",
            "bind": ("127.0.0.1", free_port()),
            "interfaces": ("127.0.0.1",),
            "multicast": ("239.192.77.1", group_port),
            "keys": (key,),
            "control": Path(f"/tmp/covey-test-{name}-{group_port}.sock"),
        }
        base.update(kw)
        return AgentConfig(**base)  # type: ignore[arg-type]

    return make


async def interfaces(http: tuple[str, int]) -> dict[str, Any]:
    shown = await asyncio.to_thread(http_get, f"{http[0]}:{http[1]}", "/v1/interfaces")
    assert isinstance(shown, dict)
    return shown


def covey(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    return subprocess.run(
        [sys.executable, "-m", "covey", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "COLUMNS": "400"},
    )


async def test_a_wrong_key_shows_as_bad_key_drops_from_its_sender(
    make_config: Callable[..., AgentConfig],
) -> None:
    group = free_port()
    http = ("127.0.0.1", free_port())
    good = make_config("good", group, http=http)
    wrong = make_config("wrong", group, keys=(Fernet.generate_key(),))
    async with Agent(good) as g, Agent(wrong) as w:
        # Where the wrong-keyed node's beacons come from: its beacon socket on lo.
        host, port = next(
            t.get_extra_info("sockname")
            for t, (_, label, _) in zip(w._udp.transports, w._udp.protocols, strict=True)
            if label == "beacon-send"
        )

        def dropped_bad_key(agent: Agent) -> bool:
            return agent.net.interfaces[0].drops.counts.get("bad_key", 0) > 0

        await g.wait_for(dropped_bad_key, timeout=TIMEOUT)
        shown = await interfaces(http)
        [lo] = shown["interfaces"]
        assert (lo["name"], lo["address"], lo["mode"]) == ("lo", "127.0.0.1", "multicast")
        assert list(lo["drops"])[:2] == ["bad_key", "foreign_cluster"]
        assert lo["drops"]["bad_key"] > 0
        assert lo["beacons_in"] == 0 and lo["last_in"] is None  # nothing it could open
        assert lo["beacons_out"] > 0 and lo["last_out"] is not None
        source = f"{host}:{port}"
        [peer] = [p for p in lo["peers"] if p["address"] == source]
        assert peer["name"] is None and peer["dropped"] == peer["count"] > 0
        assert lo["status"] == shown["status"] == "bad_key"

        # covey info (the real CLI on the agent's control socket) shows the same.
        ctl = ["--control", str(good.control_path)]
        info = json.loads((await asyncio.to_thread(covey, "info", *ctl, "--json")).stdout)
        assert info["interfaces"]["interfaces"][0]["drops"]["bad_key"] > 0
        table = (await asyncio.to_thread(covey, "info", *ctl)).stdout
        [row] = [line for line in table.splitlines() if "lo 127.0.0.1" in line]
        assert row.split()[2:4] == ["bad_key:", "beacons"], row
        assert f"from ? {source} (" in row and "drops bad_key " in row

        # The wrong-keyed node hears the good one's beacons and cannot open them either:
        # its health says so.
        def degraded(agent: Agent) -> bool:
            return agent.health.verdict()["status"] == "degraded"

        await w.wait_for(degraded, timeout=TIMEOUT)
        reasons = w.health.verdict()["reasons"]
        assert isinstance(reasons, list)
        assert any(r.startswith("bad_key") for r in reasons)
        assert w.interfaces()["status"] == "bad_key"


async def test_an_interface_that_hears_nothing_says_so(
    make_config: Callable[..., AgentConfig],
) -> None:
    http = ("127.0.0.1", free_port())
    nowhere = ("127.0.0.1", free_port())  # a seed nobody listens on: peers are expected
    expects = make_config("expects", free_port(), http=http, join=(nowhere,))
    alone = make_config("alone", free_port())  # started alone on purpose
    async with Agent(alone) as quiet, Agent(expects) as lonely:
        # Its own beacons leave and loop back (counted from_self): the socket works...
        await lonely.wait_for(
            lambda a: a.net.interfaces[0].drops.counts.get("from_self", 0) > 0, timeout=TIMEOUT
        )
        shown = await interfaces(http)
        [lo] = shown["interfaces"]
        assert lo["beacons_out"] > 0
        # ...but nothing from anyone else arrives.
        assert lo["beacons_in"] == 0 and lo["last_in"] is None and lo["peers"] == []
        assert lo["drops"]["bad_key"] == 0 and lo["drops"]["foreign_cluster"] == 0
        assert lo["status"] == "silent"

        want = "no beacon heard on interface lo (127.0.0.1)"

        def says_silent(agent: Agent) -> bool:
            reasons = agent.health.verdict()["reasons"]
            return isinstance(reasons, list) and want in reasons

        await lonely.wait_for(says_silent, timeout=TIMEOUT + ALONE_AFTER)
        # Started earlier and as alone, the node meant to be alone stays ok.
        assert quiet.net.interfaces[0].beacons_in == 0
        assert quiet.health.verdict() == {"status": "ok", "reasons": []}
