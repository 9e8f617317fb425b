"""Agent configuration: one frozen, validated record (sources are merged in ``settings``).

Every value is checked before anything binds a socket; a bad one raises :class:`ConfigError`
whose message starts with the field's name (``bind: port must be 1..65535``), which the CLI
prints as one line before exiting with status 2.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from covey.core import Address
from covey.core import ConfigError as CoreConfigError
from covey.core.config import check_tags
from covey.core.crypto.fernet import FernetKey
from covey.runtime.config.srv import check_srv

#: Default multicast group of the discovery beacons (organisation-local scope, RFC 2365).
DEFAULT_GROUP = "239.192.77.1"
#: Default port of the agent (UDP and TCP).
DEFAULT_PORT = 7946
#: Default port of the discovery beacons: one port for every agent, so that many agents
#: on one host share it (SO_REUSEPORT) and hear each other, as seed 004 asks.
DEFAULT_BEACON_PORT = 7947
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
class ReloadSources:
    """The sources of an agent's settings besides defaults, kept for a reload.

    Attributes:
        config_file: the ``--config`` TOML file, read again on reload.
        environment: the ``COVEY_*`` settings as they were at start.
        flags: the command line's settings.
    """

    config_file: Path | None
    environment: dict[str, object]
    flags: dict[str, object]


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
            a multicast group selects broadcast. ``None``: 239.192.77.1:7947.
        discovery: False disables multicast/broadcast discovery (``--no-multicast``).
        join: static (host, port) seeds contacted by TCP push-pull at start.
        srv / srv_resolver / srv_interval: DNS SRV name whose targets are joined as seeds,
            the (IP, port) of the DNS server to ask (None: the system's resolver), and
            the seconds between two resolutions (errors retry sooner).
        key_file: file of Fernet keys, one per line, the first one encrypts.
        keys: the keys themselves (read from ``key_file``, or given directly by API users).
        plaintext: explicit opt-in to unencrypted traffic (no keys at all).
        data_dir: directory for the node's persistent identity and the control socket.
        http: (host, port) of the HTTP status API, or None.
        control: path of the local control socket (default: ``<data_dir>/covey.sock``, else
            ``<runtime dir>/<cluster>-<name>.sock``: see runtime/control/paths.py).
        rpc: (host, port) of the authenticated TCP control endpoint, or None.
        tags: initial key/value metadata.
        probe_interval / probe_timeout / gossip_interval: protocol timings in seconds.
        stream_timeout: seconds an outgoing TCP exchange may take in total.
        clock_leap: wall-clock jumps larger than this (seconds) are reported as events.
        log_level: debug, info, warning or error.
        log_format: ``text`` or ``json`` (one JSON object per line).
        local_version: this node's software version (integer or dotted), published as
            the ``covey.version`` fact; ``version_file`` instead reads it from a file
            (re-read when it changes).
        facts: facts (key → value) published at start.
        export_dir: directory the shared state is mirrored into, one file per key.
        export_command: shell command run once per change of the shared state.
        event_handlers: shell commands run for every event (Serf-style, COVEY_EVENT...).
        action_handler: shell command that runs cluster-wide actions here.
        versions_count_failed: count failed (not left) members in the lowest version.
        expected_votes: cluster size for the election quorum; setting it turns the
            election on (must be the same on every node).
        two_node: two-node election mode (expected_votes 2, wait_for_all, tie-breaker).
        election_heartbeat: leader heartbeat interval; lease and waits scale with it.
        fence_command: shell command the leader runs to fence a failed node.
        heartbeat_disk: shared heartbeat disk (file or block device, ``covey disk format``).
        deliveries: False switches the deliveries off here (``--deliveries off``): the
            node neither owns deliveries nor answers requests.
        scheduler: ``redis://HOST:PORT/DB`` shares one delivery schedule and record of
            receipts between nodes; None keeps them in ``<data_dir>/deliveries.db``.
        delivery_handler: shell command run per delivery request (payload on stdin,
            stdout the receipt's result, non-zero exit a refusal).
        delivery_deadline: seconds an asked member has to answer a stage with no
            deadline of its own before it is replaced.
        notify: URLs POSTed a signed JSON body per receipt, stage and end of a delivery.
        notify_secret: the HMAC-SHA256 key of ``X-Covey-Signature`` (required with notify).
        notify_events: which notifications to send (receipt, stage, complete, failed).
        trace_buffer: how many trace records the ring buffer keeps (0: no tracing).
        collector: (host, port) of a trace collector to stream the records to.
        http_token_file: a file holding the bearer token that mutating HTTP calls (and
            reading secrets over HTTP) need; without one they are refused.
        http_token: the token read from it (never logged or shown).
        strict_permissions: refuse a key file that group or others may read (without it,
            such a file is accepted with a warning in the log).
        reload_from: where the settings came from, so that SIGHUP can read them again
            (set by ``covey agent``; None: nothing to reload from but the key file).
    """

    name: str = field(default_factory=socket.gethostname)
    cluster: str = "covey"
    bind: Address = ("0.0.0.0", DEFAULT_PORT)
    advertise: Address | None = None
    interfaces: tuple[str, ...] = ()
    multicast: Address | None = None
    discovery: bool = True
    join: tuple[Address, ...] = ()
    srv: str | None = None
    srv_resolver: Address | None = None
    srv_interval: float = 30.0
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
    log_format: str = "text"
    local_version: str | None = None
    version_file: Path | None = None
    facts: dict[str, str] = field(default_factory=dict)
    export_dir: Path | None = None
    export_command: str | None = None
    event_handlers: tuple[str, ...] = ()
    action_handler: str | None = None
    versions_count_failed: bool = False
    expected_votes: int | None = None
    two_node: bool = False
    election_heartbeat: float = 0.2
    fence_command: str | None = None
    heartbeat_disk: Path | None = None
    deliveries: bool = True
    scheduler: str | None = None
    delivery_handler: str | None = None
    delivery_deadline: float = 30.0
    notify: tuple[str, ...] = ()
    notify_secret: str | None = None
    notify_events: tuple[str, ...] = ("receipt", "stage", "complete", "failed")
    trace_buffer: int = 10_000
    collector: Address | None = None
    http_token_file: Path | None = None
    http_token: str | None = field(default=None, repr=False)
    reload_from: ReloadSources | None = field(default=None, repr=False, compare=False)
    strict_permissions: bool = False

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
            check_ipv4("multicast", self.multicast[0])
        srv_problem = check_srv(self.srv, self.srv_resolver, self.srv_interval)
        if srv_problem is not None:
            raise ConfigError(*srv_problem)
        for name in self.interfaces:
            if not name:
                raise ConfigError("interface", "empty interface name")
        if self.plaintext and (self.keys or self.key_file is not None):
            raise ConfigError("plaintext", "cannot be combined with a key file")
        if not self.plaintext and not self.keys:
            raise ConfigError("key_file", "required (or choose plain text with --plaintext)")
        for i, key in enumerate(self.keys, 1):
            try:
                FernetKey(key)
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
        if self.log_format not in ("text", "json"):
            raise ConfigError("log_format", "must be text or json")
        _check_election(self)
        if len(os.fsencode(str(self.control_path))) > _UNIX_PATH_MAX:
            raise ConfigError("control", f"path longer than {_UNIX_PATH_MAX} bytes")
        _check_shared_state(self)
        _check_deliveries(self)
        _check_traces(self)
        _check_port_clashes(self)

    @property
    def control_path(self) -> Path:
        """Where the local control socket lives."""
        if self.control is not None:
            return self.control
        from covey.runtime.control.paths import DATA_DIR_SOCKET, runtime_dir, socket_name

        if self.data_dir is not None:
            return self.data_dir / DATA_DIR_SOCKET
        return runtime_dir() / socket_name(self.cluster, self.name)

    @property
    def multicast_group(self) -> Address:
        """The (group, port) discovery beacons go to."""
        return self.multicast or (DEFAULT_GROUP, DEFAULT_BEACON_PORT)

    def with_changes(self, **changes: Any) -> AgentConfig:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)


