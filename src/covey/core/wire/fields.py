"""Checked array forms for extension messages: one checker per field, no hand-written codec.

An :class:`ArrayMessage` is a frozen dataclass whose msgpack array is its fields in
declaration order. ``FIELDS`` gives one checker per field; ``from_array`` runs them and
raises :class:`~covey.core.wire.messages.MalformedMessage` naming the first bad field, so a
malformed datagram is dropped and counted, never half-applied. Checkers are plain
functions ``check(value, what) -> value`` built from the helpers below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Self

from covey.core.plugin import ExtensionMessage
from covey.core.wire.messages import NODE_ID_LEN, MalformedMessage

Check = Callable[[Any, str], Any]

#: Largest unsigned integer accepted (fits msgpack's signed 64-bit range).
UINT_LIMIT = 1 << 63


def uint(v: Any, what: str) -> int:
    """An unsigned integer below 2^63 (a boolean is refused)."""
    if type(v) is not int or not 0 <= v < UINT_LIMIT:
        raise MalformedMessage(f"{what}: not an unsigned integer")
    return v


def uint64(v: Any, what: str) -> int:
    """An unsigned integer below 2^64 (fingerprints)."""
    if type(v) is not int or not 0 <= v < 1 << 64:
        raise MalformedMessage(f"{what}: not a 64-bit unsigned integer")
    return v


def boolean(v: Any, what: str) -> bool:
    """A msgpack boolean (an integer is refused)."""
    if type(v) is not bool:
        raise MalformedMessage(f"{what}: not a boolean")
    return v


def node_id(v: Any, what: str) -> bytes:
    """A node (or action) id: exactly 16 octets."""
    if type(v) is not bytes or len(v) != NODE_ID_LEN:
        raise MalformedMessage(f"{what}: not a node id")
    return v


def text(limit: int) -> Check:
    """Text of at most ``limit`` octets of UTF-8."""

    def check(v: Any, what: str) -> str:
        if type(v) is not str or len(v.encode()) > limit:
            raise MalformedMessage(f"{what}: not text of at most {limit} octets")
        return v

    return check


def one_of(*choices: str) -> Check:
    """One of the given words."""

    def check(v: Any, what: str) -> str:
        if type(v) is not str or v not in choices:
            raise MalformedMessage(f"{what}: unknown")
        return v

    return check


def optional(inner: Check) -> Check:
    """``inner``, or nil."""

    def check(v: Any, what: str) -> Any:
        return None if v is None else inner(v, what)

    return check


def row(*checks: Check) -> Check:
    """A fixed-length array, each item checked in turn; gives a tuple."""

    def check(v: Any, what: str) -> tuple[Any, ...]:
        if type(v) is not list or len(v) != len(checks):
            raise MalformedMessage(f"{what}: wants {len(checks)} items")
        return tuple(c(x, what) for c, x in zip(checks, v, strict=True))

    return check


def list_of(inner: Check, limit: int) -> Check:
    """An array of at most ``limit`` items, each checked by ``inner``; gives a tuple."""

    def check(v: Any, what: str) -> tuple[Any, ...]:
        if type(v) is not list or len(v) > limit:
            raise MalformedMessage(f"{what}: not a list of at most {limit} items")
        return tuple(inner(x, what) for x in v)

    return check


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


class ArrayMessage(ExtensionMessage):
    """An extension message whose array is its dataclass fields, checked by ``FIELDS``.

    Subclasses are ``@record``, set ``TYPE`` and give one
    checker per field in ``FIELDS`` (same order as the fields).
    """

    FIELDS: ClassVar[tuple[Check, ...]] = ()

    def to_array(self) -> list[Any]:
        """The fields in order (tuples become arrays)."""
        return [_plain(getattr(self, f.name)) for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    @classmethod
    def from_array(cls, fields: list[Any]) -> Self:
        """Check every field; raise MalformedMessage naming the first bad one."""
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        if type(fields) is not list or len(fields) != len(names):
            raise MalformedMessage(f"{cls.__name__} wants {len(names)} fields")
        checked = [c(v, n) for c, n, v in zip(cls.FIELDS, names, fields, strict=True)]
        return cls(*checked)
