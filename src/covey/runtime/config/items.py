"""Settings given as lists or ``KEY=VALUE`` items, parsed without the configuration model.

:mod:`covey.runtime.config.sources` uses these for every source; ``covey tags --set``
uses :func:`parse_tags` too, and this module imports nothing of the protocol core, so that
the command starts without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from covey.runtime.config.errors import ConfigError


def as_list(value: object) -> list[Any]:
    """A list setting: a list or tuple as is, text split at commas, anything else alone."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def parse_tags(fname: str, value: object) -> dict[str, str]:
    """Parse a tag table, or ``KEY=VALUE`` items (a list, or comma-separated text)."""
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ConfigError(fname, "keys and values must be text")
            out[k] = v
        return out
    out = {}
    for item in as_list(value):
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(fname, f"{item!r} is not KEY=VALUE")
        k, _, v = item.partition("=")
        if not k:
            raise ConfigError(fname, f"{item!r} has an empty key")
        out[k] = v
    return out
