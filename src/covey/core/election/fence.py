"""Fencing decisions, heartbeat-disk observations and panic mode (mixed into Election).

Theory of operation. Only the leader decides, and only while its lease is valid and the
cluster is not in panic. When membership reports a member failed (``MemberFailed``), or
when a node becomes leader and finds members already failed, the leader considers
fencing it: never itself, at most once per (node, incarnation) failure, and — when a
heartbeat disk is configured — only if the node's disk slot is stale too. A node silent
on the network whose slot still changes is *partitioned*: it is reported
(:class:`NodePartitioned`) and not fenced; if its slot goes stale later, it is fenced
then. The decision is an event (:class:`FenceDecision`) carrying the term as fencing
token; the runtime runs the fencing command.

Panic mode is entered on inconsistent input: two leaders claiming one term, a storage
failure (disk unreadable, or every slot stale at once), vote rounds that nobody answers
although a quorum looks alive, a member whose ``expected_votes`` differ from ours, or a
failed node without a disk slot. In panic, elections and membership go on, but no
fencing decision is taken. The leader spreads its panic in its heartbeats and adopts its
members' panics from their acks; ``recover`` (applied by the leader, forwarded there by
anyone else) bumps ``recover_gen`` and the heartbeats carry the recovery to everyone.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from covey.core.election.events import (
    DiskSlot,
    ElectionInfo,
    FenceDecision,
    NodePartitioned,
    PanicEntered,
    Recovered,
)
from covey.core.election.messages import Info, Recover
from covey.core.election.state import ElectionState
from covey.core.events import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    TraceOp,
)
from covey.core.member import MemberInfo
from covey.core.types import MemberState

if TYPE_CHECKING:
    from covey.core.election.election import _Round


class FenceMixin(ElectionState):
    """Fencing, heartbeat-disk and panic state of the election (:class:`Election`)."""

    def _init_fence(self) -> None:
        #: Why this node is in panic, or None in normal mode.
        self.panic_reason: str | None = None
        #: The recover generation current when the panic began.
        self.panic_gen = 0
        #: Operator recoveries applied by leaders so far (only grows).
        self.recover_gen = 0
        #: (node id, incarnation) failures this node fenced as leader.
        self.fenced: set[tuple[bytes, int]] = set()
        #: Members silent on the network but alive on the heartbeat disk.
        self.partitioned: dict[bytes, MemberInfo] = {}
        self.disk_enabled = False
        self._disk_seen: dict[bytes, tuple[tuple[float, int, int], float]] = {}
        self._disk_now = -math.inf
        self._disk_fail_since: float | None = None
        self._silent = 0

    # ------------------------------------------------------------ fencing

    def _fence_member_event(self, event: MemberEvent, now: float) -> None:
        nid = event.member.node_id
        if isinstance(event, MemberFailed):
            self._consider_fence(event.member, now)
        elif isinstance(event, MemberRecovered | MemberJoined | MemberLeft):
            self.partitioned.pop(nid, None)

    def _on_leadership(self, now: float) -> None:
        """A new leader (or a recovered one) looks at members that failed meanwhile."""
        me = self.handle.node_id
        for m in list(self.handle.members.members.values()):
            if m.state is MemberState.FAILED and m.node_id != me:
                self._consider_fence(m.snapshot(), now)

    def _consider_fence(self, member: MemberInfo, now: float) -> None:
        nid = member.node_id
        if nid == self.handle.node_id or not self.is_leader(now) or self.panic_reason is not None:
            return
        key = (nid, member.incarnation)
        if key in self.fenced:
            return
        if self.disk_enabled:
            seen = self._disk_seen.get(nid)
            if seen is None:
                self._panic(now, f"no heartbeat-disk slot for failed node {member.name}")
                return
            if now - seen[1] < self.cfg.disk_timeout:
                if nid not in self.partitioned:
                    self.partitioned[nid] = member
                    self.handle.emit(NodePartitioned(now, member.name, nid, self.term))
                    self._trace(TraceOp.FENCE, now, f"partitioned, not fenced: {member.name}")
                return
        self.partitioned.pop(nid, None)
        self.fenced.add(key)
        self.handle.emit(
            FenceDecision(now, member.name, nid, member.address, member.incarnation, self.term)
        )
        self._trace(TraceOp.FENCE, now, f"fence {member.name}", self.term)

    # ------------------------------------------------------------ heartbeat disk

    def observe_disk(self, now: float, slots: list[DiskSlot] | None) -> None:
        """Feed one read of the heartbeat disk (``None``: the read failed).

        Any change of a slot's content marks its node alive on the disk at ``now``.
        """
        self.disk_enabled = True
        self._disk_now = now
        timeout = self.cfg.disk_timeout
        if slots is None:
            if self._disk_fail_since is None:
                self._disk_fail_since = now
            if now - self._disk_fail_since >= timeout:
                self._panic(now, "storage failure: the heartbeat disk cannot be read")
            return
        self._disk_fail_since = None
        for s in slots:
            sig = (s.stamp, s.term, s.incarnation)
            old = self._disk_seen.get(s.node_id)
            if old is None or old[0] != sig:
                self._disk_seen[s.node_id] = (sig, now)
        seen = self._disk_seen.values()
        if seen and all(now - t >= timeout for _, t in seen):
            self._panic(now, "storage failure: every heartbeat-disk slot is stale")
            return
        for nid, member in list(self.partitioned.items()):
            entry = self._disk_seen.get(nid)
            if entry is None or now - entry[1] >= timeout:
                del self.partitioned[nid]
                self._consider_fence(member, now)

    def _dead_on_disk(self, node_id: bytes) -> bool:
        entry = self._disk_seen.get(node_id)
        return (
            self.disk_enabled
            and entry is not None
            and self._disk_now - entry[1] >= self.cfg.disk_timeout
        )

    # ------------------------------------------------------------ panic

    def _panic(self, now: float, reason: str) -> None:
        if self.panic_reason is not None:
            return
        self.panic_reason = reason
        self.panic_gen = self.recover_gen
        self.handle.emit(PanicEntered(now, reason))
        self._trace(TraceOp.PANIC, now, reason, self.term)

    def _clear_panic(self, now: float) -> None:
        if self.panic_reason is None:
            return
        self.panic_reason = None
        self.handle.emit(Recovered(now, self.recover_gen))
        self._trace(TraceOp.RECOVER, now, "recovered", self.recover_gen)

    def _follow_panic(self, panic: str, gen: int, now: float) -> None:
        """Apply the leader's mode (from its heartbeat)."""
        if self.panic_reason is not None and not panic and gen > self.panic_gen:
            self.recover_gen = max(self.recover_gen, gen)
            self._clear_panic(now)
        self.recover_gen = max(self.recover_gen, gen)
        if panic and self.panic_reason is None:
            self._panic(now, "cluster: " + panic)

    def _config_agrees(self, expected: int, sender: bytes, now: float) -> bool:
        if expected == self.cfg.expected_votes:
            return True
        self._panic(
            now,
            f"invalid shared configuration: {self._name_of(sender)} has expected_votes "
            f"{expected}, we have {self.cfg.expected_votes}",
        )
        return False

    def _note_silence(self, rnd: _Round, now: float) -> None:
        if rnd.replies:
            self._silent = 0
            return
        node = self.handle
        alive = sum(m.state is MemberState.ALIVE for m in node.members.members.values())
        cut_off = node.datagrams_received == rnd.received or node.health > 0
        if alive < self.quorum() or cut_off:
            # Silence is inconsistent input only while the members do talk to us: a node
            # that hears nobody, or whose own probes fail, is cut off, and its members
            # still look alive until their suspicions run out. Its panic would reach the
            # leader through its acks after the heal, and every node with it.
            self._silent = 0
            return
        self._silent += 1
        if self._silent >= self.cfg.silent_rounds:
            self._silent = 0
            self._panic(now, f"elections get no answer although {alive} members look alive")

    def recover(self, now: float) -> str:
        """The operator's ``covey recover``: applied by the leader, forwarded by others.

        Returns what happened, for the operator.
        """
        if self.is_leader(now):
            self._apply_recover(now)
            return "recovered by the leader; heartbeats carry it to every member"
        leader = self.current_leader(now)
        member = self.handle.members.get(leader) if leader is not None else None
        if member is None:
            self._clear_panic(now)
            return "no leader: recovered this node only"
        self.handle.send(member.address, [Recover(self.recover_gen)], now=now)
        return f"sent to the leader {member.name}"

    def _apply_recover(self, now: float) -> None:
        self.recover_gen += 1
        self._clear_panic(now)
        self._on_leadership(now)

    def _on_recover(self, msg: Recover, sender: bytes, now: float) -> None:
        if self.is_leader(now) and msg.recover_gen <= self.recover_gen:
            self._apply_recover(now)

    def _on_info(self, msg: Info, sender: bytes, now: float) -> None:
        leader = self._name_of(msg.leader_id) if msg.leader_id else None
        self.handle.emit(ElectionInfo(now, self._name_of(sender), msg.term, leader, msg.role))
        if msg.role == "leader" and msg.term == self.term and self.is_leader(now):
            self._panic(now, f"two leaders claim term {msg.term}")
