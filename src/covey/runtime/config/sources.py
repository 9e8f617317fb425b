"""Where agent settings come from: TOML file, ``COVEY_*`` environment, flags — merged.

Precedence is flags > environment > file > defaults. Every source maps setting keys
(``bind``, ``interface``, ``tag``...) to values that are either typed already or text as
found in the environment (lists comma-separated). :func:`build_config` parses them, reads
the key file and returns a validated :class:`AgentConfig`, raising :class:`ConfigError`
(``"<field>: <problem>"``) on the first bad value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from covey.core import Address
from covey.core.crypto.fernet import FernetKey
from covey.runtime.config.items import as_list as _as_list
from covey.runtime.config.items import parse_tags as parse_tags  # re-exported
from covey.runtime.config.model import (
    DEFAULT_BEACON_PORT,
    DEFAULT_PORT,
    ENV_PREFIX,
    AgentConfig,
    ConfigError,
    check_group,
    check_ipv4,
)

# ------------------------------------------------------------------ parsers


def parse_address(fname: str, value: object, default_port: int | None = None) -> Address:
    """Parse ``host:port`` (or a [host, port] pair) into an address, naming ``fname``."""
    if isinstance(value, list | tuple) and len(value) == 2:
        host, port = value
    elif isinstance(value, str):
        host, port_text = _split_host_port(fname, value.strip(), default_port)
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(fname, f"port {port_text!r} is not a number") from None
    else:
        raise ConfigError(fname, f"{value!r} is not HOST:PORT")
    if not isinstance(host, str) or not host:
        raise ConfigError(fname, "needs a host")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ConfigError(fname, "port must be 1..65535")
    return (host, port)


def _split_host_port(fname: str, text: str, default_port: int | None) -> tuple[str, str]:
    """(host, port text) of ``HOST:PORT``, ``[IPV6]:PORT``, or a bare host when a default
    port is given (a bare IPv6 address too: its colons are not a port)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ConfigError(fname, f"{text!r} has no closing ']'")
        if rest.startswith(":"):
            return host, rest[1:]
        if rest or default_port is None:
            raise ConfigError(fname, f"{text!r} is not [HOST]:PORT")
        return host, str(default_port)
    if text.count(":") > 1:
        if default_port is None:
            raise ConfigError(fname, f"{text!r}: write an IPv6 address with a port as [HOST]:PORT")
        return text, str(default_port)
    host, sep, port_text = text.rpartition(":")
    if not sep:
        if default_port is None:
            raise ConfigError(fname, f"{text!r} is not HOST:PORT")
        return text, str(default_port)
    return host, port_text


