"""Frame layout shared by datagrams and stream (TCP) exchanges.

Theory of operation: every datagram or stream frame starts with a five-octet header

    0..1  magic  b"CV"
    2     protocol version (1)
    3     frame type: 1 datagram, 2 stream request, 3 stream reply
    4     security: 0 plain text, 1 Fernet

followed by the payload. In Fernet mode the payload is exactly a Fernet token (ASCII,
url-safe base64), so ``Fernet(key).decrypt(frame[5:])`` opens a captured datagram. The
decrypted body is a msgpack array ``[cluster, sender_id, [message, ...]]``; several messages
share one datagram up to :data:`MAX_DATAGRAM` octets. On TCP each frame is preceded by a
four-octet big-endian length.
"""

from __future__ import annotations

import enum
from typing import Any

import msgpack

from covey.core.types import DropReason
from covey.core.wire.messages import NODE_ID_LEN, Message, encode_message

MAGIC = b"CV"
PROTOCOL_VERSION = 1
HEADER_LEN = 5
#: Largest datagram covey sends or accepts.
MAX_DATAGRAM = 1400
#: Largest stream frame accepted (push-pull of a large cluster).
MAX_STREAM_FRAME = 32 * 1024 * 1024
#: The length prefix of a stream frame on TCP.
STREAM_PREFIX_LEN = 4


class FrameType(enum.IntEnum):
    """Frame type octet."""

    DATAGRAM = 1
    STREAM_REQUEST = 2
    STREAM_REPLY = 3


class Security(enum.IntEnum):
    """Security octet."""

    PLAIN = 0
    FERNET = 1


class FrameError(Exception):
    """An inbound frame was rejected; ``reason`` says why (it is counted, never raised out)."""

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


def encode_message_bytes(msg: Message) -> bytes:
    """msgpack bytes of one message (the unit the datagram packer measures)."""
    return bytes(msgpack.packb(encode_message(msg), use_bin_type=True))


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def body_prefix(cluster: str, sender: bytes) -> bytes:
    """The constant start of every body a node sends: array-of-3, cluster, sender id."""
    return b"\x93" + bytes(msgpack.packb(cluster)) + bytes(msgpack.packb(sender, use_bin_type=True))


def pack_body(prefix: bytes, encoded: list[bytes]) -> bytes:
    """Join a :func:`body_prefix` and already-encoded messages into one body."""
    return prefix + _array_header(len(encoded)) + b"".join(encoded)


def body_overhead(prefix: bytes, count: int) -> int:
    """Octets a body adds around ``count`` messages."""
    return len(prefix) + len(_array_header(count))


def build_frame(ftype: FrameType, security: Security, payload: bytes) -> bytes:
    """Prefix ``payload`` with the frame header."""
    return MAGIC + bytes((PROTOCOL_VERSION, ftype, security)) + payload


def parse_header(data: bytes, limit: int) -> tuple[FrameType, Security, bytes]:
    """Split a frame into (type, security, payload) or raise :class:`FrameError`."""
    if len(data) > limit:
        raise FrameError(DropReason.OVERSIZED, f"{len(data)} > {limit}")
    if len(data) < HEADER_LEN:
        raise FrameError(DropReason.TRUNCATED, f"{len(data)} octets")
    if data[:2] != MAGIC:
        raise FrameError(DropReason.BAD_MAGIC)
    if data[2] != PROTOCOL_VERSION:
        raise FrameError(DropReason.UNKNOWN_VERSION, str(data[2]))
    try:
        ftype = FrameType(data[3])
        security = Security(data[4])
    except ValueError:
        raise FrameError(DropReason.BAD_FRAME_TYPE) from None
    return ftype, security, data[HEADER_LEN:]


def unpack_body(body: bytes) -> tuple[str, bytes, list[Any]]:
    """Decode a body into (cluster, sender id, raw message arrays)."""
    try:
        obj = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            use_list=True,
        )
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise FrameError(DropReason.MALFORMED, type(exc).__name__) from None
    if not isinstance(obj, list) or len(obj) != 3:
        raise FrameError(DropReason.MALFORMED, "body is not a 3-array")
    cluster, sender, messages = obj
    if type(cluster) is not str or type(sender) is not bytes or len(sender) != NODE_ID_LEN:
        raise FrameError(DropReason.MALFORMED, "bad cluster or sender")
    if not isinstance(messages, list):
        raise FrameError(DropReason.MALFORMED, "messages is not an array")
    return cluster, sender, messages
