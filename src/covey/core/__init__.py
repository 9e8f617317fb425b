"""covey's pure protocol core: wire format, encryption, beacons, SWIM membership.

Nothing here reads a clock, opens a socket or draws its own random numbers: every entry
point takes ``now`` and every core takes an ``rng``. The asyncio runtime and the
simulator both drive the same :class:`Node`.
"""

from covey.core.config import TAGS_LIMIT, ConfigError, CoreConfig
from covey.core.crypto.keyring import KeyError_, Keyring
from covey.core.effects import Datagram, StreamPurpose, StreamRequest
from covey.core.events import (
    Event,
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberRecovered,
    MemberSuspect,
    MemberUpdated,
    NameConflict,
    TraceOp,
    TraceRecord,
)
from covey.core.member import MemberInfo
from covey.core.membership.node import Node
from covey.core.membership.stats import NodeStatistics
from covey.core.plugin import Extension, ExtensionEvent, ExtensionMessage
from covey.core.types import (
    Address,
    BeaconState,
    DropReason,
    MemberState,
    Rng,
    format_address,
)
from covey.core.wire.frame import MAX_DATAGRAM, MAX_STREAM_FRAME, STREAM_PREFIX_LEN
from covey.core.wire.messages import MalformedMessage, MessageTypes

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
    "MessageTypes",
    "NameConflict",
    "Node",
    "NodeStatistics",
    "Rng",
    "StreamPurpose",
    "StreamRequest",
    "TraceOp",
    "TraceRecord",
    "format_address",
]
