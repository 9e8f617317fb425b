"""Agent configuration: one frozen record, merged from flags > environment > TOML > defaults.

Every value is checked before anything binds a socket; a bad one raises :class:`ConfigError`
whose message starts with the field's name (``bind: port must be 1..65535``), which the CLI
prints as one line before exiting with status 2. The key file is read here too, so a
missing or malformed key stops the agent before it half-starts.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from covey.core import TAGS_LIMIT, Address
from covey.core import ConfigError as CoreConfigError
from covey.core.config import check_tags

#: Default multicast group of the discovery beacons (organisation-local scope, RFC 2365).
DEFAULT_GROUP = "239.192.77.1"
#: Default port of the agent (UDP and TCP).
DEFAULT_PORT = 7946
#: Environment variables start with this.
ENV_PREFIX = "COVEY_"
#: Longest path a unix socket address can hold on Linux (sun_path minus the final NUL).
_UNIX_PATH_MAX = 107


class ConfigError(ValueError):
    """A configuration value is wrong; ``str(err)`` is ``"<field>: <what is wrong>"``."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything one covey agent needs to run.

    Attributes:
        name: this node's name (default: the host name).
        cluster: cluster name; frames of other clusters are dropped and counted.
        bind: (host, port) of the UDP socket and TCP listener; one port for both.
        advertise: (host, port) peers should use, when ``bind`` is a wildcard or NAT'ed
            address; default: ``bind``, or the first chosen interface when ``bind`` is
            0.0.0.0.
        interfaces: interface names or IPv4 addresses that carry discovery beacons; empty
            means every non-loopback IPv4 interface that is up.
        multicast: (group, port) of the discovery beacons; a broadcast address instead of
            a multicast group selects broadcast. ``None``: group 239.192.77.1 on the
            agent's own port.
        discovery: False disables multicast/broadcast discovery (``--no-multicast``).
        join: static (host, port) seeds contacted by TCP push-pull at start.
        key_file: file of Fernet keys, one per line, the first one encrypts.
        keys: the keys themselves (read from ``key_file``, or given directly by API users).
        plaintext: explicit opt-in to unencrypted traffic (no keys at all).
        data_dir: directory for the node's persistent identity and the control socket.
        http: (host, port) of the HTTP status API, or None.
        control: path of the local control socket (default: ``<data_dir>/covey.sock``, else
            ``/tmp/covey-<name>.sock``).
        rpc: (host, port) of the authenticated TCP control endpoint, or None.
        tags: initial key/value metadata.
        probe_interval / probe_timeout / gossip_interval: protocol timings in seconds.
        stream_timeout: seconds an outgoing TCP exchange may take in total.
        clock_leap: wall-clock jumps larger than this (seconds) are reported as events.
        log_level: debug, info, warning or error.
    """

    name: str = field(default_factory=socket.gethostname)
    cluster: str = "covey"
    bind: Address = ("0.0.0.0", DEFAULT_PORT)
    advertise: Address | None = None
    interfaces: tuple[str, ...] = ()
    multicast: Address | None = None
    discovery: bool = True
    join: tuple[Address, ...] = ()
    key_file: Path | None = None
    keys: tuple[bytes, ...] = ()
    plaintext: bool = False
    data_dir: Path | None = None
    http: Address | None = None
    control: Path | None = None
    rpc: Address | None = None
    tags: dict[str, str] = field(default_factory=dict)
    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    gossip_interval: float = 0.2
    stream_timeout: float = 2.0
    clock_leap: float = 5.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        _check_text("name", self.name)
        _check_text("cluster", self.cluster)
        _check_address("bind", self.bind, allow_zero_port=False)
        for fname in ("advertise", "http", "rpc"):
            value = getattr(self, fname)
            if value is not None:
                _check_address(fname, value, allow_zero_port=False)
        if self.advertise is not None and _is_wildcard(self.advertise[0]):
            raise ConfigError("advertise", "must be a concrete address, not a wildcard")
        for addr in self.join:
            _check_address("join", addr, allow_zero_port=False)
        if self.multicast is not None:
            _check_address("multicast", self.multicast, allow_zero_port=False)
            _check_ipv4("multicast", self.multicast[0])
        for name in self.interfaces:
            if not name:
                raise ConfigError("interface", "empty interface name")
        if self.plaintext and (self.keys or self.key_file is not None):
            raise ConfigError("plaintext", "cannot be combined with a key file")
        if not self.plaintext and not self.keys:
            raise ConfigError("key_file", "required (or choose plain text with --plaintext)")
        for i, key in enumerate(self.keys, 1):
            try:
                Fernet(key)
            except ValueError:
                raise ConfigError("key_file", f"key {i} is not a Fernet key") from None
        try:
            check_tags(self.tags)
        except CoreConfigError as exc:
            raise ConfigError("tag", str(exc).removeprefix("tags: ")) from None
        for fname in (
            "probe_interval",
            "probe_timeout",
            "gossip_interval",
            "stream_timeout",
            "clock_leap",
        ):
            value = getattr(self, fname)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(fname.replace("_", "-"), "must be a positive number")
        if self.probe_timeout >= self.probe_interval:
            raise ConfigError("probe-timeout", "must be shorter than probe-interval")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError("log_level", "must be debug, info, warning or error")
        if len(os.fsencode(str(self.control_path))) > _UNIX_PATH_MAX:
            raise ConfigError("control", f"path longer than {_UNIX_PATH_MAX} bytes")

    @property
    def control_path(self) -> Path:
        """Where the local control socket lives."""
        if self.control is not None:
            return self.control
        if self.data_dir is not None:
            return self.data_dir / "covey.sock"
        return Path(f"/tmp/covey-{self.name}.sock")

    @property
    def multicast_group(self) -> Address:
        """The (group, port) discovery beacons go to."""
        return self.multicast or (DEFAULT_GROUP, self.bind[1])

    def with_changes(self, **changes: Any) -> AgentConfig:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)


# ------------------------------------------------------------------ value checks


def _check_text(fname: str, value: str) -> None:
    if not isinstance(value, str) or not value or len(value) > 255:
        raise ConfigError(fname, "must be 1 to 255 characters")
    if any(c in value for c in "/\x00\n") and fname == "name":
        raise ConfigError(fname, "must not contain '/', NUL or newlines")


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "")


def _check_ipv4(fname: str, host: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        raise ConfigError(fname, f"{host!r} is not an IPv4 address") from None


def _check_address(fname: str, addr: Address, *, allow_zero_port: bool) -> None:
    host, port = addr
    if not isinstance(host, str) or not host:
        raise ConfigError(fname, "needs a host")
    low = 0 if allow_zero_port else 1
    if not isinstance(port, int) or not low <= port <= 65535:
        raise ConfigError(fname, f"port must be {low}..65535")


# ------------------------------------------------------------------ parsers


def parse_address(fname: str, value: object, default_port: int | None = None) -> Address:
    """Parse ``host:port`` (or a [host, port] pair) into an address, naming ``fname``."""
    if isinstance(value, list | tuple) and len(value) == 2:
        host, port = value
    elif isinstance(value, str):
        host, sep, port_text = value.strip().rpartition(":")
        if not sep:
            if default_port is None:
                raise ConfigError(fname, f"{value!r} is not HOST:PORT")
            host, port_text = value.strip(), str(default_port)
        host = host.strip("[]")
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


def _as_list(value: object) -> list[Any]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


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


def _parse_path(fname: str, value: object) -> Path:
    if isinstance(value, os.PathLike):
        return Path(value).expanduser()
    return Path(_parse_str(fname, value)).expanduser()


def _parse_str(fname: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(fname, f"{value!r} is not text")
    return value


def parse_tags(fname: str, value: object) -> dict[str, str]:
    """Parse a tag table, or ``KEY=VALUE`` items (a list, or comma-separated text)."""
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ConfigError(fname, "keys and values must be text")
            out[k] = v
        return out
    out = {}
    for item in _as_list(value):
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(fname, f"{item!r} is not KEY=VALUE")
        k, _, v = item.partition("=")
        if not k:
            raise ConfigError(fname, f"{item!r} has an empty key")
        out[k] = v
    return out


def _parse_multicast(fname: str, value: object) -> tuple[bool, Address | None]:
    if value is False or (isinstance(value, str) and value.lower() in ("off", "none", "false")):
        return False, None
    if isinstance(value, str) and ":" not in value:
        return True, (_check_ipv4(fname, value).compressed, 0)  # port filled in below
    return True, parse_address(fname, value)


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
            Fernet(line.encode())
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
    "key_file": ("key_file", _parse_path),
    "plaintext": ("plaintext", _parse_bool),
    "data_dir": ("data_dir", _parse_path),
    "http": ("http", parse_address),
    "control": ("control", _parse_path),
    "rpc": ("rpc", parse_address),
    "tag": ("tags", parse_tags),
    "probe_interval": ("probe_interval", _parse_float),
    "probe_timeout": ("probe_timeout", _parse_float),
    "gossip_interval": ("gossip_interval", _parse_float),
    "stream_timeout": ("stream_timeout", _parse_float),
    "clock_leap": ("clock_leap", _parse_float),
    "log_level": ("log_level", lambda f, v: _parse_str(f, v).lower()),
}
#: Plural spellings accepted in TOML files.
_ALIASES = {"interfaces": "interface", "tags": "tag"}

#: The environment variables read, for the documentation.
ENV_VARS = tuple(ENV_PREFIX + key.upper() for key in _SETTINGS)


def read_toml(path: Path) -> dict[str, object]:
    """Read a TOML config file into raw settings (keys as in :data:`_SETTINGS`)."""
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
            merged[key.replace("-", "_")] = value
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
        bind = kwargs.get("bind", AgentConfig.__dataclass_fields__["bind"].default)
        kwargs["multicast"] = (group[0], bind[1])
    key_file = kwargs.get("key_file")
    if key_file is not None and not kwargs.get("plaintext"):
        kwargs["keys"] = load_keys(key_file)
    return AgentConfig(**kwargs)


def config_fields() -> list[str]:
    """Names of the :class:`AgentConfig` fields (for documentation and tests)."""
    return [f.name for f in fields(AgentConfig)]


__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_PORT",
    "ENV_VARS",
    "TAGS_LIMIT",
    "AgentConfig",
    "ConfigError",
    "build_config",
    "load_keys",
    "parse_address",
    "parse_tags",
    "read_env",
    "read_toml",
]
