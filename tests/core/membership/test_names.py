"""Two live nodes claiming one name: the first holder keeps it, the joining claimant is
told by its join's answer and refuses (covey.core.membership.names)."""

from __future__ import annotations

from covey.core import NameConflict, Node
from covey.core.wire.messages import Alive

from .helpers import make_node, node_id


def _conflicts(node: Node) -> list[NameConflict]:
    return [e for e in node.pop_events() if isinstance(e, NameConflict)]


def test_an_alive_claiming_a_live_name_is_dropped_and_reported_once() -> None:
    a = make_node(1)
    a.pop_events()
    claim = Alive(1, node_id(3), "n1", ("10.0.0.3", 7946), None)
    for t in (1.0, 2.0):
        assert not a.table.apply_alive(claim, t)
    assert a.table.get(node_id(3)) is None
    (event,) = _conflicts(a)
    assert (event.name, event.holder, event.claimant, event.refused) == (
        "n1",
        node_id(1),
        node_id(3),
        False,
    )
    # Another member's name is kept by its first holder just the same.
    assert a.table.apply_alive(Alive(1, node_id(4), "n4", ("10.0.0.4", 7946), None), 3.0)
    assert not a.table.apply_alive(Alive(1, node_id(5), "n4", ("10.0.0.5", 7946), None), 3.0)
    assert a.table.get(node_id(5)) is None


def test_a_new_identity_at_the_holders_address_is_a_restart_not_a_clash() -> None:
    a = make_node(1)
    assert a.table.apply_alive(Alive(1, node_id(4), "n4", ("10.0.0.4", 7946), None), 1.0)
    assert a.table.apply_alive(Alive(1, node_id(5), "n4", ("10.0.0.4", 7946), None), 2.0)
    assert not _conflicts(a)


def test_a_joining_claimant_refuses_and_the_holders_table_is_untouched() -> None:
    a = make_node(1)
    b = make_node(2, name="n1")  # same name, another node id and address
    b.join([a.config.address], now=1.0)
    (req,) = b.streams_to_open(now=1.0)
    reply = a.handle_stream(req.data, b.config.address, now=1.0)
    assert reply is not None
    assert a.table.get(node_id(2)) is None  # the holder never took the claimant in
    assert [e.refused for e in _conflicts(a)] == [False]
    b.pop_events()
    b.stream_reply(req.request_id, reply, now=1.1)
    (event,) = _conflicts(b)
    assert event.refused and event.holder == node_id(1) and event.claimant == node_id(2)
    assert b.names.refused and not b.joined
    assert b.table.get(node_id(1)) is None  # nothing of the holder's side merged


def test_a_joining_node_with_its_own_name_joins() -> None:
    a = make_node(1)
    b = make_node(2)
    b.join([a.config.address], now=1.0)
    (req,) = b.streams_to_open(now=1.0)
    reply = a.handle_stream(req.data, b.config.address, now=1.0)
    assert reply is not None
    b.stream_reply(req.request_id, reply, now=1.1)
    assert not _conflicts(b) and b.joined and b.table.get(node_id(1)) is not None
