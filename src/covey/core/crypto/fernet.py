"""Fernet tokens (the published spec), built on PyCryptodome's AES.

Every covey frame and remote-control line is a Fernet token: version octet ``0x80``,
8-octet big-endian timestamp, 16-octet IV, AES-128-CBC ciphertext with PKCS7 padding,
and an HMAC-SHA256 over all of that, the whole in url-safe base64. Key: 32 octets in
url-safe base64, the first 16 sign and the last 16 encrypt. Tokens made here open with
``cryptography.fernet.Fernet`` and the other way round (``tests/core/test_keyring.py``).

Why not ``cryptography``: its Rust extension alone keeps about 7 MiB resident in every
agent process, where AES from PyCryptodome and the standard library's SHA-256 take
about 1.5 MiB, at about the same cost per token. The rules are
those of ``cryptography``'s Fernet: the MAC is checked (in constant time) before anything
is decrypted, a token older than ``ttl`` or more than 60 s in the future is refused, and
every refusal is the same :class:`InvalidToken`. Time is passed in: no clock is read.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import os
from _operator import _compare_digest as compare_digest
from collections.abc import Callable
from typing import Any

from Crypto.Cipher import AES

# compare_digest above is the constant-time comparison hmac.compare_digest falls back to,
# and the SHA-256 below is the standard library's built-in one (hashlib's fallback):
# importing hmac or hashlib would map OpenSSL's libcrypto (about 3.5 MiB) for nothing else.


def _builtin_sha256() -> Callable[[bytes], Any]:
    for name in ("_sha256", "_sha2"):  # CPython 3.11; 3.12 renamed it
        try:
            return importlib.import_module(name).sha256  # type: ignore[no-any-return]
        except ImportError:
            continue
    raise ImportError("the standard library's built-in SHA-256 is missing")


sha256 = _builtin_sha256()


def _raw_ecb_calls(ecb: Any) -> tuple[Any, Any, Any, Any, Any] | None:
    """PyCryptodome's raw ECB functions and ``ecb``'s C state, to call directly.

    Why: an idle agent seals and opens a few frames a second, each time with cold CPU
    caches, and there PyCryptodome's Python layers (a CBC object built per frame, the
    argument checks of each call) cost far more than the AES itself: about 120 µs a seal
    and 55 µs a decryption, against 50 and 33 µs calling the C functions directly
    (measured with the caches evicted between calls). Only the ctypes backend is called
    this way (the lean agent's); under cffi, or if PyCryptodome's internals differ, None:
    the public API is used instead. Tokens are the same either way (tests/core/crypto).
    """
    try:
        from Crypto.Cipher import _mode_ecb
        from Crypto.Util import _raw_api

        if _raw_api.backend != "ctypes":
            return None
        lib, state = _mode_ecb.raw_ecb_lib, ecb._state.get()
        new_buffer = _raw_api.create_string_buffer
        return lib.ECB_encrypt, lib.ECB_decrypt, state, _raw_api.c_size_t, new_buffer
    except (ImportError, AttributeError):  # pragma: no cover - another PyCryptodome layout
        return None


# url-safe base64 straight through binascii (what base64.urlsafe_b64* do, without their
# Python layers: a few µs each of a cold agent's frames).
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def b64encode(raw: bytes) -> bytes:
    """url-safe base64 of ``raw`` (as ``base64.urlsafe_b64encode``)."""
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE)


def b64decode(text: bytes) -> bytes:
    """Decode url-safe base64 leniently (as ``base64.urlsafe_b64decode`` on bytes: octets
    outside the alphabet are skipped); raises ``binascii.Error`` on bad padding."""
    return binascii.a2b_base64(text.translate(_FROM_URLSAFE))


#: Seconds a token's timestamp may lie in the future (as in ``cryptography``).
MAX_CLOCK_SKEW = 60
_VERSION = 0x80
_OVERHEAD = 1 + 8 + 16 + 32


class InvalidToken(Exception):
    """The token is forged, damaged, made with another key, too old or from the future."""


def generate_key() -> bytes:
    """A new random key, url-safe base64 (one line of a covey key file)."""
    return base64.urlsafe_b64encode(os.urandom(32))


class FernetKey:
    """One Fernet key: seals and opens tokens.

    Raises:
        ValueError: ``key`` is not 32 octets of url-safe base64.
    """

    __slots__ = ("_ecb", "_enc", "_inner", "_outer", "_raw")

    def __init__(self, key: bytes | str) -> None:
        try:
            raw = base64.urlsafe_b64decode(key)
        except (ValueError, TypeError):  # binascii.Error, and non-ASCII text
            raise ValueError("Fernet key must be 32 url-safe base64-encoded bytes") from None
        if len(raw) != 32:
            raise ValueError("Fernet key must be 32 url-safe base64-encoded bytes")
        block = raw[:16].ljust(64, b"\0")
        # HMAC (RFC 2104) with the keyed inner and outer states computed once.
        self._inner = sha256(bytes(b ^ 0x36 for b in block))
        self._outer = sha256(bytes(b ^ 0x5C for b in block))
        self._enc = raw[16:]
        self._ecb = AES.new(self._enc, AES.MODE_ECB)  # decryption: CBC by hand, see below
        # (self._ecb owns the C state that _raw points to: both live as long as the key)
        self._raw = _raw_ecb_calls(self._ecb)

    def _mac(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        mac: bytes = outer.digest()
        return mac

    def encrypt_at_time(self, data: bytes, now: int) -> bytes:
        """Seal ``data`` with timestamp ``now`` (integer seconds of the wall clock)."""
        iv = os.urandom(16)
        pad = 16 - len(data) % 16
        padded = data + bytes([pad]) * pad
        body = bytes([_VERSION]) + now.to_bytes(8, "big") + iv
        if self._raw is None:
            body += AES.new(self._enc, AES.MODE_CBC, iv).encrypt(padded)
        else:
            body += self._cbc_encrypt(padded, iv)
        return b64encode(body + self._mac(body))

    def _cbc_encrypt(self, padded: bytes, iv: bytes) -> bytes:
        """CBC encryption as C[i] = E(P[i] xor C[i-1]), C[-1] = IV, one raw ECB call per
        block (frames are a few blocks long: cheaper than building a CBC object)."""
        assert self._raw is not None
        encrypt, _, state, size_t, new_buffer = self._raw
        out = bytearray(len(padded))
        block, sixteen = new_buffer(16), size_t(16)
        prev = int.from_bytes(iv, "big")
        for i in range(0, len(padded), 16):
            x = (int.from_bytes(padded[i : i + 16], "big") ^ prev).to_bytes(16, "big")
            if encrypt(state, x, block, sixteen):
                raise ValueError("AES encryption failed")  # only on a broken library
            c = block.raw
            out[i : i + 16] = c
            prev = int.from_bytes(c, "big")
        return bytes(out)

    def _ecb_decrypt(self, ct: bytes) -> bytes:
        if self._raw is None:
            raw: bytes = self._ecb.decrypt(ct)
            return raw
        _, decrypt, state, size_t, new_buffer = self._raw
        out = new_buffer(len(ct))
        if decrypt(state, ct, out, size_t(len(ct))):
            raise InvalidToken  # only on a broken library
        plain: bytes = out.raw
        return plain

    def open_raw(self, raw: bytes, ttl: int | None, now: int) -> bytes:
        """Open an already base64-decoded token; raise InvalidToken if it does not hold."""
        if len(raw) < _OVERHEAD + 16 or raw[0] != _VERSION or (len(raw) - _OVERHEAD) % 16:
            raise InvalidToken
        if ttl is not None:
            stamp = int.from_bytes(raw[1:9], "big")
            if stamp + ttl < now or now + MAX_CLOCK_SKEW < stamp:
                raise InvalidToken
        if not compare_digest(self._mac(raw[:-32]), raw[-32:]):
            raise InvalidToken
        # CBC decryption is P[i] = D(C[i]) xor C[i-1] with C[-1] = IV: one ECB call over
        # every block and one XOR, three times cheaper than building a CBC object.
        ct = raw[25:-32]
        chained = int.from_bytes(raw[9:-48], "big")  # IV and every block but the last
        padded = (int.from_bytes(self._ecb_decrypt(ct), "big") ^ chained).to_bytes(len(ct), "big")
        pad = padded[-1]
        if not 1 <= pad <= 16 or padded[-pad:] != bytes([pad]) * pad:
            raise InvalidToken  # cannot happen under a valid MAC; never trust it anyway
        return padded[:-pad]


class MultiKey:
    """Several keys: the first seals, any of them opens (key rotation without downtime).

    Raises:
        ValueError: no keys, or one of them is not a Fernet key.
    """

    def __init__(self, keys: list[bytes] | list[str]) -> None:
        if not keys:
            raise ValueError("no keys")
        self.keys = [FernetKey(k) for k in keys]

    def encrypt_at_time(self, data: bytes, now: int) -> bytes:
        """Seal ``data`` with the first key and timestamp ``now``."""
        return self.keys[0].encrypt_at_time(data, now)

    def decrypt_at_time(self, token: bytes, ttl: int | None, now: int) -> bytes:
        """Open ``token`` with whichever key made it; ``ttl`` None skips the age check."""
        try:
            raw = base64.urlsafe_b64decode(token)
        except (binascii.Error, TypeError, ValueError):
            raise InvalidToken from None
        return self.open_raw(raw, ttl, now)

    def open_raw(self, raw: bytes, ttl: int | None, now: int) -> bytes:
        """Open an already base64-decoded token with whichever key made it."""
        for key in self.keys:
            try:
                return key.open_raw(raw, ttl, now)
            except InvalidToken:
                continue
        raise InvalidToken
