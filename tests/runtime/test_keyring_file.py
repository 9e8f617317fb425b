"""The keyring file (``<data_dir>/keyring.json``): seeded from the key file, then it wins."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from covey.core.crypto.fernet import generate_key
from covey.runtime.config.model import AgentConfig, ConfigError
from covey.runtime.stores.keyring_file import (
    KEYRING_FILE,
    load_keyring,
    save_keyring,
    starting_keys,
)


def _config(tmp_path: Path, *keys: bytes) -> AgentConfig:
    return AgentConfig(name="a", bind=("127.0.0.1", 1), keys=keys, data_dir=tmp_path / "d")


def test_first_start_stores_the_key_file_then_the_stored_ring_wins(tmp_path: Path) -> None:
    seed, other = generate_key(), generate_key()
    assert starting_keys(_config(tmp_path, seed)) == [seed]
    path = tmp_path / "d" / KEYRING_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    save_keyring(path, [other, seed])
    assert starting_keys(_config(tmp_path, seed)) == [other, seed]
    assert json.loads(path.read_text())["keys"] == [other.decode(), seed.decode()]


def test_without_a_data_dir_nothing_is_stored(tmp_path: Path) -> None:
    key = generate_key()
    config = AgentConfig(name="a", bind=("127.0.0.1", 1), keys=(key,))
    assert starting_keys(config) == [key]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '{"keys": []}', '{"keys": ["nope"]}', '{"keys": [1]}', '{"version": 1}'],
)
def test_a_damaged_keyring_file_refuses_the_start_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / KEYRING_FILE
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_keyring(path)
    assert err.value.field == "data_dir" and KEYRING_FILE in str(err.value)
