"""``GET /metrics`` with real agents: it parses, and its figures are ``covey info``'s."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from covey.runtime import Agent, AgentConfig
from covey.runtime.http.metrics import CONTENT_TYPE, AgentCollector, LoopLag, Metrics
from covey.runtime.localcluster import free_port

from .configs import config_factory

TIMEOUT = 30.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., AgentConfig]:
    return config_factory(
        "metrics",
        "239.192.77.1",
        control=lambda name, port: Path(f"/tmp/covey-test-{name}-{port}.sock"),
    )


@pytest.fixture
async def pair(
    make_config: Callable[..., AgentConfig],
) -> AsyncIterator[tuple[Agent, Agent, str]]:
    """Two agents with an election; ``a`` serves HTTP (its base URL is the third item)."""
    http = ("127.0.0.1", free_port())
    async with (
        Agent(make_config("a", http=http, expected_votes=2)) as a,
        Agent(make_config("b", expected_votes=2)) as b,
    ):
        await a.wait_for_members(2, timeout=TIMEOUT)
        await a.wait_for(lambda ag: ag.names()["leader"] is not None, timeout=TIMEOUT)
        yield a, b, f"http://127.0.0.1:{http[1]}"


def get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read()


def samples(text: str) -> Samples:
    """Every sample of an exposition text, by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def expected(info: dict[str, Any]) -> Samples:
    """What /metrics must say, from a ``covey info`` answer."""
    stats = info["stats"]
    out: Samples = {}
    for state in ("alive", "suspect", "failed", "left"):
        out["covey_members", (("state", state),)] = stats["members"].get(state, 0)
    for name in (
        "probes_sent",
        "probes_failed",
        "suspicions",
        "refutations",
        "datagrams_sent",
        "datagrams_received",
        "bytes_sent",
        "bytes_received",
        "streams_opened",
        "streams_served",
    ):
        out[f"covey_{name}_total", ()] = stats[name]
    for reason, n in info["drops"].items():
        out["covey_drops_total", (("reason", reason),)] = n
    for counter, n in info["runtime"].items():
        out["covey_runtime_events_total", (("counter", counter),)] = n
    out["covey_health_score", ()] = stats["health"]
    out["covey_incarnation", ()] = stats["incarnation"]
    election = info["election"]
    out["covey_leader_term", ()] = election["term"]
    for name in ("elections", "fencings", "panics"):
        out[f"covey_{name}_total", ()] = election[name]
    out["covey_leader", ()] = election["role"] == "leader"
    out["covey_panic_mode", ()] = election["mode"] == "panic"
    traces = info["traces"]
    out["covey_trace_buffer_records", ()] = traces["held"]
    out["covey_trace_buffer_capacity", ()] = traces["buffer"]
    out["covey_traces_lost_total", ()] = traces["lost"]
    for iface in info["interfaces"]["interfaces"]:
        where = (("address", iface["address"]), ("interface", iface["name"]))
        out["covey_interface_beacons_sent_total", where] = iface["beacons_out"]
        out["covey_interface_beacons_received_total", where] = iface["beacons_in"]
        for reason, n in iface["drops"].items():
            if n:  # the JSON lists bad_key and foreign_cluster even at 0
                labelled = tuple(sorted((*where, ("reason", reason))))
                out["covey_interface_drops_total", labelled] = n
    unicast = info["interfaces"]["unicast"]
    out["covey_unicast_datagrams_received_total", ()] = unicast["datagrams_in"]
    out["covey_unicast_datagrams_sent_total", ()] = unicast["datagrams_out"]
    for reason, n in unicast["drops"].items():
        if n:
            out["covey_unicast_drops_total", (("reason", reason),)] = n
    return out


def families_of(found: Samples, *names: str) -> Samples:
    return {k: v for k, v in found.items() if k[0] in names}


LABELLED = (
    "covey_drops_total",
    "covey_runtime_events_total",
    "covey_interface_drops_total",
    "covey_unicast_drops_total",
)


