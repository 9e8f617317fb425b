"""ZRE v2 peer messages (RFC 36, the zre_msg framing): one strict codec, no IO.

Every message is one ZeroMQ frame of header and fields, then (WHISPER and SHOUT) the
content frames. The header is the signature ``0xAAA1``, the message id and the protocol
version 2; numbers are big-endian, a *string* is one length octet and its UTF-8 bytes, a
*long string* four length octets and its bytes. Every message carries a 16-bit sequence
number, 1 for the HELLO a connection starts with and one more for each message after it.

==========  ==  ==========================================================
HELLO       1   sequence, endpoint, groups (4-octet count of long strings),
                status (1 octet), name, headers (4-octet count of string → long string)
WHISPER     2   sequence; content frames
SHOUT       3   sequence, group; content frames
JOIN        4   sequence, group, status
LEAVE       5   sequence, group, status
PING        6   sequence
PING-OK     7   sequence
==========  ==  ==========================================================

On a ROUTER the first frame is the sender's identity, octet 1 then its 16-byte UUID.
:func:`decode` never raises: a frame that is short, long, of another signature, version
or id, or whose text is not UTF-8, is refused with a reason the transport counts.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import field

from covey.core.records import record

SIGNATURE = 0xAAA1
VERSION = 2
HELLO, WHISPER, SHOUT, JOIN, LEAVE, PING, PING_OK = range(1, 8)
#: Message names by id (for logs and counters).
NAMES = {
    HELLO: "HELLO",
    WHISPER: "WHISPER",
    SHOUT: "SHOUT",
    JOIN: "JOIN",
    LEAVE: "LEAVE",
    PING: "PING",
    PING_OK: "PING-OK",
}
#: Most frames one message may have (covey refuses more: they would only be kept in memory).
MAX_FRAMES = 64


@record
class ZreMessage:
    """One ZRE message (the fields unused by its kind keep their defaults).

    Attributes:
        kind: the message id (:data:`HELLO` ... :data:`PING_OK`).
        sequence: the cyclic sequence number.
        endpoint / groups / status / name / headers: HELLO's fields (``status`` also JOIN's
            and LEAVE's).
        group: SHOUT's, JOIN's and LEAVE's group.
        content: WHISPER's and SHOUT's frames.
    """

    kind: int
    sequence: int = 0
    endpoint: str = ""
    groups: tuple[str, ...] = ()
    status: int = 0
    name: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    group: str = ""
    content: tuple[bytes, ...] = ()

    @property
    def command(self) -> str:
        """The message's name (``HELLO``...)."""
        return NAMES.get(self.kind, str(self.kind))

    def with_sequence(self, sequence: int) -> ZreMessage:
        """The same message numbered ``sequence``."""
        from dataclasses import replace

        return replace(self, sequence=sequence)


class _Malformed(Exception):
    """Raised inside the decoder only; :func:`decode` turns it into a reason."""


def _string(text: str, long: bool = False) -> bytes:
    raw = text.encode()
    if long:
        return struct.pack("!I", len(raw)) + raw
    if len(raw) > 255:
        raise ValueError(f"{text[:20]!r}...: a ZRE string holds at most 255 bytes")
    return bytes([len(raw)]) + raw


