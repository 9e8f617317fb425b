"""Software versions as nodes publish them, and the lowest version of a cluster (seed 000).

A version is text: an integer (``9000000``, as seed 000's ``hap.version`` holds) or dotted
integers (``4.12``, ``4.12.3``). Versions compare component by component as integers,
missing trailing components counting as zero, so ``4.12 == 4.12.0 < 4.13 < 10.0`` and
``9000000 > 4.12``. Anything else (``4.x``, ``-1``, ``1..2``, an empty string) is refused
with :class:`VersionError` naming what is wrong, so a typo never silently becomes the
cluster's lowest version.

The lowest version is what backward-compatibility code switches features on: a feature
that needs version V is safe when ``lowest >= V``. It is computed over the live members
only (optionally counting failed members that have not left, whose return is possible),
and it is ``None`` — unknown, so no feature switches on — while any counted member has
not published a valid version yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import total_ordering

#: The well-known fact that carries a node's software version (kept here, with the
#: parser, so that the CLI can check a version fact without loading the capability).
VERSION_KEY = "covey.version"
#: Most dotted components a version may have.
MAX_COMPONENTS = 8
#: Most digits of one component.
MAX_DIGITS = 18


class VersionError(ValueError):
    """Version text that is not an integer or dotted integers; the message says why."""


@total_ordering
class Version:
    """A parsed, comparable version; ``str()`` gives back the text it was parsed from."""

    __slots__ = ("key", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.key = parse_version(text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.key == other.key

    def __lt__(self, other: Version) -> bool:
        return self.key < other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


def parse_version(text: object) -> tuple[int, ...]:
    """The comparison key of a version text (trailing zero components dropped).

    Raises:
        VersionError: not text, empty, too long, or not digits separated by single dots.
    """
    if not isinstance(text, str):
        raise VersionError(f"version must be text, not {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise VersionError("version is empty")
    parts = stripped.split(".")
    if len(parts) > MAX_COMPONENTS:
        raise VersionError(f"version {text!r} has more than {MAX_COMPONENTS} components")
    key: list[int] = []
    for part in parts:
        if not part:
            raise VersionError(f"version {text!r} has an empty component")
        if not (part.isascii() and part.isdigit()):
            raise VersionError(f"version {text!r}: component {part!r} is not a number")
        if len(part) > MAX_DIGITS:
            raise VersionError(f"version {text!r}: component {part!r} is too long")
        key.append(int(part))
    while len(key) > 1 and key[-1] == 0:
        key.pop()
    return tuple(key)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is lower than, equal to or higher than ``b``."""
    ka, kb = parse_version(a), parse_version(b)
    return (ka > kb) - (ka < kb)


def lowest_version(versions: Iterable[str | None]) -> str | None:
    """The lowest of ``versions``; None when there are none, or any is missing or invalid."""
    best: tuple[tuple[int, ...], str] | None = None
    for text in versions:
        if text is None:
            return None
        try:
            key = parse_version(text)
        except VersionError:
            return None
        if best is None or key < best[0]:
            best = (key, text.strip())
    return None if best is None else best[1]
