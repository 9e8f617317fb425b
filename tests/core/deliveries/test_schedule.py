"""The in-memory sorted set behind the scheduler."""

from __future__ import annotations

from covey.core.deliveries import MemorySchedule, Schedule


def _id(i: int) -> bytes:
    return i.to_bytes(16, "big")


def test_range_by_score_and_moves() -> None:
    s: Schedule = MemorySchedule()
    s.add(_id(1), 5.0)
    s.add(_id(2), 1.0)
    s.add(_id(3), 3.0)
    assert len(s) == 3 and s.next_due() == 1.0
    assert s.due(3.0) == [_id(2), _id(3)]
    assert s.due(3.0, limit=1) == [_id(2)]
    s.add(_id(2), 10.0)  # a reschedule moves it
    assert s.score(_id(2)) == 10.0 and s.next_due() == 3.0
    assert s.due(0.5) == []


def test_pop_claims_only_due_items_in_order() -> None:
    s = MemorySchedule([(_id(1), 2.0), (_id(2), 1.0), (_id(3), 9.0)])
    assert s.pop(0.5) is None
    assert s.pop(5.0) == _id(2)
    assert s.pop(5.0) == _id(1)
    assert s.pop(5.0) is None
    assert len(s) == 1 and s.score(_id(1)) is None


def test_ties_break_by_id_and_remove_is_lazy() -> None:
    s = MemorySchedule()
    for i in (3, 1, 2):
        s.add(_id(i), 1.0)
    s.remove(_id(1))
    s.remove(_id(7))  # absent: no error
    assert [s.pop(1.0), s.pop(1.0), s.pop(1.0)] == [_id(2), _id(3), None]
    assert s.next_due() is None and len(s) == 0


def test_many_moves_stay_consistent() -> None:
    s = MemorySchedule()
    for round_ in range(50):
        for i in range(10):
            s.add(_id(i), float(round_ * 10 + (i * 7) % 10))
    want = sorted(((_id(i), 490.0 + (i * 7) % 10) for i in range(10)), key=lambda kv: kv[1])
    assert len(s) == 10 and list(s) == want
    assert [s.pop(1e9) for _ in range(10)] == [item for item, _ in want]
