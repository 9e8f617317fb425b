"""Fencing decisions, heartbeat-disk observations and panic mode: :class:`Fencing`.

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

from covey.core.election.events import (
    DiskSlot,
    ElectionInfo,
    FenceDecision,
    NodePartitioned,
    PanicEntered,
    Recovered,
)
from covey.core.election.messages import Info, Recover
from covey.core.election.quorum import quorate
from covey.core.election.state import ElectionState, VoteRound
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


class Fencing:
    """Fencing, heartbeat-disk and panic state of one node's election.

    Args:
        state: the shared state (the disk observations live there: the quorum reads them).
    """

    def __init__(self, state: ElectionState) -> None:
        self.s = state
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
        self._silent = 0  # vote rounds in a row that nobody answered

    # ------------------------------------------------------------ fencing

    def on_member_event(self, event: MemberEvent, now: float) -> None:
        """Consider fencing a failed member; a member back or gone is no longer partitioned."""
        nid = event.member.node_id
        if isinstance(event, MemberFailed):
            self.consider_fence(event.member, now)
        elif isinstance(event, MemberRecovered | MemberJoined | MemberLeft):
            self.partitioned.pop(nid, None)

    def on_leadership(self, now: float) -> None:
        """A new leader (or a recovered one) looks at members that failed meanwhile."""
        handle = self.s.handle
        me = handle.node_id
        for m in list(handle.members.members.values()):
            if m.state is MemberState.FAILED and m.node_id != me:
                self.consider_fence(m.snapshot(), now)

    def consider_fence(self, member: MemberInfo, now: float) -> None:
        """Decide whether to fence a failed ``member`` (see the module docstring)."""
        s = self.s
        nid = member.node_id
        if nid == s.handle.node_id or not s.is_leader(now) or self.panic_reason is not None:
            return
        key = (nid, member.incarnation)
        if key in self.fenced:
            return
        if s.disk.enabled:
            seen = s.disk.seen.get(nid)
            if seen is None:
                self.panic(now, f"no heartbeat-disk slot for failed node {member.name}")
                return
            if now - seen[1] < s.cfg.disk_timeout:
                if nid not in self.partitioned:
                    self.partitioned[nid] = member
                    s.handle.emit(NodePartitioned(now, member.name, nid, s.term))
                    s.trace(TraceOp.FENCE, now, f"partitioned, not fenced: {member.name}")
                return
        self.partitioned.pop(nid, None)
        self.fenced.add(key)
        s.handle.emit(
            FenceDecision(now, member.name, nid, member.address, member.incarnation, s.term)
        )
        s.trace(TraceOp.FENCE, now, f"fence {member.name}", s.term)

    # ------------------------------------------------------------ heartbeat disk

    def observe_disk(self, now: float, slots: list[DiskSlot] | None) -> None:
        """Feed one read of the heartbeat disk (``None``: the read failed).

        Any change of a slot's content marks its node alive on the disk at ``now``.
        """
        disk = self.s.disk
        disk.enabled = True
        disk.now = now
        timeout = self.s.cfg.disk_timeout
        if slots is None:
            if disk.fail_since is None:
                disk.fail_since = now
            if now - disk.fail_since >= timeout:
                self.panic(now, "storage failure: the heartbeat disk cannot be read")
            return
        disk.fail_since = None
        for slot in slots:
            sig = (slot.stamp, slot.term, slot.incarnation)
            old = disk.seen.get(slot.node_id)
            if old is None or old[0] != sig:
                disk.seen[slot.node_id] = (sig, now)
        seen = disk.seen.values()
        if seen and all(now - t >= timeout for _, t in seen):
            self.panic(now, "storage failure: every heartbeat-disk slot is stale")
            return
        for nid, member in list(self.partitioned.items()):
            entry = disk.seen.get(nid)
            if entry is None or now - entry[1] >= timeout:
                del self.partitioned[nid]
                self.consider_fence(member, now)

    # ------------------------------------------------------------ panic

    def panic(self, now: float, reason: str) -> None:
        """Enter panic mode for ``reason`` (no-op when already in panic)."""
        if self.panic_reason is not None:
            return
        self.panic_reason = reason
        self.panic_gen = self.recover_gen
        self.s.handle.emit(PanicEntered(now, reason))
        self.s.trace(TraceOp.PANIC, now, reason, self.s.term)

    def _clear_panic(self, now: float) -> None:
        if self.panic_reason is None:
            return
        self.panic_reason = None
        self.s.handle.emit(Recovered(now, self.recover_gen))
        self.s.trace(TraceOp.RECOVER, now, "recovered", self.recover_gen)

    def follow_panic(self, panic: str, gen: int, now: float) -> None:
        """Apply the leader's mode (from its heartbeat)."""
        if self.panic_reason is not None and not panic and gen > self.panic_gen:
            self.recover_gen = max(self.recover_gen, gen)
            self._clear_panic(now)
        self.recover_gen = max(self.recover_gen, gen)
        if panic and self.panic_reason is None:
            self.panic(now, "cluster: " + panic)

    def config_agrees(self, expected: int, sender: bytes, now: float) -> bool:
        """True when ``sender``'s ``expected_votes`` is ours; else panic (invalid config)."""
        cfg = self.s.cfg
        if expected == cfg.expected_votes:
            return True
        self.panic(
            now,
            f"invalid shared configuration: {self.s.name_of(sender)} has expected_votes "
            f"{expected}, we have {cfg.expected_votes}",
        )
        return False

    def note_silence(self, rnd: VoteRound, now: float) -> None:
        """A vote round failed: panic after ``silent_rounds`` nobody answered in a row."""
        if rnd.replies:
            self._silent = 0
            return
        handle = self.s.handle
        alive = sum(m.state is MemberState.ALIVE for m in handle.members.members.values())
        cut_off = handle.datagrams_received == rnd.received or handle.health > 0
        if not quorate(alive, self.s.quorum()) or cut_off:
            # Silence is inconsistent input only while the members do talk to us: a node
            # that hears nobody, or whose own probes fail, is cut off, and its members
            # still look alive until their suspicions run out. Its panic would reach the
            # leader through its acks after the heal, and every node with it.
            self._silent = 0
            return
        self._silent += 1
        if self._silent >= self.s.cfg.silent_rounds:
            self._silent = 0
            self.panic(now, f"elections get no answer although {alive} members look alive")

    # ------------------------------------------------------------ recovery and info

    def recover(self, now: float) -> str:
        """The operator's ``covey recover``: applied by the leader, forwarded by others.

        Returns what happened, for the operator.
        """
        s = self.s
        if s.is_leader(now):
            self._apply_recover(now)
            return "recovered by the leader; heartbeats carry it to every member"
        leader = s.current_leader(now)
        member = s.handle.members.get(leader) if leader is not None else None
        if member is None:
            self._clear_panic(now)
            return "no leader: recovered this node only"
        s.handle.send(member.address, [Recover(self.recover_gen)], now=now)
        return f"sent to the leader {member.name}"

    def _apply_recover(self, now: float) -> None:
        self.recover_gen += 1
        self._clear_panic(now)
        self.on_leadership(now)

    def on_recover(self, msg: Recover, sender: bytes, now: float) -> None:
        """A ``recover`` forwarded to us: applied if we lead."""
        if self.s.is_leader(now) and msg.recover_gen <= self.recover_gen:
            self._apply_recover(now)

    def on_info(self, msg: Info, sender: bytes, now: float) -> None:
        """Another node's election view: shown as an event; two leaders of a term: panic."""
        s = self.s
        leader = s.name_of(msg.leader_id) if msg.leader_id else None
        s.handle.emit(ElectionInfo(now, s.name_of(sender), msg.term, leader, msg.role))
        if msg.role == "leader" and msg.term == s.term and s.is_leader(now):
            self.panic(now, f"two leaders claim term {msg.term}")
