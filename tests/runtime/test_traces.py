"""Trace records: the ring buffer is bounded and counts what it lost, events become the
records of docs/traces.md, and an in-process agent keeps them from its first moment."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from covey.core import MemberInfo, MemberState
from covey.core.election.events import LeaderChanged
from covey.core.events import MemberFailed, TraceOp, TraceRecord
from covey.runtime import Agent, AgentConfig
from covey.runtime.localcluster import free_port
from covey.runtime.traces.records import TraceBuffer, TraceMaker


def _record(i: int) -> dict[str, object]:
    return {"op": "probe", "i": i}


def test_the_buffer_keeps_the_last_records_and_counts_unsent_ones_lost() -> None:
    buf = TraceBuffer(100, streaming=True)
    for i in range(250):
        buf.add(_record(i))
    assert len(buf) == 100 and buf.seq == 250
    assert [r["seq"] for r in buf.last(3)] == [248, 249, 250]
    assert buf.after(0, 5)[0]["seq"] == 151  # the oldest held
    assert buf.lost == 150  # fell out before any collector stored them
    buf.acked = 250
    for i in range(50):
        buf.add(_record(i))
    assert buf.lost == 150  # what fell out now had been stored
    assert [r["seq"] for r in buf.unsent()] == list(range(251, 301))


def test_without_a_collector_eviction_is_no_loss() -> None:
    buf = TraceBuffer(10)
    for i in range(25):
        buf.add(_record(i))
    assert len(buf) == 10 and buf.lost == 0
    assert buf.after(24, 10) == [buf.last(1)[0]] and buf.after(25, 10) == []


def test_events_become_records_with_leader_term_and_a_joinable_cause() -> None:
    maker = TraceMaker("a", b"\x01" * 16, "c", 1000.0, lambda: 4, lambda now: now + 500.0)
    assert maker.from_event(LeaderChanged(1.0, 3, "b", b"\x02" * 16)) is None
    member = MemberInfo(
        node_id=b"\x09" * 16,
        name="z",
        address=("127.0.0.1", 1),
        incarnation=7,
        state=MemberState.FAILED,
        state_change=2.0,
        tags={},
    )
    r = maker.from_event(MemberFailed(member, 2.0))
    assert r is not None
    stamped = (r["op"], r["subject"], r["leader"], r["term"], r["members"])
    assert stamped == ("failed", "z", "b", 3, 4)
    assert r["at"] == 502.0 and r["cause"] == f"inc:{'09' * 16}:7" and r["boot"] == 1000.0
    t = maker.from_event(TraceRecord(TraceOp.LEADER_HEART, 3.0, "a", "heartbeat", 12))
    assert t is not None and (t["op"], t["n"], t["detail"]) == ("leader_heart", 12, "heartbeat")


async def test_an_agent_traces_from_its_start_and_its_leave(tmp_path: Path) -> None:
    port = free_port()
    config = AgentConfig(
        name="t",
        cluster=f"trace-{port}",
        bind=("127.0.0.1", port),
        interfaces=("127.0.0.1",),
        multicast=("239.192.77.2", free_port()),
        keys=(Fernet.generate_key(),),
        control=Path(f"/tmp/covey-test-trace-{port}.sock"),
        trace_buffer=5,
    )
    async with Agent(config) as agent:
        first = agent.traces.buffer.last(5)
        assert first and first[0]["op"] == "join" and first[0]["detail"] == "start"
        for _ in range(10):
            agent.traces._on_event(TraceRecord(TraceOp.PROBE, 0.0, "t", "x"))
        assert len(agent.traces.buffer) == 5  # bounded by --trace-buffer
        info = agent.info()["traces"]
        assert info["held"] == 5 and info["seq"] >= 11 and info["lost"] == 0  # type: ignore[index]
