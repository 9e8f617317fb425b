"""members / stable / timeline on synthetic records (no process, no socket)."""

from __future__ import annotations

from typing import Any

from covey.runtime.collector import views

from .collector_helpers import NODES, SKEW, node_id, record, story

T0 = 1_700_000_000.0


def stored(s: Any) -> list[dict[str, Any]]:
    """The story's records as the store returns them: each sender's offset undoes its skew
    (plus 5 ms of network delay)."""
    out = []
    for node in NODES:
        for rec in s.records[node]:
            out.append({**rec, "offset": 0.005 - SKEW.get(node, 0.0)})
    return out


def test_a_node_reported_failed_by_its_four_survivors_is_failed() -> None:
    result = {m["name"]: m for m in views.members(stored(story(T0)))}
    assert [result[n]["state"] for n in NODES] == ["alive"] * 4 + ["failed"]
    e = result["e"]
    assert e["reported_by"] == ["a", "b", "c", "d"] and e["node_id"] == node_id("e")
    assert abs(e["since"] - (T0 + 13.105)) < 1e-6 and e["incarnation"] == 0
    # Each joiner says it joined; those already in see it alive.
    assert result["a"]["reported_by"] == ["a"]
    assert result["d"]["reported_by"] == ["a", "b", "c", "d"]


def test_the_latest_report_decides_and_since_is_when_the_reports_turned() -> None:
    recs = [
        record("a", 1, 10.0, "join", members=2),
        record("b", 1, 10.0, "join", members=2),
        record("a", 2, 20.0, "suspect", subject="b", n=3),
        record("b", 2, 21.0, "refute", n=4),  # b refutes: alive again, at 21
        record("a", 3, 21.5, "alive", subject="b", n=4),
        record("b", 3, 30.0, "exit"),  # then b leaves
        record("a", 4, 30.2, "left", subject="b", n=4),
        record("c", 1, 12.0, "probe"),  # c only says something else
    ]
    by = {m["name"]: m for m in views.members(recs[:5])}
    assert by["b"]["state"] == "alive" and by["b"]["since"] == 21.0
    assert by["b"]["incarnation"] == 4 and by["b"]["reported_by"] == ["a", "b"]
    by = {m["name"]: m for m in views.members(recs)}
    assert by["b"]["state"] == "left" and by["b"]["since"] == 30.0
    assert by["b"]["reported_by"] == ["a", "b"]
    assert by["a"]["state"] == "alive" and by["a"]["incarnation"] == 0  # its join's
    assert by["c"]["state"] == "alive" and by["c"]["incarnation"] is None  # only implied
    assert by["c"]["since"] == 12.0 and by["c"]["reported_by"] == ["c"]


def test_a_subject_named_without_an_id_is_the_member_with_that_name() -> None:
    recs = [record("a", 1, 1.0, "join"), record("b", 1, 1.0, "join")]
    recs.append({**record("a", 2, 5.0, "failed"), "subject": "b", "subject_id": None})
    by = {m["name"]: m for m in views.members(recs)}
    assert len(by) == 2 and by["b"]["state"] == "failed" and by["b"]["node_id"] == node_id("b")
    unknown = [{**record("a", 3, 6.0, "suspect"), "subject": "z", "subject_id": None}]
    z = [m for m in views.members(recs + unknown) if m["name"] == "z"]
    assert z == [{"name": "z", "node_id": None, "state": "suspect", "incarnation": 0,
                  "since": 6.0, "reported_by": ["a"]}]  # fmt: skip


def test_the_story_is_stable_once_the_failure_is_old_enough() -> None:
    recs = stored(story(T0))
    answer = views.stable(recs, now=T0 + 30, window=5.0)
    assert answer["stable"] and answer["why"] == ""
    assert answer["leader"] == "a" and answer["size"] == 4
    assert {v["node"] for v in answer["views"]} == {"a", "b", "c", "d"}  # e is failed
    assert abs(answer["since"] - (T0 + 13.405)) < 1e-6  # d's word, the last to change
    early = views.stable(recs, now=T0 + 15, window=5.0)
    assert not early["stable"] and early["why"] == "last change 1.6 s ago (< 5 s)"
    assert early["leader"] == "a" and early["size"] == 4


def test_disagreement_is_not_stable_and_says_who_disagrees() -> None:
    recs = [
        record("x", 1, 1.0, "join", leader="x", members=3),
        record("y", 1, 1.0, "join", leader="x", members=3),
        record("z", 1, 1.0, "join", leader="z", members=2),
    ]
    answer = views.stable(recs, now=100.0, window=5.0)
    assert not answer["stable"] and answer["leader"] is None and answer["size"] is None
    assert answer["why"] == "leaders differ: x (x, y); z (z); sizes differ: 2 (z); 3 (x, y)"
    no_leader = [record(n, 1, 1.0, "join", members=2) for n in "xy"]
    assert views.stable(no_leader, now=100.0, window=5.0)["why"] == "no leader"
    assert views.stable([], now=100.0, window=5.0)["why"] == "no agent has reported"
    # z comes round at 50: agreed from then on, stable 5 s later.
    recs.append(record("z", 2, 50.0, "leader_delta", leader="x", members=3))
    assert not views.stable(recs, now=54.0, window=5.0)["stable"]
    assert views.stable(recs, now=55.0, window=5.0)["stable"]


def test_timeline_orders_by_corrected_time_and_filters() -> None:
    s = story(T0)
    recs = stored(s)
    whole = views.timeline(recs)
    truth = [r for _, r in sorted(s.truth, key=lambda tr: tr[0])]
    assert [(r["node"], r["seq"]) for r in whole] == [(r["node"], r["seq"]) for r in truth]
    # Without the offsets c's records would land 3 s late: the order would differ.
    raw = views.timeline([{**r, "offset": 0.0} for r in recs])
    assert [(r["node"], r["seq"]) for r in raw] != [(r["node"], r["seq"]) for r in truth]
    about_e = views.timeline(recs, node="e")
    assert all("e" in (r["node"], r["subject"]) for r in about_e)
    assert views.timeline(recs, node=node_id("e")) == about_e
    late = views.timeline(recs, since=T0 + 13.0)
    assert [r["op"] for r in late] == ["failed"] * 4 + ["leader_heart"] * 3
    assert views.timeline(recs, since=T0 + 13.0, limit=2) == late[:2]


def test_ties_are_broken_by_node_boot_and_sequence() -> None:
    recs = [
        record("b", 2, 5.0, "probe", offset=0.0),
        record("b", 1, 5.0, "probe", offset=0.0),
        record("a", 7, 4.0, "probe", offset=1.0),
        record("a", 1, 5.0, "probe", boot=2000.0, offset=0.0),
    ]
    got = [(r["node"], r["boot"], r["seq"]) for r in views.timeline(recs)]
    assert got == [("a", 1000.0, 7), ("a", 2000.0, 1), ("b", 1000.0, 1), ("b", 1000.0, 2)]
