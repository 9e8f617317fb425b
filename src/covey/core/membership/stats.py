"""What a core records about itself: traffic counters, the frozen record it reports, and
the hook its components write trace records through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field

from covey.core.events import TraceOp
from covey.core.records import record
from covey.core.types import DropReason

#: Records one trace event: (operation, now, detail, number).
Trace = Callable[[TraceOp, float, str, int], None]


@record
class NodeStatistics:
    """A snapshot of one core's counters.

    Attributes:
        datagrams_sent / bytes_sent / datagrams_received / bytes_received: traffic totals.
        streams_opened / streams_served: TCP exchanges initiated and answered.
        drops: inbound frames dropped, per :class:`DropReason` value.
        health: Lifeguard local health score (0 = healthy).
        incarnation: this node's incarnation.
        members: counts of members per state label.
        probes_sent / probes_failed: SWIM probes started, and those that ended with no ack.
        suspicions: times a member became suspect here (our probe or others' gossip).
        refutations: times this node refuted a wrong view of itself.
        unreachable: datagrams the kernel reported as refused (ICMP port unreachable).
        verdicts_checked / verdicts_refuted: failed verdicts from others about a member we
            had heard from lately, checked before being taken; those its answer refuted.
    """

    datagrams_sent: int
    bytes_sent: int
    datagrams_received: int
    bytes_received: int
    streams_opened: int
    streams_served: int
    drops: dict[str, int]
    health: int
    incarnation: int
    members: dict[str, int] = field(default_factory=dict)
    probes_sent: int = 0
    probes_failed: int = 0
    suspicions: int = 0
    refutations: int = 0
    unreachable: int = 0
    verdicts_checked: int = 0
    verdicts_refuted: int = 0


class Counters:
    """Mutable counters behind :class:`NodeStatistics`."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "datagrams_received",
        "datagrams_sent",
        "drops",
        "probes_failed",
        "probes_sent",
        "refutations",
        "streams_opened",
        "streams_served",
        "suspicions",
        "unreachable",
        "verdicts_checked",
        "verdicts_refuted",
    )

    def __init__(self) -> None:
        self.datagrams_sent = 0
        self.bytes_sent = 0
        self.datagrams_received = 0
        self.bytes_received = 0
        self.streams_opened = 0
        self.streams_served = 0
        self.drops: dict[DropReason, int] = {}
        self.probes_sent = 0
        self.probes_failed = 0
        self.suspicions = 0
        self.refutations = 0
        self.unreachable = 0
        self.verdicts_checked = 0
        self.verdicts_refuted = 0

    def drop(self, reason: DropReason) -> None:
        """Count one dropped frame."""
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def snapshot(self, health: int, incarnation: int, members: dict[str, int]) -> NodeStatistics:
        """A frozen record of these counters, with the node's health, incarnation and
        member counts per state label."""
        return NodeStatistics(
            self.datagrams_sent,
            self.bytes_sent,
            self.datagrams_received,
            self.bytes_received,
            self.streams_opened,
            self.streams_served,
            {r.value: n for r, n in self.drops.items()},
            health,
            incarnation,
            members,
            probes_sent=self.probes_sent,
            probes_failed=self.probes_failed,
            suspicions=self.suspicions,
            refutations=self.refutations,
            unreachable=self.unreachable,
            verdicts_checked=self.verdicts_checked,
            verdicts_refuted=self.verdicts_refuted,
        )
