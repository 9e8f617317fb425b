"""Which members a stage asks: selectors (``any``, ``tag=value``, a name, a list) and stages.

A selector is parsed once, when a delivery is created, and every error names the problem
and the offending text (:class:`SelectorError`, a :class:`ValueError`), so bad input is
refused before anything is stored. Grammar::

    selector := "any" | term ("," term)*
    term     := KEY "=" VALUE     (a member whose tag KEY equals VALUE)
              | NAME              (the member called NAME)

A list is the union of its terms. ``any`` stands alone. Keys, values and names are made of
letters, digits and ``._-:/`` (no spaces, no ``,`` or ``=``), at most 128 octets each.
"""

from __future__ import annotations

from collections.abc import Mapping

from covey.core.records import record

#: Longest selector text accepted (it travels in every stored record).
SELECTOR_LIMIT = 1024
_WORD_LIMIT = 128
_WORD_EXTRA = frozenset("._-:/")


class SelectorError(ValueError):
    """A selector or stage specification that cannot be used; the message says why."""


def _check_word(word: str, what: str, whole: str) -> str:
    if not word:
        raise SelectorError(f"selector {whole!r}: empty {what}")
    if len(word.encode()) > _WORD_LIMIT:
        raise SelectorError(f"selector {whole!r}: {what} {word!r} is over {_WORD_LIMIT} octets")
    bad = [c for c in word if not (c.isalnum() or c in _WORD_EXTRA)]
    if bad:
        raise SelectorError(f"selector {whole!r}: {what} {word!r} holds {bad[0]!r}")
    return word


@record
class Selector:
    """A parsed selector: ``any``, or a union of tag terms and names.

    Attributes:
        text: the canonical text (parsing it again gives an equal selector).
        tags: ``(key, value)`` terms.
        names: member names.
    """

    text: str
    tags: tuple[tuple[str, str], ...] = ()
    names: tuple[str, ...] = ()

    @property
    def is_any(self) -> bool:
        """True for ``any``: every member matches."""
        return not self.tags and not self.names

    @classmethod
    def parse(cls, text: str) -> Selector:
        """Parse ``text``; raise :class:`SelectorError` naming the problem."""
        if not isinstance(text, str):
            raise SelectorError(f"selector {text!r}: not text")
        whole = text.strip()
        if not whole:
            raise SelectorError("selector '': empty (use 'any' for every member)")
        if len(whole.encode()) > SELECTOR_LIMIT:
            raise SelectorError(f"selector is over {SELECTOR_LIMIT} octets")
        if whole == "any":
            return cls("any")
        tags: list[tuple[str, str]] = []
        names: list[str] = []
        for raw in whole.split(","):
            term = raw.strip()
            if term == "any":
                raise SelectorError(f"selector {whole!r}: 'any' cannot be part of a list")
            if "=" in term:
                key, _, value = term.partition("=")
                _check_word(key.strip(), "tag name", whole)
                _check_word(value.strip(), f"value of tag {key.strip()!r}", whole)
                pair = (key.strip(), value.strip())
                if pair not in tags:
                    tags.append(pair)
            else:
                name = _check_word(term, "member name", whole)
                if name not in names:
                    names.append(name)
        canonical = ",".join([f"{k}={v}" for k, v in tags] + names)
        return cls(canonical, tuple(tags), tuple(names))

    def matches(self, name: str, tags: Mapping[str, str]) -> bool:
        """Whether a member called ``name`` with ``tags`` is selected."""
        if self.is_any:
            return True
        if name in self.names:
            return True
        return any(tags.get(k) == v for k, v in self.tags)

    def __str__(self) -> str:
        return self.text


@record
class StageSpec:
    """What one stage needs: ``required`` receipts from distinct members ``selector`` picks.

    Attributes:
        required: K, the receipts that complete the stage (at least 1).
        selector: which members may be asked.
        exclude_previous: do not ask members that answered an earlier stage.
        deadline: seconds a member has to answer one request of this stage, after which
            it is replaced; None uses the capability's default.
    """

    required: int
    selector: Selector
    exclude_previous: bool = False
    deadline: float | None = None

    def __post_init__(self) -> None:
        if type(self.required) is not int or self.required < 1:
            raise SelectorError(f"stage needs at least 1 receipt, not {self.required!r}")
        if self.required > MAX_REQUIRED:
            raise SelectorError(f"stage needs {self.required} receipts: at most {MAX_REQUIRED}")
        if self.deadline is not None and not self.deadline > 0:
            raise SelectorError(f"stage deadline must be positive, not {self.deadline!r}")

    @classmethod
    def parse(cls, text: str, *, deadline: float | None = None) -> StageSpec:
        """Parse ``K:SELECTOR[@DEADLINE]``.

        ``K!:SELECTOR`` excludes earlier stages' members; ``@10s`` (``500ms``, ``2m``,
        plain seconds) is this stage's deadline per request, else ``deadline``.
        """
        k, sep, rest = text.partition(":")
        if not sep:
            raise SelectorError(f"stage {text!r}: wants K:SELECTOR, e.g. 3:role=db")
        if "@" in rest:
            rest, _, when = rest.rpartition("@")
            deadline = parse_duration(when, f"stage {text!r}: deadline")
        exclude = k.endswith("!")
        k = k.removesuffix("!").strip()
        if not k.isdigit():
            raise SelectorError(f"stage {text!r}: {k!r} is not a number of receipts")
        return cls(int(k), Selector.parse(rest), exclude, deadline)

    def __str__(self) -> str:
        at = "" if self.deadline is None else f"@{self.deadline:g}s"
        return f"{self.required}{'!' if self.exclude_previous else ''}:{self.selector}{at}"


_UNITS = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))


def parse_duration(text: str, what: str) -> float:
    """``30``, ``30s``, ``500ms``, ``2m``, ``1h`` → seconds (positive, at most a week)."""
    t = text.strip().lower()
    scale = 1.0
    for unit, factor in _UNITS:
        if t.endswith(unit) and t[: -len(unit)][-1:].isdigit():
            t, scale = t[: -len(unit)], factor
            break
    try:
        value = float(t) * scale
    except ValueError:
        raise SelectorError(f"{what}: {text!r} is not a duration (30, 30s, 500ms, 2m)") from None
    if not 0 < value <= 7 * 86400:
        raise SelectorError(f"{what}: {text!r} must be more than 0 and at most 7 days")
    return value


#: Largest K of one stage (bounds every record and message).
MAX_REQUIRED = 256
#: Most stages one delivery may have.
MAX_STAGES = 16
