"""Keyring rotation steps (install, use, remove) and the key checks behind ``covey keys``."""

from __future__ import annotations

import pytest

from covey.core.crypto.fernet import generate_key
from covey.core.crypto.keyring import KeyError_, Keyring, check_key, fingerprint
from covey.core.types import DropReason
from covey.core.wire.frame import FrameError

WALL = 1_700_000_000.0


def test_install_use_remove_keeps_frames_flowing_between_old_and_new_rings() -> None:
    old, new = generate_key(), generate_key()
    a, b = Keyring([old]), Keyring([old])
    assert a.install(new) and not a.install(new)  # twice: no change
    assert a.key_list() == [old, new] and a.primary == old
    assert b.open(b.security, a.seal(b"x", WALL), WALL) == b"x"  # still sealed with old
    assert a.use(new) and not a.use(new)
    with pytest.raises(FrameError) as refused:  # b has not installed new yet
        b.open(b.security, a.seal(b"y", WALL), WALL)
    assert refused.value.reason is DropReason.BAD_KEY
    b.install(new)
    assert b.open(b.security, a.seal(b"z", WALL), WALL) == b"z"
    assert a.open(a.security, b.seal(b"w", WALL), WALL) == b"w"  # b still seals with old
    with pytest.raises(KeyError_, match="primary key"):
        a.remove(new)
    assert a.remove(old) and not a.remove(old)
    assert a.key_list() == [new]


def test_use_needs_an_installed_key_and_bad_keys_are_refused() -> None:
    ring = Keyring([generate_key()])
    with pytest.raises(KeyError_, match="not installed"):
        ring.use(generate_key())
    for bad in (b"", b"short", b"x" * 44, generate_key()[:-2] + b"!=", "é" * 44, b" \n"):
        with pytest.raises(KeyError_, match="not a Fernet key"):
            ring.install(bad)  # type: ignore[arg-type]
    assert ring.keys == 1


def test_check_key_strips_the_line_and_fingerprint_is_short_and_stable() -> None:
    key = generate_key()
    assert check_key(key + b"\n") == key and check_key(key.decode()) == key
    assert fingerprint(key) == fingerprint(key) and len(fingerprint(key)) == 12
    assert fingerprint(key) != fingerprint(generate_key())
    assert key.decode() not in fingerprint(key)


def test_plaintext_ring_cannot_install() -> None:
    ring = Keyring([], plaintext=True)
    with pytest.raises(KeyError_, match="plain-text"):
        ring.install(generate_key())
