"""The quorum rules of the election, as pure functions of what a node knows.

A *quorum* is how many votes (or heartbeat acceptances, the node itself included) make a
decision: a majority of ``expected_votes``, the configured cluster size, which must be the
same on every node. Nothing here reads a member table or a clock; the election gathers
the inputs (:meth:`covey.core.election.state.ElectionState.quorum`) and calls these.

Two-node mode (Corosync's ``two_node`` with ``wait_for_all``): two nodes have no majority
but both, so after the pair has been seen together once, one node may be quorate alone:
the one with the lower id (the *tie-breaker*), or the other one when the heartbeat disk
shows the tie-breaker dead. Before the pair met, nobody is quorate alone, so two nodes
started apart never both lead.

The lease rule: each member that accepted heartbeat *h* refuses votes until ``sent(h) +
follower_wait``. So the lease may run from the quorum-th latest of those send times (the
leader's own counts as the newest), even when no single heartbeat reached a whole quorum.
"""

from __future__ import annotations

from collections.abc import Iterable


def majority(expected_votes: int) -> int:
    """Votes that make a majority of ``expected_votes``."""
    return expected_votes // 2 + 1


def quorate(count: int, quorum: int) -> bool:
    """True when ``count`` votes (or acceptances, self included) reach ``quorum``."""
    return count >= quorum


def seen_together(live_count: int) -> bool:
    """wait_for_all: the two nodes are live together now (the election remembers it)."""
    return live_count >= 2


def lowest_peer(me: bytes, node_ids: Iterable[bytes]) -> bytes | None:
    """The peer with the lowest id (every member but ``me``), or None when alone."""
    return min((n for n in node_ids if n != me), default=None)


def alone_quorate(me: bytes, peer: bytes | None, *, both_seen: bool, peer_dead: bool) -> bool:
    """Two-node mode: whether ``me`` is quorate by itself.

    Args:
        me: our node id.
        peer: the other node's id (:func:`lowest_peer`), None if we know of none.
        both_seen: the pair has been seen together once (:func:`seen_together`).
        peer_dead: the heartbeat disk shows the peer's slot stale.
    """
    if not both_seen or peer is None:
        return False  # wait_for_all: never quorate alone before both met once
    return me < peer or peer_dead  # the tie-breaker, or the survivor of a dead one


def quorum_size(expected_votes: int, *, two_node: bool = False, alone: bool = False) -> int:
    """The quorum: 1 in two-node mode when quorate alone, else a majority."""
    return 1 if two_node and alone else majority(expected_votes)


def lease_base(acked: Iterable[float], quorum: int) -> float | None:
    """When the lease may run from, given each member's latest accepted heartbeat send time.

    ``acked`` holds one send time per member other than the leader; the leader's own
    acceptance makes up the rest of the quorum. None when the members' acceptances do
    not reach a quorum yet (or the leader alone is one: its lease runs from each send).
    """
    need = quorum - 1
    if need <= 0:
        return None
    latest = sorted(acked, reverse=True)
    if len(latest) < need:
        return None
    return latest[need - 1]
