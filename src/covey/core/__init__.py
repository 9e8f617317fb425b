"""covey's pure protocol core: wire format, encryption, beacons, SWIM membership.

Nothing here reads a clock, opens a socket or draws its own random numbers: every entry
point takes ``now`` and every core takes an ``rng``. The asyncio runtime and the
simulator both drive the same :class:`Node`.
"""

from .config import TAGS_LIMIT, ConfigError, CoreConfig
from .events import (
    Event,
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberRecovered,
    MemberSuspect,
    MemberUpdated,
    TraceOp,
    TraceRecord,
)
from .extension import Extension, ExtensionEvent, ExtensionMessage
from .io import Datagram, StreamPurpose, StreamRequest
from .keyring import KeyError_, Keyring
from .member import MemberInfo
from .messages import MalformedMessage, register_message
from .node import Node
from .stats import NodeStatistics
from .types import Address, BeaconState, DropReason, MemberState, Rng
from .wire import MAX_DATAGRAM, MAX_STREAM_FRAME, STREAM_PREFIX_LEN

__all__ = [
    "MAX_DATAGRAM",
    "MAX_STREAM_FRAME",
    "STREAM_PREFIX_LEN",
    "TAGS_LIMIT",
    "Address",
    "BeaconState",
    "ConfigError",
    "CoreConfig",
    "Datagram",
    "DropReason",
    "Event",
    "Extension",
    "ExtensionEvent",
    "ExtensionMessage",
    "KeyError_",
    "Keyring",
    "MalformedMessage",
    "MemberEvent",
    "MemberFailed",
    "MemberInfo",
    "MemberJoined",
    "MemberLeft",
    "MemberReaped",
    "MemberRecovered",
    "MemberState",
    "MemberSuspect",
    "MemberUpdated",
    "Node",
    "NodeStatistics",
    "Rng",
    "StreamPurpose",
    "StreamRequest",
    "TraceOp",
    "TraceRecord",
    "register_message",
]
