"""The keyring on disk: ``<data_dir>/keyring.json``, so installed and promoted keys survive
a restart.

The key file (``--key-file``) seeds the keyring at the first start; from then on the
keyring file is what the agent starts with, and a cluster-wide ``covey keys`` operation
rewrites it (Serf's ``keyring`` file works the same way). The file holds the keys in
clear, so it is written with mode 0600, through a temporary file and a rename, and fsynced:
a crash leaves either the old keyring or the new one, never half of it.

Format: ``{"version": 1, "keys": ["<primary>", "<other>", ...]}``, the primary (sealing)
key first.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from covey.core.crypto.keyring import KeyError_, check_key
from covey.runtime.config.model import AgentConfig, ConfigError

log = logging.getLogger("covey.keys")

#: The keyring's file name inside the data directory.
KEYRING_FILE = "keyring.json"
_VERSION = 1


def keyring_path(config: AgentConfig) -> Path | None:
    """Where ``config``'s agent keeps its keyring (None: no data directory, memory only)."""
    if config.data_dir is None or config.plaintext:
        return None
    return config.data_dir / KEYRING_FILE


def load_keyring(path: Path) -> list[bytes] | None:
    """The keys stored at ``path``, primary first (None: no file yet).

    Raises:
        ConfigError: the file exists but cannot be read or holds no valid keys (field
            ``data_dir``; the agent refuses to start rather than fall back to old keys).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError("data_dir", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
        raw = data["keys"] if isinstance(data, dict) else None
        if not isinstance(raw, list) or not raw or not all(isinstance(k, str) for k in raw):
            raise ValueError("no list of keys")
        keys = [check_key(k) for k in raw]
    except (ValueError, KeyError, KeyError_) as exc:
        raise ConfigError("data_dir", f"{path} is not a keyring: {exc}") from None
    return list(dict.fromkeys(keys))


def save_keyring(path: Path, keys: list[bytes]) -> None:
    """Write ``keys`` (primary first) to ``path`` atomically, mode 0600.

    Raises:
        OSError: the file could not be written (the old one, if any, is left intact).
    """
    data = json.dumps({"version": _VERSION, "keys": [k.decode() for k in keys]}, indent=1)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # the umask cannot widen it, but an old tmp file might
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def starting_keys(config: AgentConfig) -> list[bytes]:
    """The keys an agent starts with: its stored keyring if there is one, else the
    configured ones (the key file: the seed), which are then stored.

    Raises:
        ConfigError: the stored keyring is unreadable, or cannot be written.
    """
    keys = list(config.keys)
    path = keyring_path(config)
    if path is None or not keys:
        return keys
    stored = load_keyring(path)
    if stored is not None:
        if set(stored) != set(keys):
            log.info(
                "keys from %s (%d); the key file only seeds a new data directory",
                path,
                len(stored),
            )
        return stored
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        save_keyring(path, keys)
    except OSError as exc:
        raise ConfigError("data_dir", f"cannot write {path}: {exc.strerror}") from None
    return keys