# ------------------------------------------------------------------ value checks


def _check_text(fname: str, value: str) -> None:
    if not isinstance(value, str) or not value or len(value) > 255:
        raise ConfigError(fname, "must be 1 to 255 characters")
    if any(c in value for c in "/\x00\n") and fname == "name":
        raise ConfigError(fname, "must not contain '/', NUL or newlines")


def _check_port_clashes(c: AgentConfig) -> None:
    """Two of our own TCP listeners on one port would pass the bind (SO_REUSEADDR) and fail
    only at listen(), after the join went out: refuse them here, before anything binds."""
    listeners = [("bind", c.bind), ("http", c.http), ("rpc", c.rpc)]
    given = [(name, addr) for name, addr in listeners if addr is not None]
    for i, (first, a) in enumerate(given):
        for second, b in given[i + 1 :]:
            same_host = a[0] == b[0] or _is_wildcard(a[0]) or _is_wildcard(b[0])
            if a[1] == b[1] and same_host:
                raise ConfigError(second, f"port {b[1]} is already --{first}'s")


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "")


def check_ipv4(fname: str, host: str) -> ipaddress.IPv4Address:
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


def _check_shared_state(c: AgentConfig) -> None:
    from covey.core.state.messages import LimitError, check_key, check_value
    from covey.core.state.versions import VersionError, parse_version

    if c.local_version is not None and c.version_file is not None:
        raise ConfigError("version", "give local_version or version_file, not both")
    if c.local_version is not None:
        try:
            parse_version(c.local_version)
        except VersionError as exc:
            raise ConfigError("local_version", str(exc)) from None
    if c.version_file is not None:
        read_version_file(c.version_file)
    try:
        for k, v in c.facts.items():
            check_key(k)
            check_value(v)
    except LimitError as exc:
        raise ConfigError("fact", str(exc)) from None
    for fname in ("export_command", "action_handler"):
        value = getattr(c, fname)
        if value is not None and not value.strip():
            raise ConfigError(fname.replace("_", "-"), "empty command")
    if any(not h.strip() for h in c.event_handlers):
        raise ConfigError("event-handler", "empty command")


