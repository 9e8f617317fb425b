"""The ZRE peer table, driven with a hand-held clock: who is listed, what is sent, when a
peer is pinged, expired or dropped (no sockets)."""

from __future__ import annotations

from covey.runtime.zre import messages as m
from covey.runtime.zre.beacon import Beacon
from covey.runtime.zre.events import ZreEnter, ZreExit, ZreGroupChange, ZreReceived
from covey.runtime.zre.messages import ZreMessage
from covey.runtime.zre.peers import Connect, Disconnect, PeerTable, Send

ME = b"\x11" * 16
PEER = b"\x22" * 16


def _table(groups: tuple[str, ...] = ("chat",)) -> PeerTable:
    return PeerTable(ME, "cov1", "tcp://127.0.0.1:4000", {"X-COVEY-CLUSTER": "c"}, groups)


def _hello(seq: int = 1, groups: tuple[str, ...] = ("chat",), status: int = 1) -> ZreMessage:
    return ZreMessage(m.HELLO, seq, "tcp://127.0.0.1:5000", groups, status, "pyre1", {"h": "v"})


def _drain(t: PeerTable) -> tuple[list[object], list[object]]:
    actions, events = t.actions, t.events
    t.actions, t.events = [], []
    return actions, events


def _entered(t: PeerTable, now: float = 0.0) -> None:
    t.beacon(Beacon(PEER, 5000), "127.0.0.1", now)
    t.message(PEER, _hello(), now)
    _drain(t)


def test_a_beacon_gets_a_connection_and_our_hello_numbered_1() -> None:
    t = _table()
    t.beacon(Beacon(PEER, 5000), "127.0.0.1", 0.0)
    actions, events = _drain(t)
    assert actions[0] == Connect(PEER, "tcp://127.0.0.1:5000")
    send = actions[1]
    assert isinstance(send, Send) and send.message.kind == m.HELLO
    assert send.message.sequence == 1 and send.message.groups == ("chat",)
    assert send.message.status == 1 and send.message.name == "cov1"
    assert events == [] and t.listed() == []  # not listed before its HELLO
    t.beacon(Beacon(PEER, 5000), "127.0.0.1", 0.5)
    assert _drain(t) == ([], [])  # a known peer: nothing again


def test_its_hello_enters_it_with_headers_and_groups() -> None:
    t = _table()
    t.beacon(Beacon(PEER, 5000), "127.0.0.1", 0.0)
    _drain(t)
    t.message(PEER, _hello(), 0.1)
    _, events = _drain(t)
    assert isinstance(events[0], ZreEnter) and events[0].headers == {"h": "v"}
    assert events[1] == ZreGroupChange(0.1, PEER, "pyre1", "chat", joined=True)
    (listed,) = [p.to_json() for p in t.listed()]
    assert listed["kind"] == "zre" and listed["name"] == "pyre1"
    assert listed["address"] == "127.0.0.1:5000" and listed["state"] == "alive"
    assert listed["tags"] == {
        "h": "v",
        "zre.endpoint": "tcp://127.0.0.1:5000",
        "zre.groups": "chat",
    }


def test_a_hello_from_a_peer_that_found_us_first_connects_back() -> None:
    t = _table()
    t.message(PEER, _hello(), 0.0)
    actions, events = _drain(t)
    assert actions[0] == Connect(PEER, "tcp://127.0.0.1:5000")
    assert isinstance(events[0], ZreEnter)


def test_messages_before_hello_are_dropped_and_counted() -> None:
    t = _table()
    t.message(PEER, ZreMessage(m.SHOUT, 1, group="chat", content=(b"x",)), 0.0)
    assert t.drops["not_ready"] == 1 and _drain(t) == ([], [])


def test_shout_whisper_ping_and_group_changes() -> None:
    t = _table()
    _entered(t)
    t.message(PEER, ZreMessage(m.SHOUT, 2, group="chat", content=(b"hi",)), 1.0)
    t.message(PEER, ZreMessage(m.WHISPER, 3, content=(b"psst",)), 1.0)
    t.message(PEER, ZreMessage(m.PING, 4), 1.0)
    t.message(PEER, ZreMessage(m.JOIN, 5, group="ops", status=2), 1.0)
    t.message(PEER, ZreMessage(m.LEAVE, 6, group="chat", status=3), 1.0)
    actions, events = _drain(t)
    assert events[0] == ZreReceived(1.0, PEER, "pyre1", "chat", (b"hi",))
    assert events[1] == ZreReceived(1.0, PEER, "pyre1", None, (b"psst",))
    assert events[1].kind == "whisper" and events[1].text == "psst"
    assert [a.message.kind for a in actions if isinstance(a, Send)] == [m.PING_OK]
    assert t.peers[PEER].groups == {"ops"} and t.drops["status_mismatch"] == 0
    assert [type(e) for e in events[2:]] == [ZreGroupChange, ZreGroupChange]


