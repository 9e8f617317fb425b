"""covey's Fernet against the reference implementation (``cryptography``) and the spec."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet, MultiFernet
from cryptography.fernet import InvalidToken as RefInvalid
from hypothesis import given
from hypothesis import strategies as st

from covey.core.crypto.fernet import (
    FernetKey,
    InvalidToken,
    MultiKey,
    b64decode,
    b64encode,
    generate_key,
)

NOW = 1_800_000_000


@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=2**40))
def test_tokens_interoperate_both_ways(data: bytes, stamp: int) -> None:
    key = generate_key()
    ours, ref = MultiKey([key]), Fernet(key)
    assert ref.decrypt_at_time(ours.encrypt_at_time(data, stamp), 60, stamp) == data
    assert ours.decrypt_at_time(ref.encrypt_at_time(data, stamp), 60, stamp) == data


@given(st.binary(min_size=1, max_size=300), st.data())
def test_any_flipped_bit_is_refused(data: bytes, draw: st.DataObject) -> None:
    key = MultiKey([generate_key()])
    raw = bytearray(base64.urlsafe_b64decode(key.encrypt_at_time(data, NOW)))
    bit = draw.draw(st.integers(min_value=0, max_value=len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(InvalidToken):
        key.decrypt_at_time(base64.urlsafe_b64encode(bytes(raw)), None, NOW)


def test_age_skew_key_and_shape_are_checked_like_the_reference() -> None:
    key = generate_key()
    ours, ref = MultiKey([key]), MultiFernet([Fernet(key)])
    token = ours.encrypt_at_time(b"hello", NOW)
    raw = base64.urlsafe_b64decode(token)
    cases = [
        (token, 60, NOW + 61),  # too old
        (token, 60, NOW - 61),  # more than 60 s in the future
        (MultiKey([generate_key()]).encrypt_at_time(b"hello", NOW), 60, NOW),  # other key
        (base64.urlsafe_b64encode(raw[:-1]), 60, NOW),  # truncated
        (base64.urlsafe_b64encode(b"\x81" + raw[1:]), 60, NOW),  # unknown version
        (base64.urlsafe_b64encode(raw[:25] + raw[41:]), 60, NOW),  # one block fewer
        (b"not base64!", 60, NOW),
        (b"", 60, NOW),
    ]
    for tok, ttl, now in cases:
        with pytest.raises(InvalidToken):
            ours.decrypt_at_time(tok, ttl, now)
        with pytest.raises(RefInvalid):
            ref.decrypt_at_time(tok, ttl, now)
    assert ours.decrypt_at_time(token, 60, NOW + 60) == b"hello"  # the edge is inclusive
    assert ours.decrypt_at_time(token, None, NOW + 10**9) == b"hello"


def test_rotation_first_key_seals_any_key_opens() -> None:
    old, new = generate_key(), generate_key()
    token = MultiKey([old]).encrypt_at_time(b"x", NOW)
    rotated = MultiKey([new, old])
    assert rotated.decrypt_at_time(token, 60, NOW) == b"x"
    assert Fernet(new).decrypt_at_time(rotated.encrypt_at_time(b"y", NOW), 60, NOW) == b"y"


@pytest.mark.parametrize(
    "bad", [b"", b"short", base64.urlsafe_b64encode(b"k" * 31), b"%" * 44, "é" * 44]
)
def test_bad_keys_raise_value_error(bad: bytes | str) -> None:
    with pytest.raises(ValueError, match="32 url-safe base64"):
        FernetKey(bad)
    with pytest.raises(ValueError):
        MultiKey([])


def test_generated_keys_are_valid_reference_keys() -> None:
    key = generate_key()
    assert len(base64.urlsafe_b64decode(key)) == 32
    Fernet(key)
    assert generate_key() != key


_LEAN_CHECK = """
import base64, sys
import covey.agentd
covey.agentd.prepare_imports(ssl=False)  # as the lean agent: PyCryptodome on ctypes
from Crypto.Util import _raw_api
from covey.core.crypto.fernet import FernetKey
key = sys.stdin.read().strip().encode()
k = FernetKey(key)
assert _raw_api.backend == "ctypes" and k._raw is not None, (_raw_api.backend, k._raw)
public = FernetKey(key)
public._raw = None  # the path taken under cffi: the two must open each other's tokens
out = []
for size in (0, 1, 16, 33, 1400):
    data = bytes(range(256))[: size % 256] * (1 + size // 256)
    for a, b in ((k, public), (public, k)):
        assert b.open_raw(base64.urlsafe_b64decode(a.encrypt_at_time(data, 7)), None, 7) == data
    out.append(k.encrypt_at_time(data, 7).decode())
print(" ".join(out))
"""


def test_the_lean_agents_direct_calls_make_reference_tokens() -> None:
    # The agent process blocks cffi, so PyCryptodome's ctypes backend is used and the
    # raw ECB functions are called directly: a subprocess as the agent runs it.
    import subprocess
    import sys

    key = generate_key()
    res = subprocess.run(
        [sys.executable, "-c", _LEAN_CHECK],
        input=key.decode(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    tokens = res.stdout.split()
    assert len(tokens) == 5
    ref = Fernet(key)
    for size, token in zip((0, 1, 16, 33, 1400), tokens, strict=True):
        want = bytes(range(256))[: size % 256] * (1 + size // 256)
        assert ref.decrypt_at_time(token.encode(), 60, 7) == want


@given(st.binary(max_size=600), st.binary(max_size=80))
def test_the_binascii_base64_is_the_standard_librarys(raw: bytes, noise: bytes) -> None:
    assert b64encode(raw) == base64.urlsafe_b64encode(raw)
    assert b64decode(base64.urlsafe_b64encode(raw)) == raw
    # Lenient like base64.urlsafe_b64decode on any input: same result, or both refuse.
    text = base64.urlsafe_b64encode(raw) + noise
    try:
        want: bytes | None = base64.urlsafe_b64decode(text)
    except ValueError:
        want = None
    try:
        got: bytes | None = b64decode(text)
    except ValueError:
        got = None
    assert got == want
