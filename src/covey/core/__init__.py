"""covey's pure protocol core: wire format, encryption, beacons, SWIM membership.

Nothing here reads a clock, opens a socket or draws its own random numbers: every entry
point takes ``now`` and every core takes an ``rng``. The asyncio runtime and the
simulator both drive the same :class:`Node`.

Every name here is loaded on first use (PEP 562), so that a module deep in the core
(``covey.core.state.messages``, say) can be imported without all of it: the CLI's
``covey set`` checks a fact that way without loading the node, the cipher and the election.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "Address": "covey.core.types",
    "BeaconState": "covey.core.types",
    "ConfigError": "covey.core.config",
    "CoreConfig": "covey.core.config",
    "Datagram": "covey.core.effects",
    "DropReason": "covey.core.types",
    "Event": "covey.core.events",
    "Extension": "covey.core.plugin",
    "ExtensionEvent": "covey.core.plugin",
    "ExtensionMessage": "covey.core.plugin",
    "KeyError_": "covey.core.crypto.keyring",
    "Keyring": "covey.core.crypto.keyring",
    "MAX_DATAGRAM": "covey.core.wire.frame",
    "MAX_STREAM_FRAME": "covey.core.wire.frame",
    "MalformedMessage": "covey.core.wire.messages",
    "MemberEvent": "covey.core.events",
    "MemberFailed": "covey.core.events",
    "MemberInfo": "covey.core.member",
    "MemberJoined": "covey.core.events",
    "MemberLeft": "covey.core.events",
    "MemberReaped": "covey.core.events",
    "MemberRecovered": "covey.core.events",
    "MemberState": "covey.core.types",
    "MemberSuspect": "covey.core.events",
    "MemberUpdated": "covey.core.events",
    "MessageTypes": "covey.core.wire.messages",
    "NameConflict": "covey.core.events",
    "Node": "covey.core.membership.node",
    "NodeStatistics": "covey.core.membership.stats",
    "Rng": "covey.core.types",
    "STREAM_PREFIX_LEN": "covey.core.wire.frame",
    "StreamPurpose": "covey.core.effects",
    "StreamRequest": "covey.core.effects",
    "TAGS_LIMIT": "covey.core.config",
    "TraceOp": "covey.core.events",
    "TraceRecord": "covey.core.events",
    "format_address": "covey.core.types",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'covey.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value