def test_our_messages_are_numbered_and_status_counts_joins() -> None:
    t = _table()
    _entered(t)
    assert t.shout("chat", (b"a",)) == 1
    assert t.shout("nobody-here", (b"a",)) == 0
    assert t.join("ops") and not t.join("ops")
    assert t.leave("chat") and not t.leave("chat")
    assert t.whisper(PEER, (b"w",)) and not t.whisper(b"\x33" * 16, (b"w",))
    sends = [a.message for a in _drain(t)[0] if isinstance(a, Send)]
    assert [s.sequence for s in sends] == [2, 3, 4, 5]  # HELLO was 1
    assert [(s.command, s.status) for s in sends[1:3]] == [("JOIN", 2), ("LEAVE", 3)]


def test_a_sequence_gap_drops_the_peer_as_zyre_does() -> None:
    t = _table()
    _entered(t)
    t.message(PEER, ZreMessage(m.PING, 3), 1.0)  # 2 was lost
    actions, events = _drain(t)
    assert Disconnect(PEER) in actions
    assert events == [ZreExit(1.0, PEER, "pyre1", "lost_messages")]
    assert t.listed() == []


def test_a_second_hello_means_it_restarted() -> None:
    t = _table()
    _entered(t)
    t.message(PEER, _hello(), 2.0)
    _, events = _drain(t)
    assert events[0] == ZreExit(2.0, PEER, "pyre1", "restarted")
    assert isinstance(events[1], ZreEnter)


def test_port_zero_beacon_is_left_at_once() -> None:
    t = _table()
    _entered(t)
    t.beacon(Beacon(PEER, 0), "127.0.0.1", 0.3)
    actions, events = _drain(t)
    assert actions == [Disconnect(PEER)] and events == [ZreExit(0.3, PEER, "pyre1", "left")]
    t.beacon(Beacon(PEER, 0), "127.0.0.1", 0.4)  # unknown now: nothing
    assert _drain(t) == ([], [])


def test_silence_pings_once_then_expires_within_two_seconds() -> None:
    t = _table()
    _entered(t, now=10.0)
    t.tick(10.9)
    assert _drain(t) == ([], [])
    t.tick(11.0)
    actions, _ = _drain(t)
    assert [a.message.kind for a in actions if isinstance(a, Send)] == [m.PING]
    t.tick(11.2)
    assert _drain(t) == ([], [])  # pinged once
    t.tick(11.5)
    actions, events = _drain(t)
    assert events == [ZreExit(11.5, PEER, "pyre1", "expired")] and Disconnect(PEER) in actions


def test_any_message_or_beacon_keeps_a_peer() -> None:
    t = _table()
    _entered(t, now=0.0)
    for step in range(1, 20):
        t.beacon(Beacon(PEER, 5000), "127.0.0.1", step * 1.0)
        t.tick(step * 1.0 + 0.9)
    assert [p.uuid for p in t.listed()] == [PEER]


def test_a_new_uuid_on_the_same_endpoint_replaces_the_old() -> None:
    t = _table()
    _entered(t)
    t.beacon(Beacon(b"\x44" * 16, 5000), "127.0.0.1", 1.0)
    _, events = _drain(t)
    assert events == [ZreExit(1.0, PEER, "pyre1", "restarted")]


def test_beacons_go_to_each_interface_broadcast_or_to_pyres_loopback_group() -> None:
    from covey.runtime.net.interfaces import Interface
    from covey.runtime.zre.transport import LOOPBACK_GROUP, destinations

    eth = Interface("eth0", "10.77.0.3", "255.255.255.0", up=True, loopback=False)
    lo = Interface("lo", "127.0.0.1", "255.0.0.0", up=True, loopback=True)
    assert destinations([eth, lo], 5670) == [
        (eth, "10.77.0.255", 5670),
        (lo, LOOPBACK_GROUP, 5670),
    ]
