"""``@record`` behaves as ``@dataclass(frozen=True, slots=True)`` wherever it is looked at."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import InitVar, dataclass, field
from typing import Any, ClassVar

import pytest

from covey.core.records import record


def _both(frozen: bool = True) -> list[tuple[str, Any]]:
    """The same class body made by ``record`` and by ``dataclass``, side by side."""
    made = []
    for label, deco in (
        ("record", record(frozen=frozen)),
        ("dataclass", dataclass(frozen=frozen, slots=True)),
    ):

        class Point:
            """A point with a label, a default and a factory."""

            KIND: ClassVar[str] = "point"
            x: int
            y: float
            label: str = "p"
            tags: list[str] = field(default_factory=list)
            secret: bytes | None = field(default=None, repr=False, compare=False)

            def norm(self) -> float:
                return abs(self.x) + abs(self.y)

        made.append((label, deco(Point)))
    return made


@pytest.mark.parametrize("frozen", [True, False])
def test_the_generated_methods_match_dataclass(frozen: bool) -> None:
    (_, mine), (_, theirs) = _both(frozen)
    a, b = mine(1, 2.5, tags=["t"], secret=b"k"), theirs(1, 2.5, tags=["t"], secret=b"k")
    assert repr(a) == repr(b)
    assert repr(a).endswith(".Point(x=1, y=2.5, label='p', tags=['t'])")
    assert a == mine(1, 2.5, tags=["t"], secret=b"other")  # secret is not compared
    assert a != mine(2, 2.5, tags=["t"])
    assert (a == b) is False  # different classes never compare equal
    assert a.__eq__(1) is NotImplemented
    assert str(inspect.signature(mine)) == str(inspect.signature(theirs))
    assert mine.__match_args__ == theirs.__match_args__ == ("x", "y", "label", "tags", "secret")
    assert mine.__slots__ == theirs.__slots__
    assert not hasattr(a, "__dict__")
    assert mine.KIND == "point" and a.norm() == 3.5
    assert [f.name for f in dataclasses.fields(a)] == [f.name for f in dataclasses.fields(b)]
    assert dataclasses.asdict(a) == dataclasses.asdict(b)
    assert dataclasses.astuple(a) == dataclasses.astuple(b)
    assert dataclasses.is_dataclass(a) and dataclasses.is_dataclass(mine)
    assert dataclasses.replace(a, x=7) == mine(7, 2.5, tags=["t"], secret=b"k")
    assert mine(1, 2).tags is not mine(1, 2).tags  # a fresh list per instance
    match a:
        case mine(x, y):  # type: ignore[misc]
            assert (x, y) == (1, 2.5)
        case _:
            pytest.fail("positional match failed")
    if frozen:
        c, d = mine(1, 2.5, tags=("t",)), theirs(1, 2.5, tags=("t",))
        assert hash(c) == hash(d) == hash((1, 2.5, "p", ("t",)))
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'x'"):
            a.x = 3
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'x'"):
            del a.x
    else:
        assert mine.__hash__ is None and theirs.__hash__ is None
        a.x = 3
        assert a.x == 3


@pytest.mark.parametrize("frozen", [True, False])
def test_instances_pickle_and_copy(frozen: bool) -> None:
    global Point  # pickle finds a class by its module-level name
    (_, Point), _ = _both(frozen)
    Point.__qualname__ = "Point"
    a = Point(1, 2.5, "q", ["t"], b"s")
    for other in (pickle.loads(pickle.dumps(a)), copy.copy(a), copy.deepcopy(a)):
        assert other == a and other.secret == b"s" and type(other) is Point


def test_post_init_inheritance_and_one_field() -> None:
    class Base:
        """Not a dataclass: a plain base, as ``Effect`` and ``ArrayMessage`` are."""

        def describe(self) -> str:
            return type(self).__name__

    @record
    class Checked(Base):
        """Refuses a negative size."""

        size: int

        def __post_init__(self) -> None:
            if self.size < 0:
                raise ValueError("size must be >= 0")

    assert Checked(3).describe() == "Checked" and hash(Checked(3)) == hash((3,))
    with pytest.raises(ValueError, match="size must be >= 0"):
        Checked(-1)

    @record
    class Parent:
        """A record with a default."""

        a: int
        b: int = 2

    @record
    class Child(Parent):
        """Adds a field after the parent's."""

        c: int = 3

    assert Child(1) == Child(1, 2, 3) and repr(Child(1)).endswith("Child(a=1, b=2, c=3)")
    assert Child.__match_args__ == ("a", "b", "c") and Child.__slots__ == ("c",)


def test_what_dataclass_refuses_is_refused() -> None:
    with pytest.raises(TypeError, match="non-default argument 'b' follows default"):

        @record
        class Bad:
            a: int = 1
            b: int

    with pytest.raises(ValueError, match="mutable default"):

        @record
        class Mutable:
            a: list[int] = []

    @record
    class WithInitVar:
        """Handed to dataclass, which knows InitVar."""

        a: int
        scale: InitVar[int] = 1

        def __post_init__(self, scale: int) -> None:
            object.__setattr__(self, "a", self.a * scale)

    assert WithInitVar(2, scale=3).a == 6


def test_init_is_compiled_on_first_use() -> None:
    """A record's ``__init__`` is compiled only when first needed, then is a plain
    function on the class; a signature asked for before any instance is the real one,
    and a record's subclass made before that still gets its own compiled ``__init__``."""

    @record
    class Lazy:
        a: int
        b: str = "x"

    @record
    class Later(Lazy):
        c: float = 0.5

    assert not inspect.isfunction(Lazy.__dict__["__init__"])
    assert str(inspect.signature(Lazy)) == "(a: 'int', b: 'str' = 'x') -> None"
    assert inspect.isfunction(Lazy.__dict__["__init__"])
    assert not inspect.isfunction(Later.__dict__["__init__"])
    made = Later(1, c=2.0)
    assert (made.a, made.b, made.c) == (1, "x", 2.0)
    assert inspect.isfunction(Later.__dict__["__init__"])
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'a'"):
        Later()  # type: ignore[call-arg]