def _parse_bool(fname: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
    raise ConfigError(fname, f"{value!r} is not a boolean")


def _parse_float(fname: str, value: object) -> float:
    if isinstance(value, bool):
        raise ConfigError(fname, f"{value!r} is not a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(fname, f"{value!r} is not a number")


def _parse_int(fname: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(fname, f"{value!r} is not an integer")


def _parse_path(fname: str, value: object) -> Path:
    if isinstance(value, os.PathLike):
        return Path(value).expanduser()
    return Path(_parse_str(fname, value)).expanduser()


def _parse_str(fname: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(fname, f"{value!r} is not text")
    return value


def _parse_multicast(fname: str, value: object) -> tuple[bool, Address | None]:
    if value is False or (isinstance(value, str) and value.lower() in ("off", "none", "false")):
        return False, None
    if isinstance(value, str) and ":" not in value:
        return True, (check_ipv4(fname, value).compressed, 0)  # port filled in below
    if isinstance(value, str) and (
        (not value.startswith("[") and value.count(":") > 1) or value.strip().endswith("]")
    ):
        bare = value.strip().strip("[]")
        return True, (check_group(fname, bare).compressed, 0)  # a bare IPv6 group, no port
    return True, parse_address(fname, value)


#: Fewest characters an HTTP token may have (a guessable token protects nothing).
MIN_TOKEN_LENGTH = 16


def load_http_token(path: Path) -> str:
    """The bearer token in ``path`` (its first line, stripped).

    Raises:
        ConfigError: naming ``http_token_file``, when it cannot be read or the token is
            shorter than :data:`MIN_TOKEN_LENGTH` characters.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError("http_token_file", f"cannot read {path}: {reason}") from None
    lines = text.strip().splitlines()
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise ConfigError(
            "http_token_file",
            f"{path} must hold one token of at least {MIN_TOKEN_LENGTH} characters, no spaces",
        )
    return token


def exposed_mode(path: Path) -> int | None:
    """The permission bits of ``path`` when group or others may read it, else None."""
    try:
        mode = Path(path).stat().st_mode & 0o777
    except OSError:
        return None
    return mode if mode & 0o077 else None


def load_keys(path: Path) -> tuple[bytes, ...]:
    """Read a key file: one Fernet key per line, blank lines and ``#`` comments ignored."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError("key_file", f"cannot read {path}: {reason}") from None
    keys: list[bytes] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            FernetKey(line.encode())
        except ValueError:
            raise ConfigError("key_file", f"{path}:{lineno} is not a Fernet key") from None
        keys.append(line.encode())
    if not keys:
        raise ConfigError("key_file", f"{path} holds no key")
    return tuple(keys)


# ------------------------------------------------------------------ merging sources

Parser = Callable[[str, object], object]

#: Settings a TOML file, environment variable or flag may give: key → (field, parser).
_SETTINGS: dict[str, tuple[str, Parser]] = {
    "name": ("name", _parse_str),
    "cluster": ("cluster", _parse_str),
    "bind": ("bind", parse_address),
    "advertise": ("advertise", parse_address),
    "interface": ("interfaces", lambda f, v: tuple(_parse_str(f, x) for x in _as_list(v))),
    "multicast": ("multicast", _parse_multicast),
    "join": (
        "join",
        lambda f, v: tuple(parse_address(f, x, DEFAULT_PORT) for x in _as_list(v)),
    ),
    "srv": ("srv", _parse_str),
    "srv_resolver": ("srv_resolver", lambda f, v: parse_address(f, v, 53)),
    "srv_interval": ("srv_interval", _parse_float),
    "zre": ("zre", _parse_bool),
    "zre_port": ("zre_port", lambda f, v: _parse_int(f, v)),
    "zre_group": ("zre_groups", lambda f, v: tuple(_parse_str(f, x) for x in _as_list(v))),
    "key_file": ("key_file", _parse_path),
    "plaintext": ("plaintext", _parse_bool),
    "local_channel": ("local_channel", _parse_bool),
    "data_dir": ("data_dir", _parse_path),
    "http": ("http", parse_address),
    "control": ("control", _parse_path),
    "rpc": ("rpc", parse_address),
    "tag": ("tags", parse_tags),
    "probe_interval": ("probe_interval", _parse_float),
    "probe_timeout": ("probe_timeout", _parse_float),
    "gossip_interval": ("gossip_interval", _parse_float),
    "stream_timeout": ("stream_timeout", _parse_float),
    "idle_timeout": ("idle_timeout", _parse_float),
    "max_connections": ("max_connections", lambda f, v: _parse_int(f, v)),
    "clock_leap": ("clock_leap", _parse_float),
    "reap_failed_after": ("reap_failed_after", _parse_float),
    "reconnect_max": ("reconnect_max", _parse_float),
    "log_level": ("log_level", lambda f, v: _parse_str(f, v).lower()),
    "log_format": ("log_format", _parse_str),
    "local_version": ("local_version", lambda f, v: _parse_str(f, str(v))),
    "version_file": ("version_file", _parse_path),
    "fact": ("facts", parse_tags),
    "export_dir": ("export_dir", _parse_path),
    "export_command": ("export_command", _parse_str),
    "event_handler": (
        "event_handlers",
        lambda f, v: tuple(_parse_str(f, x) for x in (v if isinstance(v, list | tuple) else [v])),
    ),
    "action_handler": ("action_handler", _parse_str),
    "versions_count_failed": ("versions_count_failed", _parse_bool),
    "election": ("election", _parse_bool),
    "expected_votes": ("expected_votes", lambda f, v: _parse_int(f, v)),
    "election_bootstrap": ("election_bootstrap", _parse_float),
    "two_node": ("two_node", _parse_bool),
    "election_heartbeat": ("election_heartbeat", _parse_float),
    "fence_command": ("fence_command", _parse_str),
    "heartbeat_disk": ("heartbeat_disk", _parse_path),
    "deliveries": ("deliveries", _parse_bool),
    "scheduler": ("scheduler", _parse_str),
    "delivery_handler": ("delivery_handler", _parse_str),
    "delivery_deadline": ("delivery_deadline", _parse_float),
    "notify": ("notify", lambda f, v: tuple(_parse_str(f, x) for x in _as_list(v))),
    "notify_secret": ("notify_secret", _parse_str),
    "trace_buffer": ("trace_buffer", lambda f, v: _parse_int(f, v)),
    "collector": ("collector", parse_address),
    "http_token_file": ("http_token_file", _parse_path),
    "strict_permissions": ("strict_permissions", _parse_bool),
    "notify_events": ("notify_events", lambda f, v: tuple(_parse_str(f, x) for x in _as_list(v))),
}
#: Plural spellings accepted in TOML files.
_ALIASES = {
    "interfaces": "interface",
    "tags": "tag",
    "facts": "fact",
    "event_handlers": "event_handler",
    "zre_groups": "zre_group",
}

#: Settings whose sources are merged key by key rather than replaced.
_MERGED = ("tag", "fact")
#: Settings holding a path: relative ones in a TOML file are relative to the file.
_PATHS = tuple(k for k, (_, parser) in _SETTINGS.items() if parser is _parse_path)

#: The environment variables read, for the documentation.
ENV_VARS = tuple(ENV_PREFIX + key.upper() for key in _SETTINGS)


def read_toml(path: Path) -> dict[str, object]:
    """Read a TOML config file into raw settings (keys as in :data:`_SETTINGS`).

    A relative path in it (``key_file = "cluster.key"``) is relative to the file's own
    directory, not to where the agent happens to be started.
    """
    import tomllib  # only with --config: 4 ms of every start otherwise

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path}: {exc}") from None
    # Accept a [covey] or [agent] table as well as top-level keys.
    for table in ("agent", "covey"):
        inner = data.get(table)
        if isinstance(inner, dict):
            data = {**{k: v for k, v in data.items() if k != table}, **inner}
    out: dict[str, object] = {}
    for key, value in data.items():
        norm = key.replace("-", "_")
        norm = _ALIASES.get(norm, norm)
        if norm not in _SETTINGS:
            raise ConfigError(key, f"unknown setting in {path}")
        if norm in _PATHS and isinstance(value, str):
            found = Path(value).expanduser()
            value = str(found if found.is_absolute() else path.parent / found)
        out[norm] = value
    return out


def read_env(environ: Mapping[str, str]) -> dict[str, object]:
    """Raw settings from ``COVEY_*`` environment variables (lists are comma-separated)."""
    out: dict[str, object] = {}
    for key in _SETTINGS:
        value = environ.get(ENV_PREFIX + key.upper())
        if value is not None and value != "":
            out[key] = value
    for alias, key in _ALIASES.items():
        value = environ.get(ENV_PREFIX + alias.upper())
        if value and key not in out:
            out[key] = value
    return out


def build_config(*sources: Mapping[str, object]) -> AgentConfig:
    """Merge raw settings, lowest precedence first, into a validated :class:`AgentConfig`.

    Each source maps setting keys (``bind``, ``interface``, ``tag``...) to values that are
    either already typed or text as found in the environment. ``None`` values are absent.
    Reads the key file, so every error shows before any socket exists.
    """
    merged: dict[str, object] = {}
    for source in sources:
        for key, value in source.items():
            if value is None or (isinstance(value, list | tuple) and not value):
                continue
            key = key.replace("-", "_")
            if key in _MERGED and key in merged:
                # Tags and facts add up key by key (a flag or COVEY_TAG changes one tag,
                # it does not drop the file's others).
                earlier = parse_tags(key, merged[key])
                value = {**earlier, **parse_tags(key, value)}
            merged[key] = value
    kwargs: dict[str, Any] = {}
    for key, value in merged.items():
        if key not in _SETTINGS:
            raise ConfigError(key, "unknown setting")
        fname, parser = _SETTINGS[key]
        if fname == "multicast":
            kwargs["discovery"], kwargs["multicast"] = _parse_multicast(key, value)
        else:
            kwargs[fname] = parser(key, value)
    group = kwargs.get("multicast")
    if group is not None and group[1] == 0:
        kwargs["multicast"] = (group[0], DEFAULT_BEACON_PORT)
    key_file = kwargs.get("key_file")
    if key_file is not None and not kwargs.get("plaintext"):
        kwargs["keys"] = load_keys(key_file)
        mode = exposed_mode(key_file)
        if mode is not None and kwargs.get("strict_permissions"):
            raise ConfigError(
                "key_file",
                f"{key_file} is readable by others (mode {mode:o}): chmod 600 it "
                "(--strict-permissions refuses it)",
            )
    token_file = kwargs.get("http_token_file")
    if token_file is not None:
        kwargs["http_token"] = load_http_token(token_file)
    return AgentConfig(**kwargs)
