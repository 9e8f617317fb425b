"""``@record``: ``@dataclass(frozen=True, slots=True)`` at a fifth of its import cost.

Defining a dataclass costs Python 3.11 about 1.3 ms: it writes the source of
``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__`` and ``__delattr__``
and compiles each with its own ``exec``, then builds the class a second time for its
``__slots__``. No bytecode cache keeps that work, and covey defines about a hundred of
them before its first datagram, so it was a third of the agent's start-up. A record
compiles only ``__init__`` (one ``exec``; its signature must be real), and only when it
is first used; it builds its other methods as closures over the field names, and
creates the slotted class once.

The result is a dataclass in every way the rest of the program looks at:
``dataclasses.fields``, ``replace``, ``asdict``, ``astuple`` and ``is_dataclass`` work,
``__match_args__`` is set, equality and hashing compare the same field tuples (so set
and dict order is what it was), frozen instances refuse assignment with
``FrozenInstanceError``, pickling and copying work. Anything the fast path does not
cover (``InitVar``, ``KW_ONLY``, keyword-only fields, a mutable default, a class that
defines its own ``__setattr__``) is handed to :func:`dataclasses.dataclass` unchanged,
so a record is never less correct than a dataclass.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import reprlib
import types
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, dataclass_transform, get_origin, overload

T = TypeVar("T", bound=type)

_MISSING: Any = dataclasses.MISSING
# fields() and replace() keep only the fields whose _field_type is this sentinel; it has
# been the same object, under this name, since dataclasses appeared (3.7).
_FIELD: Any = getattr(dataclasses, "_FIELD")  # noqa: B009 (not in the type stubs)
_FIELD_CLASSVAR: Any = getattr(dataclasses, "_FIELD_CLASSVAR")  # noqa: B009
_CLASSVAR_TEXT = re.compile(r"^\s*(?:typing\.|t\.)?ClassVar\b")
_SPECIAL_TEXT = re.compile(r"^\s*(?:dataclasses\.)?(?:InitVar|KW_ONLY)\b")


class _Factory:
    """The default an ``__init__`` shows for a field made by a factory."""

    def __repr__(self) -> str:
        return "<factory>"


_HAS_FACTORY = _Factory()


class _Unsupported(Exception):
    """The class needs something only :func:`dataclasses.dataclass` does."""


@overload
def record(cls: T, /) -> T: ...
@overload
def record(*, frozen: bool = True, eq: bool = True) -> Callable[[T], T]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: Any = None, /, *, frozen: bool = True, eq: bool = True) -> Any:
    """Make ``cls`` a slotted dataclass, frozen unless ``frozen=False``."""

    def wrap(c: T) -> T:
        try:
            return _build(c, frozen=frozen, eq=eq)
        except _Unsupported:
            made: Any = dataclasses.dataclass(frozen=frozen, eq=eq, slots=True)(c)
            return made  # type: ignore[no-any-return]

    return wrap if cls is None else wrap(cls)


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        if _SPECIAL_TEXT.match(annotation):
            raise _Unsupported
        return _CLASSVAR_TEXT.match(annotation) is not None
    if annotation is dataclasses.KW_ONLY or isinstance(annotation, dataclasses.InitVar):
        raise _Unsupported
    return annotation is ClassVar or get_origin(annotation) is ClassVar


def _own_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields ``cls`` declares itself, in order, as the dataclass module makes them."""
    out = []
    # Only the class's own annotations, as dataclass reads them (a base's are its fields).
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        default = cls.__dict__.get(name, _MISSING)
        if isinstance(default, dataclasses.Field):
            f = default
            if f.kw_only not in (_MISSING, False):
                raise _Unsupported
        else:
            f = dataclasses.field(default=default)
        if f.default is not _MISSING and type(f.default).__hash__ is None:
            raise _Unsupported  # a mutable default: dataclass raises its own ValueError
        f.name = name
        f.type = annotation
        f.kw_only = False
        f._field_type = _FIELD_CLASSVAR if _is_classvar(annotation) else _FIELD  # type: ignore[attr-defined]
        out.append(f)
    return out


def _init_source(fields: list[dataclasses.Field[Any]], frozen: bool, post_init: bool) -> str:
    """The source of a function that returns ``__init__`` given the defaults."""
    params, body = ["self"], []
    for f in fields:
        value = f.name
        if f.default_factory is not _MISSING:
            value = f"__factory_{f.name}() if {f.name} is __has_factory else {f.name}"
            if not f.init:
                value = f"__factory_{f.name}()"
        elif not f.init:
            if f.default is _MISSING:
                continue
            value = f"__default_{f.name}"
        if f.init:
            if f.default is not _MISSING:
                params.append(f"{f.name}=__default_{f.name}")
            elif f.default_factory is not _MISSING:
                params.append(f"{f.name}=__has_factory")
            else:
                params.append(f.name)
        if frozen:
            body.append(f"  __set(self, {f.name!r}, {value})")
        else:
            body.append(f"  self.{f.name} = {value}")
    if post_init:
        body.append("  self.__post_init__()")
    body = body or ["  pass"]
    names = ["__set", "__has_factory"]
    for f in fields:
        names += [f"__default_{f.name}", f"__factory_{f.name}"]
    head = f"def __make__({', '.join(names)}):\n def __init__({', '.join(params)}):\n"
    return head + "\n".join(body) + "\n return __init__\n"


def _check_order(fields: list[dataclasses.Field[Any]]) -> None:
    """Refuse what ``dataclass`` refuses when the class is defined, as it does: a field
    without a default after one with (``__init__`` is compiled later, on first use)."""
    seen_default = False
    for f in fields:
        if not f.init:
            continue
        if f.default is not _MISSING or f.default_factory is not _MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")


