"""Who an agent is across restarts: a fresh node id is a version-4 UUID, and a data
directory keeps the id and raises the incarnation on every start."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from covey.runtime.config.model import ConfigError
from covey.runtime.identity import fresh_node_id, load_identity, save_identity


def test_a_fresh_node_id_is_a_random_version_4_uuid() -> None:
    ids = {fresh_node_id() for _ in range(200)}
    assert len(ids) == 200
    for raw in ids:
        made = uuid.UUID(bytes=raw)
        assert made.version == 4 and made.variant == uuid.RFC_4122


def test_the_data_directory_keeps_the_id_and_raises_the_incarnation(tmp_path: Path) -> None:
    node_id, incarnation = load_identity(tmp_path / "d")
    assert incarnation == 0 and uuid.UUID(bytes=node_id).version == 4
    save_identity(tmp_path / "d", node_id, 7)
    assert load_identity(tmp_path / "d") == (node_id, 8)
    assert load_identity(None)[0] != node_id


def test_an_unreadable_identity_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "node.json").write_text(json.dumps({"node_id": "00", "incarnation": 1}))
    with pytest.raises(ConfigError, match="data_dir"):
        load_identity(tmp_path)
