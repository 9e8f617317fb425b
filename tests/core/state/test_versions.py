"""Cluster versions: numeric comparison by component, refusal reasons, the lowest version."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.core.state.versions import VersionError, compare_versions, lowest_version, parse_version


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("4.12", "4.12.0", 0),
        ("4.12", "4.13", -1),
        ("4.9", "4.12", -1),  # numeric, not lexical
        ("10.0", "9.99", 1),
        ("9000000", "4.12", 1),
        ("9000000", "9000000", 0),
        (" 7 ", "7", 0),
    ],
)
def test_versions_compare_numerically_by_component(a: str, b: str, want: int) -> None:
    assert compare_versions(a, b) == want


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("4.x", "not a number"),
        ("-1", "not a number"),
        ("1..2", "empty component"),
        ("1.", "empty component"),
        ("v4", "not a number"),
        ("١٢", "not a number"),  # non-ASCII digits
        (".".join(["1"] * 9), "more than"),
        ("1" * 19, "too long"),
    ],
)
def test_garbage_versions_are_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(VersionError, match=why):
        parse_version(text)


def test_lowest_version_is_unknown_while_any_is_missing_or_invalid() -> None:
    assert lowest_version(["4.13", "4.12.1", "5"]) == "4.12.1"
    assert lowest_version(["4.13", None]) is None
    assert lowest_version(["4.13", "junk"]) is None
    assert lowest_version([]) is None


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=4), st.integers(0, 10**6))
def test_version_order_matches_tuple_order(parts: list[int], extra: int) -> None:
    text = ".".join(map(str, parts))
    assert compare_versions(text, text + ".0") == 0
    bumped = ".".join(map(str, [*parts[:-1], parts[-1] + 1 + extra]))
    assert compare_versions(text, bumped) == -1
