"""The settings of the features, checked when an :class:`~.model.AgentConfig` is built:
shared state (versions, facts, exporters), the election, deliveries and traces; and that
the agent's addresses are of one IP family.

Kept apart from :mod:`covey.runtime.config.model`, which holds the record and the
membership and network settings; each check raises :class:`~.model.ConfigError` naming
the field.
"""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path
from typing import TYPE_CHECKING

from covey.runtime.config.model import ConfigError, check_address

if TYPE_CHECKING:
    from covey.runtime.config.model import AgentConfig


def check_shared_state(c: AgentConfig) -> None:
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


def check_election(c: AgentConfig) -> None:
    ev = c.expected_votes
    if ev is not None and (type(ev) is not int or not 1 <= ev <= 10_000):
        raise ConfigError("expected_votes", "must be an integer in 1..10000")
    if c.two_node and ev not in (None, 2):
        raise ConfigError("two_node", "needs expected_votes = 2")
    b = c.election_bootstrap
    if not (isinstance(b, int | float) and math.isfinite(b) and 0 <= b <= 600):
        raise ConfigError("election_bootstrap", "must be a number of seconds in 0..600")
    if not c.election:
        for fname in ("expected_votes", "two_node"):
            if getattr(c, fname) not in (None, False):
                raise ConfigError(fname, "needs the election (it is switched off)")
    h = c.election_heartbeat
    if not (isinstance(h, int | float) and math.isfinite(h) and 0.01 <= h <= 60):
        raise ConfigError("election_heartbeat", "must be a number of seconds in 0.01..60")
    if not c.election:
        for fname in ("fence_command", "heartbeat_disk"):
            if getattr(c, fname) is not None:
                raise ConfigError(fname, "needs the election (it is switched off)")


_NOTIFY_EVENTS = ("receipt", "stage", "complete", "failed")


def check_deliveries(c: AgentConfig) -> None:
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


def check_traces(c: AgentConfig) -> None:
    if type(c.trace_buffer) is not int or not 0 <= c.trace_buffer <= 1_000_000:
        raise ConfigError("trace-buffer", "must be an integer in 0..1000000 (0: no tracing)")
    if c.collector is not None:
        check_address("collector", c.collector, allow_zero_port=False)
        if not c.keys:
            raise ConfigError("collector", "needs the cluster key (traces are sealed with it)")
        if c.trace_buffer == 0:
            raise ConfigError("collector", "needs tracing on (--trace-buffer above 0)")


def _family(host: str) -> int | None:
    """4 or 6 for an IP literal (or a wildcard), None for a host name."""
    if host in ("0.0.0.0", ""):
        return 4
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def check_families(c: AgentConfig) -> None:
    """The agent's one UDP socket speaks the bind address's family: an advertised or
    joined address of the other family could never be reached (host names are resolved
    later, by the family of the socket)."""
    bind = _family(c.bind[0])
    if bind is None:
        return
    named = [("advertise", c.advertise)] if c.advertise is not None else []
    named += [("join", addr) for addr in c.join]
    for fname, (host, _) in named:
        family = _family(host)
        if family is not None and family != bind:
            raise ConfigError(
                fname,
                f"{host} is an IPv{family} address but bind {c.bind[0] or '0.0.0.0'} is "
                f"IPv{bind} (bind [::] or an IPv6 address for an IPv6 cluster)",
            )


def check_zre(c: AgentConfig) -> None:
    """ZRE mode: a port, groups that fit a ZRE string, and interfaces to beacon on."""
    port = c.zre_port
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError("zre_port", "must be 1..65535")
    for group in c.zre_groups:
        if not isinstance(group, str) or not group or len(group.encode()) > 255:
            raise ConfigError("zre_group", f"{group!r} must be text of 1 to 255 bytes")
    if c.zre and not c.discovery:
        raise ConfigError(
            "zre", "beacons on the discovery interfaces: it cannot be combined with --no-multicast"
        )
    if c.zre and port in (c.bind[1], c.multicast_group[1]):
        raise ConfigError("zre_port", f"port {port} is already covey's own")
    if c.zre and len(c.name.encode()) > 255:
        raise ConfigError("name", "a ZRE name holds at most 255 bytes (UTF-8) with --zre")
    if c.zre and _family(c.bind[0]) == 6:
        raise ConfigError("zre", "ZRE beacons are IPv4 (RFC 36): bind an IPv4 address")
