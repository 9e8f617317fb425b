"""SIGHUP: read the settings again and apply what can change while the agent runs.

The settings are rebuilt from the same sources as at start (the ``--config`` file read
again, the environment and flags as they were; see
:class:`~covey.runtime.config.model.ReloadSources`). An agent built without them (from
Python) re-reads its key file only. Then:

* **keys** (the key file), when its content changed: the keyring seals with the new first
  key and opens with all of them from the next frame on, and is stored in
  ``<data_dir>/keyring.json`` (this member only; ``covey keys`` rotates cluster-wide, see
  docs/operations.md);
* **tags**: when the configured tags changed, they replace the agent's (and are gossiped);
* **log level**, and the **HTTP token** (``--http-token-file``, read on every request).

Anything else that differs (a port, the cluster name, a handler...) is *reported* in the log
as needing a restart and keeps its running value. A reload whose settings do not validate
changes nothing and says why.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from covey.core.crypto.keyring import KeyError_
from covey.runtime.config.model import AgentConfig, ConfigError
from covey.runtime.config.sources import build_config, load_keys, read_toml

if TYPE_CHECKING:
    from covey.runtime.agent import Agent

log = logging.getLogger("covey.reload")

#: Settings a reload applies; every other difference needs a restart.
RELOADABLE = ("keys", "key_file", "tags", "log_level", "http_token", "http_token_file")
#: Fields that are not settings of their own.
_NOT_SETTINGS = ("reload_from",)


def reread(config: AgentConfig) -> AgentConfig:
    """The settings read again from their sources.

    Raises:
        ConfigError: they no longer validate (the message names the field).
    """
    src = config.reload_from
    if src is None:
        if config.key_file is None or config.plaintext:
            return config
        return dataclasses.replace(config, keys=load_keys(config.key_file))
    file_settings = read_toml(src.config_file) if src.config_file is not None else {}
    fresh = build_config(file_settings, src.environment, src.flags)
    return dataclasses.replace(fresh, reload_from=src)


def reload_agent(agent: Agent) -> tuple[list[str], list[str]]:
    """Re-read ``agent``'s settings and apply what can change (see the module docstring).

    Returns:
        (what was reloaded, what differs but needs a restart), as setting names; both
        are logged here, one line each.
    """
    old = agent.config
    try:
        new = reread(old)
    except ConfigError as exc:
        log.warning("reload refused, nothing changed: config error: %s", exc)
        return [], []
    applied: list[str] = []
    if new.keys != old.keys:
        try:
            agent.keys.replace(list(new.keys))  # stored in the keyring file too
        except (KeyError_, OSError) as exc:
            log.warning("reload: keys not changed: %s", exc)
            new = dataclasses.replace(new, keys=old.keys, key_file=old.key_file)
        else:
            applied.append(f"keys ({len(new.keys)})")
    if new.tags != old.tags:
        try:
            agent.set_tags(new.tags)
            applied.append("tags")
        except (ConfigError, RuntimeError) as exc:
            log.warning("reload: tags not changed: %s", exc)
            new = dataclasses.replace(new, tags=old.tags)
    if new.log_level != old.log_level:
        logging.getLogger("covey").setLevel(new.log_level.upper())
        applied.append(f"log_level ({new.log_level})")
    if new.http_token != old.http_token:
        applied.append("http_token")
    restart = [
        f.name
        for f in dataclasses.fields(AgentConfig)
        if f.name not in RELOADABLE + _NOT_SETTINGS and getattr(new, f.name) != getattr(old, f.name)
    ]
    # What was applied becomes the agent's configuration; the rest keeps running as is.
    agent.config = dataclasses.replace(
        old, **{name: getattr(new, name) for name in RELOADABLE}, reload_from=new.reload_from
    )
    log.info("SIGHUP: reloaded %s", ", ".join(applied) if applied else "nothing (no change)")
    if restart:
        log.warning("SIGHUP: %s changed but need a restart (kept as running)", ", ".join(restart))
    return applied, restart
