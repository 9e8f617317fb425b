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
from dataclasses import field, replace
from pathlib import Path
from typing import Any

from covey.core import Address
from covey.core import ConfigError as CoreConfigError
from covey.core.config import check_tags
from covey.core.crypto.fernet import FernetKey
from covey.core.records import record
from covey.runtime.config.errors import ConfigError as ConfigError  # re-exported
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


@record
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


@record
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
        zre / zre_port / zre_groups: ZRE mode (``--zre``): also a ZRE v2 node beside Zyre
            and pyre peers, beaconing on UDP ``zre_port`` (5670) over the discovery
            interfaces and JOINing ``zre_groups`` (see runtime/zre/feature.py).
        key_file: file of Fernet keys, one per line, the first one encrypts.
        keys: the keys themselves (read from ``key_file``, or given directly by API users).
        plaintext: explicit opt-in to unencrypted traffic (no keys at all).
        local_channel: talk to agents of the same host over unix sockets
            (:mod:`covey.runtime.net.local_channel`) instead of UDP/TCP.
        data_dir: directory for the node's persistent identity and the control socket.
        http: (host, port) of the HTTP status API, or None.
        control: path of the local control socket (default: ``<data_dir>/covey.sock``, else
            ``<runtime dir>/<cluster>-<name>.sock``: see runtime/control/paths.py).
        rpc: (host, port) of the authenticated TCP control endpoint, or None.
        tags: initial key/value metadata.
        probe_interval / probe_timeout / gossip_interval: protocol timings in seconds.
        stream_timeout: seconds an outgoing TCP exchange may take in total.
        idle_timeout: seconds a client of any listening port (stream, control, rpc, HTTP)
            may take to send one whole request, or stay idle between two; slower or idle
            connections are closed and counted (``<port>_timeout``).
        max_connections: connections each listening port serves at once; lowered at
            start so that every port's share fits the descriptor limit (see
            runtime/net/limits.py). More are accepted and closed (``<port>_busy``).
        reap_failed_after: seconds a failed member is kept before it is reaped (it stays
            remembered as lost and re-contacted, so partitions longer than this heal).
        reconnect_max: the longest delay, under back-off, between two attempts to
            re-contact failed or lost members and seeds (at least 2 s, the first delay).
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
        election: False switches the leader election off (``--no-election``).
        expected_votes: cluster size for the election quorum (must be the same on every
            node); None (the default) tracks it: the largest membership seen alive.
        election_bootstrap: seconds a starting node collects peers before it stands
            (tracked size only), and of steady membership before leadership is stable.
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
    zre: bool = False
    zre_port: int = 5670
    zre_groups: tuple[str, ...] = ()
    key_file: Path | None = None
    keys: tuple[bytes, ...] = ()
    plaintext: bool = False
    local_channel: bool = False
    data_dir: Path | None = None
    http: Address | None = None
    control: Path | None = None
    rpc: Address | None = None
    tags: dict[str, str] = field(default_factory=dict)
    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    gossip_interval: float = 0.2
    stream_timeout: float = 2.0
    idle_timeout: float = 10.0
    max_connections: int = 256
    reap_failed_after: float = 3600.0
    reconnect_max: float = 30.0
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
    election: bool = True
    expected_votes: int | None = None
    election_bootstrap: float = 4.0
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
        check_address("bind", self.bind, allow_zero_port=False)
        for fname in ("advertise", "http", "rpc"):
            value = getattr(self, fname)
            if value is not None:
                check_address(fname, value, allow_zero_port=False)
        if self.advertise is not None and _is_wildcard(self.advertise[0]):
            raise ConfigError("advertise", "must be a concrete address, not a wildcard")
        for addr in self.join:
            check_address("join", addr, allow_zero_port=False)
        if self.multicast is not None:
            check_address("multicast", self.multicast, allow_zero_port=False)
            check_group("multicast", self.multicast[0])
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
            "idle_timeout",
            "clock_leap",
            "reap_failed_after",
            "reconnect_max",
        ):
            value = getattr(self, fname)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(fname.replace("_", "-"), "must be a positive number")
        if isinstance(self.max_connections, bool) or not (
            isinstance(self.max_connections, int) and 1 <= self.max_connections <= 65536
        ):
            raise ConfigError("max-connections", "must be an integer from 1 to 65536")
        if self.probe_timeout >= self.probe_interval:
            raise ConfigError("probe-timeout", "must be shorter than probe-interval")
        if self.reconnect_max < RECONNECT_FIRST:
            raise ConfigError("reconnect-max", f"must be at least {RECONNECT_FIRST} s")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError("log_level", "must be debug, info, warning or error")
        if self.log_format not in ("text", "json"):
            raise ConfigError("log_format", "must be text or json")
        from covey.runtime.config import checks  # the features' settings (no import cycle)

        checks.check_election(self)
        if len(os.fsencode(str(self.control_path))) > _UNIX_PATH_MAX:
            raise ConfigError("control", f"path longer than {_UNIX_PATH_MAX} bytes")
        checks.check_shared_state(self)
        checks.check_deliveries(self)
        checks.check_traces(self)
        checks.check_families(self)
        checks.check_zre(self)
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


#: The first reconnect delay (CoreConfig.reconnect_interval); back-off doubles it.
RECONNECT_FIRST = 2.0


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
    return is_wildcard(host)


def is_wildcard(host: str) -> bool:
    """``host`` binds every address (IPv4's ``0.0.0.0``, IPv6's ``::``, or empty)."""
    return host in ("0.0.0.0", "::", "")


def check_ipv4(fname: str, host: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        raise ConfigError(fname, f"{host!r} is not an IPv4 address") from None


def check_group(fname: str, host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A beacon destination: any IPv4 address (a multicast group or a broadcast address),
    or an IPv6 multicast group (IPv6 has no broadcast)."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(fname, f"{host!r} is not an IP address") from None
    if addr.version == 6 and not addr.is_multicast:
        raise ConfigError(fname, f"{host} is not an IPv6 multicast group (ff00::/8)")
    return addr


def check_address(fname: str, addr: Address, *, allow_zero_port: bool) -> None:
    host, port = addr
    if not isinstance(host, str) or not host:
        raise ConfigError(fname, "needs a host")
    low = 0 if allow_zero_port else 1
    if not isinstance(port, int) or not low <= port <= 65535:
        raise ConfigError(fname, f"port must be {low}..65535")
