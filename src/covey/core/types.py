"""Small shared types of the pure core: addresses, member states, the rng protocol."""

from __future__ import annotations

import enum
from collections.abc import MutableSequence
from typing import Protocol, TypeVar

T = TypeVar("T")

#: A transport address: (host, port). The core never resolves or connects; it only echoes these.
Address = tuple[str, int]


def format_address(address: Address) -> str:
    """``HOST:PORT`` as people and parsers read it: ``[HOST]:PORT`` for an IPv6 host."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Rng(Protocol):
    """The randomness a core needs; ``random.Random`` satisfies it.

    The core never imports :mod:`random`: the caller passes a generator, so a simulation
    seeded once replays exactly.
    """

    def random(self) -> float: ...

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int: ...

    def shuffle(self, x: MutableSequence[T]) -> None: ...


class MemberState(enum.IntEnum):
    """What this node believes about a member."""

    ALIVE = 0
    SUSPECT = 1
    FAILED = 2
    LEFT = 3

    @property
    def label(self) -> str:
        """Lower-case name used by the CLI and HTTP API."""
        return self.name.lower()


class BeaconState(enum.IntEnum):
    """The one-octet state carried by discovery beacons (seed 004)."""

    INIT = 0
    READY = 1
    EXIT = 2
    LEAVING = 3


class DropReason(enum.Enum):
    """Why an inbound datagram or stream frame was dropped; counted per reason."""

    TRUNCATED = "truncated"
    OVERSIZED = "oversized"
    BAD_MAGIC = "bad_magic"
    UNKNOWN_VERSION = "unknown_version"
    BAD_FRAME_TYPE = "bad_frame_type"
    PLAINTEXT_REFUSED = "plaintext_refused"
    ENCRYPTED_UNEXPECTED = "encrypted_unexpected"
    BAD_KEY = "bad_key"
    STALE = "stale"
    DUPLICATE = "duplicate"
    MALFORMED = "malformed"
    FOREIGN_CLUSTER = "foreign_cluster"
    UNKNOWN_MESSAGE = "unknown_message"
    MISDIRECTED = "misdirected"
    FROM_SELF = "from_self"
    AFTER_LEAVE = "after_leave"
