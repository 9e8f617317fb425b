"""Authenticated encryption of frames with Fernet, key rotation, replay and duplicate checks.

The keyring holds one or more Fernet keys: the first encrypts, every key decrypts
(:class:`~covey.core.crypto.fernet.MultiKey`), so a new key can be added everywhere, then
promoted, then the old one removed, without downtime. A token whose Fernet timestamp is
older than the replay window is refused as stale; a token seen before inside the window
is refused as a duplicate. Wall-clock time is passed in by the caller: this module reads
no clock.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

# The standard library's built-in SHA-256, as in fernet.py: hashlib would map OpenSSL's
# libcrypto (3.3 MiB resident in every agent) for a key's fingerprint.
from covey.core.crypto.fernet import InvalidToken, MultiKey, b64decode, b64encode, sha256
from covey.core.types import DropReason
from covey.core.wire.frame import (
    HEADER_LEN,
    MAX_DATAGRAM,
    FrameError,
    FrameType,
    Security,
    build_frame,
    parse_header,
    unpack_body,
)

#: Fernet token overhead before base64: version, timestamp, IV, HMAC.
_FERNET_FIXED = 1 + 8 + 16 + 32
#: Most entries the duplicate filter keeps; beyond that the oldest go first.
_SEEN_LIMIT = 200_000


class KeyError_(ValueError):
    """A key given to the keyring is not a valid Fernet key."""


def fingerprint(key: bytes) -> str:
    """A short public name of a key: 12 hex digits of the SHA-256 of its 32 octets.

    It tells keys apart in listings without showing them (a key's fingerprint reveals
    nothing usable about the key). A text that is not a key gets the hash of its text.
    """
    try:
        raw = base64.urlsafe_b64decode(key)
    except (binascii.Error, ValueError):
        raw = key
    digest: str = sha256(raw).hexdigest()
    return digest[:12]


def check_key(key: bytes | str) -> bytes:
    """``key`` as bytes if it is a Fernet key (url-safe base64 of 32 octets).

    Raises:
        KeyError_: it is not (the message says why).
    """
    try:
        data = (key.encode() if isinstance(key, str) else bytes(key)).strip()
        MultiKey([data])
    except (ValueError, TypeError) as exc:
        raise KeyError_(f"not a Fernet key: {exc}") from None
    if not data.isascii() or not data.replace(b"-", b"").replace(b"_", b"").rstrip(b"=").isalnum():
        # The decoder skips stray characters; a key is exactly its 44 alphabet octets.
        raise KeyError_("not a Fernet key: characters outside url-safe base64")
    return data


def _ring(keys: list[bytes]) -> MultiKey:
    """The keys as one ring; :class:`KeyError_` naming the first that is not a key."""
    for i, key in enumerate(keys):
        try:
            MultiKey([key])
        except ValueError as exc:
            raise KeyError_(f"key {i + 1} is not a Fernet key: {exc}") from None
    return MultiKey(keys)


class Keyring:
    """Seals and opens frame payloads.

    Args:
        keys: Fernet keys (url-safe base64, 32 bytes decoded); the first encrypts. Empty
            only together with ``plaintext=True``.
        replay_window: seconds a token stays acceptable after it was made.
        plaintext: explicit opt-in to send and accept unencrypted frames.
    """

    def __init__(
        self, keys: list[bytes], *, replay_window: float = 60.0, plaintext: bool = False
    ) -> None:
        if not keys and not plaintext:
            raise KeyError_("no keys given and plain-text mode not chosen")
        if replay_window <= 0:
            raise KeyError_("replay window must be positive")
        self._multi: MultiKey | None = _ring(keys) if keys else None
        self._raw: list[bytes] = [bytes(k).strip() for k in keys]
        self.plaintext = plaintext and not keys
        self.replay_window = replay_window
        self._ttl = max(1, int(replay_window))
        self._seen: dict[bytes, int] = {}

    @property
    def keys(self) -> int:
        """How many keys the ring holds (0 in plain-text mode)."""
        return 0 if self._multi is None else len(self._multi.keys)

    def replace_keys(self, keys: list[bytes]) -> None:
        """Use ``keys`` from now on (the first seals, all open): a key-file reload.

        The replay record is kept, so a frame seen before stays refused.

        Raises:
            KeyError_: no key, a bad key, or the ring is in plain-text mode (switching
                encryption on or off needs a restart).
        """
        if self._multi is None:
            raise KeyError_("plain-text mode: keys cannot be added without a restart")
        if not keys:
            raise KeyError_("no keys given")
        unique = list(dict.fromkeys(bytes(k).strip() for k in keys))
        self._multi = _ring(unique)
        self._raw = unique

    def key_list(self) -> list[bytes]:
        """The keys, the primary (sealing) one first; empty in plain-text mode."""
        return list(self._raw)

    @property
    def primary(self) -> bytes | None:
        """The key that seals (None in plain-text mode)."""
        return self._raw[0] if self._raw else None

    def install(self, key: bytes) -> bool:
        """Add ``key`` after the others (it opens frames, does not seal yet); False if
        it was there already.

        Raises:
            KeyError_: not a key, or plain-text mode.
        """
        key = check_key(key)
        if key in self._raw:
            return False
        self.replace_keys([*self._raw, key])
        return True

    def use(self, key: bytes) -> bool:
        """Make the installed ``key`` the primary (sealing) one; False if it was already.

        Raises:
            KeyError_: not a key, or not installed here.
        """
        key = check_key(key)
        if key not in self._raw:
            raise KeyError_(f"key {fingerprint(key)} is not installed")
        if self._raw[0] == key:
            return False
        self.replace_keys([key, *(k for k in self._raw if k != key)])
        return True

    def remove(self, key: bytes) -> bool:
        """Drop ``key``; False if it was not installed.

        Raises:
            KeyError_: not a key, or it is the primary key (``use`` another one first).
        """
        key = check_key(key)
        if key not in self._raw:
            return False
        if self._raw[0] == key:
            raise KeyError_(f"key {fingerprint(key)} is the primary key: use another first")
        self.replace_keys([k for k in self._raw if k != key])
        return True

    @property
    def security(self) -> Security:
        """The security octet this keyring writes."""
        return Security.PLAIN if self.plaintext else Security.FERNET

    def max_body(self, datagram_limit: int = MAX_DATAGRAM) -> int:
        """Largest body that still fits a datagram of ``datagram_limit`` once sealed."""
        room = datagram_limit - HEADER_LEN
        if self.plaintext:
            return room
        raw = (room // 4) * 3  # base64 with padding: 4 chars per 3 octets
        blocks = (raw - _FERNET_FIXED) // 16
        return blocks * 16 - 1  # PKCS7 always adds at least one octet

    def seal(self, body: bytes, wall: float) -> bytes:
        """Encrypt ``body`` (or pass it through in plain-text mode)."""
        if self._multi is None:
            return body
        return self._multi.encrypt_at_time(body, int(wall))

    def open(self, security: Security, payload: bytes, wall: float) -> bytes:
        """Authenticate and decrypt a payload, or raise :class:`FrameError`."""
        if security is Security.PLAIN:
            if not self.plaintext:
                raise FrameError(DropReason.PLAINTEXT_REFUSED)
            return payload
        if self._multi is None:
            raise FrameError(DropReason.ENCRYPTED_UNEXPECTED)
        try:
            raw = b64decode(payload)
        except (binascii.Error, ValueError):
            raise FrameError(DropReason.MALFORMED, "token is not base64") from None
        if len(raw) < _FERNET_FIXED + 16:
            raise FrameError(DropReason.TRUNCATED, "token too short")
        if b64encode(raw) != payload:
            # Lenient decoding would let altered bytes through; only the canonical form counts.
            raise FrameError(DropReason.MALFORMED, "token is not canonical base64")
        stamp = int.from_bytes(raw[1:9], "big")
        now = int(wall)
        try:
            body = self._multi.open_raw(raw, self._ttl, now)
        except InvalidToken:
            # Authentic-but-old tokens and forged ones look alike to Fernet; tell them
            # apart by the (unauthenticated) stamp only for the counter's sake.
            if stamp + self._ttl < now and self._authentic(raw):
                raise FrameError(DropReason.STALE) from None
            raise FrameError(DropReason.BAD_KEY) from None
        self._remember(raw[-32:], stamp, now)
        return body

    def seal_frame(self, ftype: FrameType, body: bytes, wall: float) -> bytes:
        """A whole frame of type ``ftype`` carrying ``body``, sealed at wall time ``wall``."""
        return build_frame(ftype, self.security, self.seal(body, wall))

    def open_frame(
        self, data: bytes, want: FrameType, limit: int, wall: float
    ) -> tuple[str, bytes, list[Any]]:
        """Check, authenticate and decode a whole frame of type ``want``.

        Returns (cluster, sender id, raw message arrays), or raises :class:`FrameError`
        (header, frame type, key, replay and body checks, in that order).
        """
        ftype, security, payload = parse_header(data, limit)
        if ftype is not want:
            raise FrameError(DropReason.BAD_FRAME_TYPE, ftype.name)
        return unpack_body(self.open(security, payload, wall))

    def _authentic(self, raw: bytes) -> bool:
        assert self._multi is not None
        try:
            self._multi.open_raw(raw, None, 0)
        except InvalidToken:
            return False
        return True

    def _remember(self, mac: bytes, stamp: int, now: int) -> None:
        if mac in self._seen:
            raise FrameError(DropReason.DUPLICATE)
        seen = self._seen
        # Insertion order is roughly stamp order; drop expired entries from the front.
        while seen:
            first = next(iter(seen))
            if seen[first] + self._ttl >= now and len(seen) < _SEEN_LIMIT:
                break
            del seen[first]
        seen[mac] = stamp