def encode(msg: ZreMessage) -> list[bytes]:
    """The frames of ``msg`` (header frame first, then the content frames).

    Raises:
        ValueError: a field does not fit (a string over 255 bytes, a sequence or status
            out of range, an unknown kind).
    """
    if msg.kind not in NAMES:
        raise ValueError(f"kind: unknown ZRE message {msg.kind}")
    if not 0 <= msg.sequence <= 0xFFFF or not 0 <= msg.status <= 0xFF:
        raise ValueError("sequence or status out of range")
    out = [struct.pack("!HBBH", SIGNATURE, msg.kind, VERSION, msg.sequence)]
    if msg.kind == HELLO:
        out.append(_string(msg.endpoint))
        out.append(struct.pack("!I", len(msg.groups)))
        out.extend(_string(g, long=True) for g in msg.groups)
        out.append(bytes([msg.status]))
        out.append(_string(msg.name))
        out.append(struct.pack("!I", len(msg.headers)))
        for k, v in msg.headers.items():
            out.append(_string(k) + _string(v, long=True))
    elif msg.kind == SHOUT:
        out.append(_string(msg.group))
    elif msg.kind in (JOIN, LEAVE):
        out.append(_string(msg.group) + bytes([msg.status]))
    frames = [b"".join(out)]
    if msg.kind in (WHISPER, SHOUT):
        frames.extend(bytes(c) for c in msg.content)
    return frames


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise _Malformed("truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def string(self, long: bool = False) -> str:
        raw = self.take(self.number(4 if long else 1))
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise _Malformed("bad_text") from None


def decode(frames: Sequence[bytes]) -> tuple[ZreMessage | None, str]:
    """``(message, "")`` from a message's frames (no identity frame), else
    ``(None, reason)``: ``empty``, ``too_many_frames``, ``bad_signature``,
    ``bad_version``, ``unknown_kind``, ``truncated``, ``trailing``, ``bad_text``,
    ``too_many_items``. Never raises."""
    if not frames or not frames[0]:
        return None, "empty"
    if len(frames) > MAX_FRAMES:
        return None, "too_many_frames"
    r = _Reader(bytes(frames[0]))
    try:
        if r.number(2) != SIGNATURE:
            return None, "bad_signature"
        kind = r.number(1)
        if r.number(1) != VERSION:
            return None, "bad_version"
        if kind not in NAMES:
            return None, "unknown_kind"
        msg = _fields(kind, r, tuple(bytes(f) for f in frames[1:]))
    except _Malformed as exc:
        return None, str(exc)
    if r.at != len(r.data):
        return None, "trailing"
    return msg, ""


def _fields(kind: int, r: _Reader, content: tuple[bytes, ...]) -> ZreMessage:
    seq = r.number(2)
    if kind == HELLO:
        endpoint = r.string()
        count = r.number(4)
        if count > len(r.data):  # each group takes at least 4 octets: a lie, not a list
            raise _Malformed("too_many_items")
        groups = tuple(r.string(long=True) for _ in range(count))
        status = r.number(1)
        name = r.string()
        count = r.number(4)
        if count > len(r.data):
            raise _Malformed("too_many_items")
        headers = {}
        for _ in range(count):
            key = r.string()
            headers[key] = r.string(long=True)
        return ZreMessage(HELLO, seq, endpoint, groups, status, name, headers)
    if kind == WHISPER:
        return ZreMessage(WHISPER, seq, content=content)
    if kind == SHOUT:
        return ZreMessage(SHOUT, seq, group=r.string(), content=content)
    if kind in (JOIN, LEAVE):
        group = r.string()
        return ZreMessage(kind, seq, group=group, status=r.number(1))
    return ZreMessage(kind, seq)


def identity(uuid: bytes) -> bytes:
    """The ZeroMQ identity a node's DEALER uses: octet 1 then its UUID (a leading zero
    octet is reserved by libzmq)."""
    return b"\x01" + uuid


def sender(identity_frame: bytes) -> bytes | None:
    """The UUID in a ROUTER's identity frame, None when it is not octet 1 + 16 bytes."""
    if len(identity_frame) != 17 or identity_frame[0] != 1:
        return None
    return bytes(identity_frame[1:])


__all__ = [
    "HELLO",
    "JOIN",
    "LEAVE",
    "NAMES",
    "PING",
    "PING_OK",
    "SHOUT",
    "SIGNATURE",
    "VERSION",
    "WHISPER",
    "ZreMessage",
    "decode",
    "encode",
    "identity",
    "sender",
]
