"""Drive one node's :class:`Election` through a :class:`FakeHandle`: no Node, no network."""

from __future__ import annotations

from typing import Any

from covey.core.election.election import Election, ElectionConfig, Role, VoteStore
from covey.core.election.messages import Heartbeat, HeartbeatAck, VoteReply, VoteRequest
from covey.core.types import Address

from ..fakes import FakeHandle, add_member, attach, node_id


def started(
    n: int = 3,
    *,
    me: int = 1,
    cfg: ElectionConfig | None = None,
    store: VoteStore | None = None,
    handle: FakeHandle | None = None,
) -> tuple[Election, FakeHandle]:
    """Node ``me`` of members 1..n, started at 0 (expected_votes n unless ``cfg`` says)."""
    e = Election(cfg or ElectionConfig(n), store or VoteStore())
    h = attach(e, handle or FakeHandle(me))
    for i in range(1, n + 1):
        if i != me:
            add_member(h, e, i)
    return e, h


def role(e: Election) -> Role:
    """The node's role (a call, so a test may check it again after acting)."""
    return e.role


def addr(h: FakeHandle, i: int) -> Address:
    """The address of member ``i``."""
    return h.members.members[node_id(i)].address


def sent(h: FakeHandle, cls: type[Any]) -> list[tuple[Address | None, Any]]:
    """Every message of type ``cls`` sent so far, with its destination."""
    return [(a, m) for a, msgs in h.sent for m in msgs if isinstance(m, cls)]


def fire(e: Election) -> float:
    """Run the election's next timer; return its time."""
    t = e.next_deadline()
    assert t is not None
    e.on_timer(t)
    return t


def grant(e: Election, h: FakeHandle, voter: int, now: float) -> None:
    """``voter`` grants the vote round under way."""
    rnd = e._round
    assert rnd is not None
    reply = VoteReply(rnd.term, rnd.pre, True, e.cfg.expected_votes, e.term)
    e.on_message(reply, node_id(voter), addr(h, voter), now)


def elect(e: Election, h: FakeHandle, voters: tuple[int, ...] = (2,)) -> float:
    """Stand when the timer fires and win both rounds with the votes of ``voters``."""
    t = fire(e)
    for _ in ("pre-vote", "vote"):
        for v in voters:
            grant(e, h, v, t)
    assert e.is_leader(t)
    return t


def request(
    e: Election, h: FakeHandle, candidate: int, term: int, now: float, *, pre: bool = False
) -> VoteReply:
    """``candidate`` asks us for a vote in ``term``; return our reply."""
    h.take_sent()
    msg = VoteRequest(term, pre, e.cfg.expected_votes, 0)
    e.on_message(msg, node_id(candidate), addr(h, candidate), now)
    replies = sent(h, VoteReply)
    assert len(replies) == 1 and replies[0][0] == addr(h, candidate)
    reply: VoteReply = replies[0][1]
    return reply


def heartbeat(
    e: Election, h: FakeHandle, leader: int, term: int, now: float, *, seq: int = 1
) -> HeartbeatAck:
    """``leader`` heartbeats us in ``term``; return our ack."""
    h.take_sent()
    hb = Heartbeat(term, seq, e.cfg.expected_votes, "", 0, False)
    e.on_message(hb, node_id(leader), addr(h, leader), now)
    acks = sent(h, HeartbeatAck)
    assert len(acks) == 1 and acks[0][0] == addr(h, leader)
    ack: HeartbeatAck = acks[0][1]
    return ack


def ack(e: Election, h: FakeHandle, member: int, hb: Heartbeat, now: float) -> None:
    """``member`` accepts the heartbeat ``hb``."""
    msg = HeartbeatAck(hb.term, hb.seq, hb.term, True, "", 0)
    e.on_message(msg, node_id(member), addr(h, member), now)
