"""Keyring: Fernet sealing, rotation, replay window, duplicate suppression."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core import KeyError_, Keyring
from covey.core.types import DropReason
from covey.core.wire.frame import FrameError, Security

OLD = Fernet.generate_key()
NEW = Fernet.generate_key()
OTHER = Fernet.generate_key()
T = 1_700_000_000.0
REJECTED = {DropReason.BAD_KEY, DropReason.MALFORMED, DropReason.TRUNCATED}


def reason_of(ring: Keyring, payload: bytes, wall: float = T) -> DropReason:
    with pytest.raises(FrameError) as err:
        ring.open(Security.FERNET, payload, wall)
    return err.value.reason


def test_seal_open_and_security_octet() -> None:
    ring = Keyring([NEW])
    assert ring.security is Security.FERNET
    token = ring.seal(b"body", T)
    assert Fernet(NEW).decrypt(token) == b"body"
    assert Fernet(NEW).extract_timestamp(token) == int(T)
    assert Keyring([NEW]).open(Security.FERNET, token, T + 1) == b"body"


def test_plaintext_needs_explicit_opt_in() -> None:
    with pytest.raises(KeyError_):
        Keyring([])
    ring = Keyring([], plaintext=True)
    assert ring.security is Security.PLAIN
    assert ring.seal(b"body", T) == b"body"
    assert ring.open(Security.PLAIN, b"body", T) == b"body"
    # Keys win over the plain-text flag.
    assert Keyring([NEW], plaintext=True).security is Security.FERNET


@pytest.mark.parametrize("bad", [b"", b"not a key", base64.urlsafe_b64encode(b"x" * 31)])
def test_bad_keys_are_refused(bad: bytes) -> None:
    with pytest.raises(KeyError_):
        Keyring([bad])


def test_replay_window_must_be_positive() -> None:
    with pytest.raises(KeyError_):
        Keyring([NEW], replay_window=0)


def test_plaintext_refused_and_encrypted_unexpected() -> None:
    with pytest.raises(FrameError) as err:
        Keyring([NEW]).open(Security.PLAIN, b"body", T)
    assert err.value.reason is DropReason.PLAINTEXT_REFUSED
    token = Keyring([NEW]).seal(b"body", T)
    with pytest.raises(FrameError) as err:
        Keyring([], plaintext=True).open(Security.FERNET, token, T)
    assert err.value.reason is DropReason.ENCRYPTED_UNEXPECTED


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200))
def test_unknown_key_is_bad_key(body: bytes) -> None:
    token = Keyring([OTHER]).seal(body, T)
    assert reason_of(Keyring([NEW, OLD]), token) is DropReason.BAD_KEY


def test_short_and_garbled_tokens() -> None:
    ring = Keyring([NEW])
    assert reason_of(ring, base64.urlsafe_b64encode(b"\x80" * 40)) is DropReason.TRUNCATED
    assert reason_of(ring, b"abc") is DropReason.MALFORMED  # incorrect base64 padding
    assert reason_of(ring, base64.urlsafe_b64encode(b"\x80" * 100)) is DropReason.BAD_KEY


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=100), st.data())
def test_single_bit_flips_never_pass_as_new(body: bytes, data: st.DataObject) -> None:
    """A flipped token is refused. A flip that base64 decoding would ignore (the unused
    low bits of the last character) leaves a non-canonical spelling of the same token,
    which is refused as malformed before it could count as anything else."""
    token = Keyring([NEW]).seal(body, T)
    receiver = Keyring([NEW])
    assert receiver.open(Security.FERNET, token, T) == body
    pos = data.draw(st.integers(0, len(token) - 1), label="octet")
    bit = data.draw(st.integers(0, 7), label="bit")
    flipped = bytearray(token)
    flipped[pos] ^= 1 << bit
    reason = reason_of(receiver, bytes(flipped))
    try:
        same = base64.urlsafe_b64decode(bytes(flipped)) == base64.urlsafe_b64decode(token)
    except ValueError:
        same = False
    if same:
        assert reason is DropReason.MALFORMED
    else:
        assert reason in REJECTED
        # and a fresh receiver (no duplicate memory) refuses it too
        assert reason_of(Keyring([NEW]), bytes(flipped)) in REJECTED


def _padded_token() -> bytes:
    for n in range(64):
        token = Fernet(NEW).encrypt_at_time(b"x" * n, int(T))
        if token.endswith(b"=="):
            return token
    raise AssertionError("no token with two padding characters")


def test_non_canonical_token_is_refused() -> None:
    token = _padded_token()
    # The character before "==" carries 4 unused bits; find a flip that only touches them.
    for bit in range(8):
        flipped = bytearray(token)
        flipped[-3] ^= 1 << bit
        try:
            if base64.urlsafe_b64decode(bytes(flipped)) == base64.urlsafe_b64decode(token):
                break
        except ValueError:
            continue
    else:
        raise AssertionError("no harmless flip found")
    assert reason_of(Keyring([NEW]), bytes(flipped)) is DropReason.MALFORMED


def test_altered_copies_of_a_seen_token_do_not_replay() -> None:
    """Non-canonical copies are refused outright; an exact copy is a duplicate."""
    token = Keyring([NEW]).seal(b"hello", T)
    ring = Keyring([NEW])
    ring.open(Security.FERNET, token, T)
    # A non-canonical copy is refused before the duplicate check even runs.
    assert reason_of(ring, token + b"!!") is DropReason.MALFORMED
    assert reason_of(ring, token[:10] + b"\n" + token[10:]) is DropReason.MALFORMED
    assert reason_of(ring, token) is DropReason.DUPLICATE


def test_replay_window() -> None:
    ring = Keyring([NEW], replay_window=30)
    old = Keyring([NEW]).seal(b"old", T - 31)
    assert reason_of(ring, old) is DropReason.STALE
    edge = Keyring([NEW]).seal(b"edge", T - 30)
    assert ring.open(Security.FERNET, edge, T) == b"edge"
    fresh = Keyring([NEW]).seal(b"fresh", T)
    assert ring.open(Security.FERNET, fresh, T) == b"fresh"
    assert reason_of(ring, fresh) is DropReason.DUPLICATE
    assert reason_of(ring, fresh, T + 10) is DropReason.DUPLICATE
    # Once the token itself is too old, it is stale rather than a duplicate.
    assert reason_of(ring, fresh, T + 31) is DropReason.STALE


def test_stale_is_only_claimed_for_authentic_tokens() -> None:
    forged_old = Keyring([OTHER]).seal(b"x", T - 3600)
    assert reason_of(Keyring([NEW]), forged_old) is DropReason.BAD_KEY


def test_tokens_from_far_in_the_future_are_refused() -> None:
    # Fernet tolerates 60 s of clock skew; beyond that the token does not open.
    ring = Keyring([NEW])
    assert ring.open(Security.FERNET, Keyring([NEW]).seal(b"a", T + 59), T) == b"a"
    assert reason_of(ring, Keyring([NEW]).seal(b"b", T + 120)) is DropReason.BAD_KEY


def test_same_body_sealed_twice_is_not_a_duplicate() -> None:
    ring = Keyring([NEW])
    sealer = Keyring([NEW])
    assert ring.open(Security.FERNET, sealer.seal(b"same", T), T) == b"same"
    assert ring.open(Security.FERNET, sealer.seal(b"same", T), T) == b"same"


def test_key_rotation() -> None:
    """Add the new key everywhere (second), promote it (first), then drop the old one."""
    before = Keyring([OLD])
    during = Keyring([NEW, OLD])
    after = Keyring([NEW])
    assert during.open(Security.FERNET, before.seal(b"from old", T), T) == b"from old"
    token = during.seal(b"from new", T)
    assert Fernet(NEW).decrypt(token) == b"from new"
    assert after.open(Security.FERNET, token, T) == b"from new"
    assert reason_of(before, during.seal(b"x", T)) is DropReason.BAD_KEY
    assert reason_of(after, before.seal(b"y", T)) is DropReason.BAD_KEY
