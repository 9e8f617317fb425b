"""The healing knobs (reap time, reconnect back-off) through the normal config path."""

from __future__ import annotations

import pytest

from covey.runtime.config.model import AgentConfig, ConfigError
from covey.runtime.config.sources import build_config, read_env


def test_env_sets_reap_and_reconnect_max() -> None:
    env = read_env({"COVEY_REAP_FAILED_AFTER": "20", "COVEY_RECONNECT_MAX": "4.5"})
    cfg = build_config(env, {"plaintext": True})
    assert cfg.reap_failed_after == 20.0
    assert cfg.reconnect_max == 4.5


def test_defaults_are_an_hour_and_half_a_minute() -> None:
    cfg = AgentConfig(plaintext=True)
    assert (cfg.reap_failed_after, cfg.reconnect_max) == (3600.0, 30.0)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("reap_failed_after", 0.0, "reap-failed-after"),
        ("reap_failed_after", float("nan"), "reap-failed-after"),
        ("reconnect_max", -1.0, "reconnect-max"),
        ("reconnect_max", 1.0, "reconnect-max"),
    ],
)
def test_bad_values_name_the_field(field: str, value: float, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        AgentConfig(plaintext=True, **{field: value})


def test_unparsable_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match="reconnect_max"):
        build_config(read_env({"COVEY_RECONNECT_MAX": "soon"}), {"plaintext": True})