def _make_init(cls: type, fields: list[dataclasses.Field[Any]], frozen: bool) -> Any:
    source = _init_source(fields, frozen, hasattr(cls, "__post_init__"))
    namespace: dict[str, Any] = {}
    exec(source, {}, namespace)
    args: list[Any] = [object.__setattr__, _HAS_FACTORY]
    for f in fields:
        args += [f.default, f.default_factory]
    init = namespace["__make__"](*args)
    init.__annotations__ = {f.name: f.type for f in fields if f.init} | {"return": None}
    return init


class _LazyInit:
    """A record's ``__init__`` until it is first needed: compiling it is most of what a
    record costs to define (about 0.4 ms), and most message classes are not made in the
    first second of an agent, or ever in a short CLI command. The first call, or the
    first look at ``cls.__init__`` (``inspect.signature`` included), compiles it and
    puts it on the class in its place."""

    __slots__ = ("_cls", "_fields", "_frozen")

    def __init__(self, cls: type, fields: list[dataclasses.Field[Any]], frozen: bool) -> None:
        self._cls, self._fields, self._frozen = cls, fields, frozen

    def real(self) -> Any:
        """The compiled ``__init__``, now the class's own."""
        own = self._cls.__dict__["__init__"]
        if own is not self:  # compiled already (by another caller, or another thread)
            return own
        init = _make_init(self._cls, self._fields, self._frozen)
        init.__qualname__ = f"{self._cls.__qualname__}.__init__"
        type.__setattr__(self._cls, "__init__", init)
        return init

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        return self.real().__get__(obj, owner)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.real()(*args, **kwargs)


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving an instance's values of ``names`` as a tuple (also for 0 or 1)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    return operator.attrgetter(*names)


def _methods(
    cls: type, fields: list[dataclasses.Field[Any]], frozen: bool, eq: bool
) -> dict[str, Any]:
    shown = tuple(f.name for f in fields if f.repr)
    compared = _getter(tuple(f.name for f in fields if f.compare))
    hashed = _getter(tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash)))
    names = frozenset(f.name for f in fields)
    out: dict[str, Any] = {}

    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in shown)
        return f"{self.__class__.__qualname__}({inner})"

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return compared(self) == compared(other)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(hashed(self))

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        object.__delattr__(self, name)

    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, f.name) for f in fields]

    def __setstate__(self: Any, state: list[Any]) -> None:
        for f, value in zip(fields, state, strict=False):
            object.__setattr__(self, f.name, value)

    own = cls.__dict__
    candidates: dict[str, Any] = {"__repr__": __repr__}
    if eq:
        candidates["__eq__"] = __eq__
    if frozen:
        candidates.update(__setattr__=__setattr__, __delattr__=__delattr__)
        candidates.update(__getstate__=__getstate__, __setstate__=__setstate__)
    for name, fn in candidates.items():
        if name not in own:
            fn.__qualname__ = f"{cls.__qualname__}.{name}"
            out[name] = fn
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    if eq and not explicit_hash:
        if frozen:
            __hash__.__qualname__ = f"{cls.__qualname__}.__hash__"
            out["__hash__"] = __hash__
        else:
            out["__hash__"] = None
    return out


def _build(cls: T, *, frozen: bool, eq: bool) -> T:
    if "__slots__" in cls.__dict__:
        raise _Unsupported  # dataclass refuses a class with its own __slots__
    plain = [c for c in cls.__mro__[:-1] if "__dataclass_fields__" not in c.__dict__]
    if frozen and any("__setattr__" in c.__dict__ or "__delattr__" in c.__dict__ for c in plain):
        raise _Unsupported  # dataclass refuses these, or chains to a base's, with super()
    by_name: dict[str, dataclasses.Field[Any]] = {}
    inherited_slots: set[str] = set()
    for base in cls.__mro__[-1:0:-1]:
        base_fields = base.__dict__.get("__dataclass_fields__")
        if base_fields is not None:
            if base.__dict__["__dataclass_params__"].frozen != frozen:
                raise _Unsupported  # dataclass names the mismatch
            by_name.update(base_fields)
        slots = base.__dict__.get("__slots__", ())
        inherited_slots.update((slots,) if isinstance(slots, str) else slots)
    for f in _own_fields(cls):
        by_name[f.name] = f
    fields = [f for f in by_name.values() if f._field_type is _FIELD]  # type: ignore[attr-defined]
    _check_order(fields)

    namespace = dict(cls.__dict__)
    for f in fields:
        namespace.pop(f.name, None)  # a default lives in __init__; a slot cannot share a name
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    namespace["__slots__"] = tuple(f.name for f in fields if f.name not in inherited_slots)
    namespace["__dataclass_fields__"] = by_name
    namespace["__dataclass_params__"] = types.SimpleNamespace(
        init=True,
        repr=True,
        eq=eq,
        order=False,
        unsafe_hash=False,
        frozen=frozen,
        match_args=True,
        kw_only=False,
        slots=True,
        weakref_slot=False,
    )
    if "__match_args__" not in namespace:
        namespace["__match_args__"] = tuple(f.name for f in fields if f.init)
    if not namespace.get("__doc__"):
        namespace["__doc__"] = f"{cls.__name__}({', '.join(f.name for f in fields)})"
    new = type(cls)(cls.__name__, cls.__bases__, namespace)
    new.__qualname__ = cls.__qualname__
    if "__init__" not in cls.__dict__:
        type.__setattr__(new, "__init__", _LazyInit(new, fields, frozen))
    for name, fn in _methods(new, fields, frozen, eq).items():
        type.__setattr__(new, name, fn)
    return new
