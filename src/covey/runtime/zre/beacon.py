"""ZRE v2 discovery beacons (RFC 36): exactly 22 bytes, and nothing else with the magic.

A ZRE beacon is ``"ZRE"`` + version 1 + the node's 16-byte UUID + its ZeroMQ mailbox port
in network byte order; port 0 says the node is leaving. pyre unpacks every datagram that
starts with ``"ZRE"`` as exactly 22 bytes, and a datagram of any other length raises in
its beacon thread and kills the node (pyre issue 130). So :func:`encode_beacon` is the
only way covey makes one, it checks its inputs and asserts the length, and the transport
sends nothing else on the ZRE port.

:func:`decode_beacon` is strict and never raises: a wrong length, magic or version, or a
datagram with our own UUID, is refused with the reason, which the receiver counts.

covey's own beacons (seed 004's state octet included) are a different thing on a
different port: Fernet-sealed covey frames on the agent's discovery group. The two never
share a socket (``docs/protocol.md``, "ZRE").
"""

from __future__ import annotations

import struct

from covey.core.records import record

#: The magic every ZRE beacon starts with.
MAGIC = b"ZRE"
#: The beacon version of ZRE v2 (RFC 36).
VERSION = 1
#: The one length a ZRE beacon may have.
LENGTH = 22
#: The UDP port of ZRE beacons (RFC 36).
DEFAULT_PORT = 5670
_FORMAT = struct.Struct("!3sB16sH")
assert _FORMAT.size == LENGTH


@record
class Beacon:
    """One ZRE beacon.

    Attributes:
        uuid: the sender's 16-byte identity.
        port: its ZeroMQ mailbox (ROUTER) port; 0 means it is leaving.
    """

    uuid: bytes
    port: int

    @property
    def leaving(self) -> bool:
        """True for the port-0 beacon of a node that shuts down."""
        return self.port == 0


def encode_beacon(beacon: Beacon) -> bytes:
    """The 22 bytes of ``beacon``.

    Raises:
        ValueError: the UUID is not 16 bytes or the port not 0..65535 (a caller's bug:
            never a datagram of another length).
    """
    if not isinstance(beacon.uuid, bytes) or len(beacon.uuid) != 16:
        raise ValueError("uuid: must be 16 bytes")
    if isinstance(beacon.port, bool) or not isinstance(beacon.port, int):
        raise ValueError("port: must be an integer")
    if not 0 <= beacon.port <= 0xFFFF:
        raise ValueError("port: must be 0..65535")
    data = _FORMAT.pack(MAGIC, VERSION, beacon.uuid, beacon.port)
    # The one invariant pyre's beacon thread depends on for its life.
    assert len(data) == LENGTH
    return data


def decode_beacon(data: bytes, own: bytes | None = None) -> tuple[Beacon | None, str]:
    """``(beacon, "")`` for a valid beacon, else ``(None, reason)``; never raises.

    Reasons: ``not_zre`` (no magic), ``bad_length``, ``bad_version``, ``own`` (our own
    beacon looped back to us, when ``own`` is given).
    """
    if not data.startswith(MAGIC):
        return None, "not_zre"
    if len(data) != LENGTH:
        return None, "bad_length"
    _, version, uuid, port = _FORMAT.unpack(data)
    if version != VERSION:
        return None, "bad_version"
    if own is not None and uuid == own:
        return None, "own"
    return Beacon(uuid, port), ""


__all__ = [
    "DEFAULT_PORT",
    "LENGTH",
    "MAGIC",
    "VERSION",
    "Beacon",
    "decode_beacon",
    "encode_beacon",
]