def read_version_file(path: Path) -> str:
    """The version held in ``path`` (surrounding white space ignored).

    Raises:
        ConfigError: the file cannot be read or holds no valid version.
    """
    from covey.core.state.versions import VersionError, parse_version

    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError("version_file", f"cannot read {path}: {reason}") from None
    try:
        parse_version(text)
    except VersionError as exc:
        raise ConfigError("version_file", f"{path}: {exc}") from None
    return text


def _check_election(c: AgentConfig) -> None:
    ev = c.expected_votes
    if ev is not None and (type(ev) is not int or not 1 <= ev <= 10_000):
        raise ConfigError("expected_votes", "must be an integer in 1..10000")
    if c.two_node and ev not in (None, 2):
        raise ConfigError("two_node", "needs expected_votes = 2")
    h = c.election_heartbeat
    if not (isinstance(h, int | float) and math.isfinite(h) and 0.01 <= h <= 60):
        raise ConfigError("election_heartbeat", "must be a number of seconds in 0.01..60")
    if ev is None and not c.two_node:
        for fname in ("fence_command", "heartbeat_disk"):
            if getattr(c, fname) is not None:
                raise ConfigError(fname, "needs the election (set expected_votes)")


_NOTIFY_EVENTS = ("receipt", "stage", "complete", "failed")


def _check_deliveries(c: AgentConfig) -> None:
    if c.scheduler is not None and not c.scheduler.startswith("redis://"):
        raise ConfigError("scheduler", f"{c.scheduler!r} is not a redis://HOST:PORT/DB URL")
    if c.delivery_handler is not None and not c.delivery_handler.strip():
        raise ConfigError("delivery-handler", "empty command")
    d = c.delivery_deadline
    if not (isinstance(d, int | float) and math.isfinite(d) and 0 < d <= 86400):
        raise ConfigError("delivery-deadline", "must be a number of seconds in (0, 86400]")
    for url in c.notify:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("notify", f"{url!r} is not an http:// or https:// URL")
    if c.notify and not c.notify_secret:
        raise ConfigError("notify-secret", "required with --notify (the HMAC key receivers check)")
    for kind in c.notify_events:
        if kind not in _NOTIFY_EVENTS:
            names = ", ".join(_NOTIFY_EVENTS)
            raise ConfigError("notify-events", f"{kind!r} is not one of {names}")
    if not c.deliveries and (c.scheduler or c.delivery_handler or c.notify):
        why = "off, yet --scheduler, --delivery-handler or --notify given"
        raise ConfigError("deliveries", why)


def _check_traces(c: AgentConfig) -> None:
    if type(c.trace_buffer) is not int or not 0 <= c.trace_buffer <= 1_000_000:
        raise ConfigError("trace-buffer", "must be an integer in 0..1000000 (0: no tracing)")
    if c.collector is not None:
        _check_address("collector", c.collector, allow_zero_port=False)
        if not c.keys:
            raise ConfigError("collector", "needs the cluster key (traces are sealed with it)")
        if c.trace_buffer == 0:
            raise ConfigError("collector", "needs tracing on (--trace-buffer above 0)")