async def test_metrics_are_what_covey_info_says(pair: tuple[Agent, Agent, str]) -> None:
    a, _, base = pair
    # Read back to back, with nothing run in between: every figure is equal.
    info = a.info()
    found = samples(Metrics(a).text().decode())
    want = expected(json.loads(json.dumps(info)))
    assert {k: found.get(k) for k in want} == want
    # ...and no labelled sample that covey info does not have either.
    assert families_of(found, *LABELLED) == families_of(want, *LABELLED)
    assert want["covey_members", (("state", "alive"),)] == 2
    assert want["covey_probes_sent_total", ()] > 0
    elections = [ag.info()["election"]["elections"] for ag in pair[:2]]  # type: ignore[index]
    assert sum(elections) >= 1  # one of the two stood, to have a leader
    iface = info["interfaces"]["interfaces"][0]  # type: ignore[index]
    assert found[
        "covey_interface_last_beacon_received_timestamp_seconds",
        (("address", "127.0.0.1"), ("interface", "lo")),
    ] == pytest.approx(iface["last_in"], abs=0.05)

    # Over HTTP, with the loop running between the reads: every counter of /metrics lies
    # between the /v1/info read before it and the one after.
    _, before = await asyncio.to_thread(get, base + "/v1/info")
    content_type, body = await asyncio.to_thread(get, base + "/metrics")
    _, after = await asyncio.to_thread(get, base + "/v1/info")
    assert content_type == CONTENT_TYPE
    served = samples(body.decode())
    low, high = expected(json.loads(before)), expected(json.loads(after))
    counters = [k for k in high if k[0].endswith("_total")]
    assert len(counters) > 20
    for k in counters:
        assert low.get(k, 0) <= served.get(k, 0) <= high[k], k
    assert served["covey_members", (("state", "alive"),)] == 2
    assert served["covey_event_loop_lag_seconds", ()] >= 0


def test_every_metric_is_documented(pair: tuple[Agent, Agent, str]) -> None:
    a, _, _ = pair  # with the election on, every family is there
    served = {
        m.name + ("_total" if m.type == "counter" else ""): m.type
        for m in AgentCollector(a, LoopLag()).collect()
    }
    table = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    table = table.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `(covey_\w+)` \| (\w+) \|", table, re.MULTILINE))
    assert documented == served


async def test_metrics_route_is_described_as_text(pair: tuple[Agent, Agent, str]) -> None:
    _, _, base = pair
    _, body = await asyncio.to_thread(get, base + "/v1/openapi.json")
    op = json.loads(body)["paths"]["/metrics"]["get"]
    assert op["responses"]["200"]["content"] == {CONTENT_TYPE: {"schema": op_schema(op)}}
    assert op_schema(op)["type"] == "string"


def op_schema(op: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = op["responses"]["200"]["content"][CONTENT_TYPE]["schema"]
    return schema


SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from covey.runtime import Agent, AgentConfig

async def main(port, http):
    config = AgentConfig(
        name="lean", cluster="lean", bind=("127.0.0.1", port), interfaces=("127.0.0.1",),
        multicast=("239.192.77.1", port), keys=(sys.argv[1].encode(),),
        control=Path(sys.argv[2]), http=("127.0.0.1", http) if http else None)
    async with Agent(config):
        await asyncio.sleep(0)
    print(json.dumps([m in sys.modules for m in ("aiohttp", "prometheus_client")]))

asyncio.run(main(int(sys.argv[3]), int(sys.argv[4])))
"""


@pytest.mark.parametrize("http", [False, True])
def test_only_agents_serving_http_load_aiohttp_and_prometheus_client(
    http: bool, tmp_path: Path
) -> None:
    args = [Fernet.generate_key().decode(), str(tmp_path / "c.sock"), str(free_port())]
    args.append(str(free_port()) if http else "0")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [http, http]
