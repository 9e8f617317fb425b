"""Selectors and stage specifications: parsing, clear errors, matching."""

from __future__ import annotations

import pytest

from covey.core.deliveries import Selector, SelectorError, StageSpec


def test_any_matches_everyone() -> None:
    s = Selector.parse(" any ")
    assert s.is_any and str(s) == "any"
    assert s.matches("n1", {}) and s.matches("n2", {"role": "db"})


def test_tag_selects_by_value() -> None:
    s = Selector.parse("role=db")
    assert s.tags == (("role", "db"),) and not s.is_any
    assert s.matches("n1", {"role": "db"})
    assert not s.matches("n1", {"role": "web"})
    assert not s.matches("role", {})


def test_name_and_list_are_a_union() -> None:
    s = Selector.parse("n3, role=db,n4,n3")
    assert s.names == ("n3", "n4") and s.tags == (("role", "db"),)
    assert str(s) == "role=db,n3,n4"
    assert Selector.parse(str(s)) == s
    assert s.matches("n3", {}) and s.matches("n9", {"role": "db"})
    assert not s.matches("n5", {"role": "web"})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("any,n1", "'any' cannot be part of a list"),
        ("role=", "empty value of tag 'role'"),
        ("=db", "empty tag name"),
        ("n1,,n2", "empty member name"),
        ("two words", "holds ' '"),
        ("x" * 200, "over 128 octets"),
    ],
)
def test_errors_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(SelectorError, match="selector") as err:
        Selector.parse(text)
    assert problem in str(err.value)


def test_stage_parse() -> None:
    s = StageSpec.parse("3:role=db", deadline=5.0)
    assert (s.required, str(s.selector), s.exclude_previous, s.deadline) == (
        3,
        "role=db",
        False,
        5.0,
    )
    x = StageSpec.parse("2!:any")
    assert x.exclude_previous and str(x) == "2!:any"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("3", "wants K:SELECTOR"),
        ("x:any", "'x' is not a number"),
        ("0:any", "at least 1 receipt"),
        ("999:any", "at most 256"),
        ("2:role=", "empty value"),
    ],
)
def test_stage_errors(text: str, problem: str) -> None:
    with pytest.raises(SelectorError) as err:
        StageSpec.parse(text)
    assert problem in str(err.value)


def test_stage_deadline_must_be_positive() -> None:
    with pytest.raises(SelectorError, match="positive"):
        StageSpec.parse("1:any", deadline=0)
