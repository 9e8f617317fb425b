"""Trace records made from the agent's events, and the bounded ring buffer that holds them.

:class:`TraceMaker` turns the events the agent publishes — the core's
:class:`~covey.core.events.TraceRecord` lines (join, probe, exit, refute, the election's
leader_start / leader_heart / leader_delta / election / reboot / fence / panic /
recover), the member events (alive, suspect, failed, left), the runtime's clock leaps and
the deliveries' stage ends — into the JSON records of docs/traces.md, stamped with the
leader and term the agent knew then and how many members it counted alive.

:class:`TraceBuffer` keeps the last ``size`` of them. With a collector configured, a
record that falls out of the buffer before the collector stored it is counted in
``lost`` — never dropped silently.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from covey.core.deliveries import DeliveryComplete, DeliveryFailed, DeliveryStageComplete
from covey.core.election.events import LeaderChanged
from covey.core.events import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MemberSuspect,
    TraceRecord,
)
from covey.runtime.events import AgentEvent, ClockLeap

#: Octets of ``detail`` kept per record.
DETAIL_LIMIT = 200
_MEMBER_OPS: dict[type[MemberEvent], str] = {
    MemberJoined: "alive",
    MemberRecovered: "alive",
    MemberSuspect: "suspect",
    MemberFailed: "failed",
    MemberLeft: "left",
}


class TraceMaker:
    """Makes trace records for one agent (see the module docstring).

    Args:
        node: this agent's name; node_id: its id; cluster: its cluster.
        boot: wall time this process started (with ``node_id`` and ``seq``, a record's id).
        alive: counts the members alive now (this node included).
        wall: turns the core's ``now`` into wall seconds.
    """

    def __init__(
        self,
        node: str,
        node_id: bytes,
        cluster: str,
        boot: float,
        alive: Callable[[], int],
        wall: Callable[[float], float],
    ) -> None:
        self.base = {"node": node, "node_id": node_id.hex(), "cluster": cluster, "boot": boot}
        self._alive = alive
        self._wall = wall
        self.leader: str | None = None
        self.term: int | None = None

    def record(
        self,
        op: str,
        at: float,
        *,
        detail: str = "",
        n: int = 0,
        subject: str | None = None,
        subject_id: bytes | None = None,
        cause: str | None = None,
    ) -> dict[str, Any]:
        """One record (without its ``seq``, which the buffer gives) at wall time ``at``."""
        return {
            **self.base,
            "at": at,
            "op": op,
            "subject": subject,
            "subject_id": None if subject_id is None else subject_id.hex(),
            "leader": self.leader,
            "term": self.term,
            "members": self._alive(),
            "detail": detail.encode()[:DETAIL_LIMIT].decode(errors="ignore"),
            "n": n,
            "cause": cause,
        }

    def from_event(self, event: AgentEvent) -> dict[str, Any] | None:
        """The record of ``event``, or None for events that are not traced."""
        if isinstance(event, LeaderChanged):
            # Not a record of its own (the election traces leader_start / leader_delta):
            # it sets the leader and term stamped on every later record.
            self.leader, self.term = event.leader, event.term
            return None
        if isinstance(event, TraceRecord):
            return self.record(event.op.value, self._wall(event.at), detail=event.detail, n=event.n)
        if isinstance(event, MemberEvent):
            op = _MEMBER_OPS.get(type(event))
            if op is None:
                return None
            m = event.member
            # Every node that sees this change names the same cause: joins records.
            cause = f"inc:{m.node_id.hex()}:{m.incarnation}"
            return self.record(
                op,
                self._wall(event.at),
                subject=m.name,
                subject_id=m.node_id,
                n=m.incarnation,
                detail=f"{m.name} {op}",
                cause=cause,
            )
        if isinstance(event, ClockLeap):
            return self.record(
                "clock_leap", self._wall(event.at), detail=f"{event.delta:+.3f} s", n=0
            )
        if isinstance(event, DeliveryStageComplete):
            rec = event.record
            return self.record(
                "delivery_stage",
                time.time(),
                detail=f"delivery {rec.id.hex()} stage {event.stage} complete",
                n=event.stage,
                cause=f"delivery:{rec.id.hex()}",
            )
        if isinstance(event, DeliveryComplete | DeliveryFailed):
            rec = event.record
            return self.record(
                "delivery_end",
                time.time(),
                detail=f"delivery {rec.id.hex()} {rec.state.value}: {rec.reason}".strip(": "),
                n=rec.stage,
                cause=f"delivery:{rec.id.hex()}",
            )
        return None


class TraceBuffer:
    """The last ``size`` records, numbered 1, 2, 3... (``seq``).

    Args:
        size: how many records are kept.
        streaming: a collector is configured (records evicted unsent count as lost).
    """

    def __init__(self, size: int, *, streaming: bool = False) -> None:
        self.size = size
        self.streaming = streaming
        self._ring: deque[dict[str, Any]] = deque(maxlen=size)
        self.seq = 0
        #: Highest ``seq`` the collector stored (records up to it need not be sent).
        self.acked = 0
        #: Records evicted before the collector stored them.
        self.lost = 0
        self._changed = asyncio.Event()

    def add(self, record: dict[str, Any]) -> None:
        """Append ``record`` (its ``seq`` is set here)."""
        self.seq += 1
        record["seq"] = self.seq
        ring = self._ring
        if self.streaming and len(ring) == self.size and ring[0]["seq"] > self.acked:
            self.lost += 1
        ring.append(record)
        self._changed.set()

    def after(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` records with a ``seq`` above ``seq``, oldest first."""
        ring = self._ring
        if not ring or ring[-1]["seq"] <= seq:
            return []
        first = ring[0]["seq"]
        start = max(0, seq + 1 - first)
        return [ring[i] for i in range(start, min(len(ring), start + limit))]

    def last(self, n: int) -> list[dict[str, Any]]:
        """The newest ``n`` records, oldest first."""
        ring = self._ring
        return [ring[i] for i in range(max(0, len(ring) - n), len(ring))]

    def unsent(self) -> list[dict[str, Any]]:
        """Every held record the collector has not stored."""
        return self.after(self.acked, self.size)

    def __len__(self) -> int:
        return len(self._ring)

    async def wait_after(self, seq: int, timeout: float) -> bool:
        """Wait until a record with a ``seq`` above ``seq`` is held; False at ``timeout``."""
        self._changed.clear()
        if self.seq > seq:  # checked after the clear: an add in between is not missed
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            return False
        return True
