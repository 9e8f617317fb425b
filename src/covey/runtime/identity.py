"""Who an agent is across restarts — its node id and incarnation —, the address it
advertises, and the core's settings made of them."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from covey.core import Address, CoreConfig
from covey.runtime.config.model import RECONNECT_FIRST, AgentConfig, ConfigError, is_wildcard
from covey.runtime.net.interfaces import DiscoveryPlan

log = logging.getLogger("covey.agent")


def advertised(config: AgentConfig, plan: DiscoveryPlan) -> Address:
    """The address peers reach us at: ``advertise``, the bind address, or the first
    discovery interface's of the bind's family when bound to a wildcard (``0.0.0.0``,
    ``::``; an IPv6 link-local address is never advertised: it needs a scope id)."""
    if config.advertise is not None:
        return config.advertise
    host, port = config.bind
    if not is_wildcard(host):
        return (host, port)
    ipv6 = host == "::"
    for iface in plan.interfaces:
        if iface.ipv6 == ipv6 and not (ipv6 and iface.address.startswith("fe80:")):
            return (iface.address, port)
    raise ConfigError(
        "advertise",
        f"needed when bind is {host or '0.0.0.0'} and no discovery interface of that family "
        "has a routable address",
    )


#: CoreConfig's default early TCP check (seconds after an unanswered ping).
TCP_CHECK_AFTER = 0.1


def core_config(config: AgentConfig, node_id: bytes, address: Address) -> CoreConfig:
    """The protocol core's settings for an agent of ``config`` (raises ConfigError)."""
    c = config
    try:
        return CoreConfig(
            node_id=node_id,
            name=c.name,
            cluster=c.cluster,
            address=address,
            tags=dict(c.tags),
            probe_interval=c.probe_interval,
            probe_timeout=c.probe_timeout,
            # The early TCP check never waits past a (shortened) probe timeout.
            tcp_check_after=min(TCP_CHECK_AFTER, c.probe_timeout),
            gossip_interval=c.gossip_interval,
            reap_failed_after=c.reap_failed_after,
            reconnect_interval=RECONNECT_FIRST,
            reconnect_max=c.reconnect_max,
        )
    except ValueError as exc:
        field, _, msg = str(exc).partition(": ")
        raise ConfigError(field, msg) from None


def fresh_node_id() -> bytes:
    """16 random octets shaped as a version-4 UUID, as ``uuid.uuid4().bytes`` gives:
    written out here because importing :mod:`uuid` imports :mod:`platform` as well,
    a few milliseconds of every start for one call."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return bytes(raw)


def load_identity(data_dir: Path | None) -> tuple[bytes, int]:
    """(node id, incarnation to start at): persisted under ``data_dir``, else fresh."""
    if data_dir is None:
        return fresh_node_id(), 0
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("data_dir", f"cannot create {data_dir}: {exc.strerror}") from None
    path = data_dir / "node.json"
    try:
        raw = json.loads(path.read_text())
        node_id = bytes.fromhex(raw["node_id"])
        incarnation = int(raw["incarnation"])
        if len(node_id) != 16 or incarnation < 0:
            raise ValueError("bad identity")
    except FileNotFoundError:
        return fresh_node_id(), 0
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError("data_dir", f"{path} is unreadable: {exc}") from None
    # Start above the incarnation we last announced, so peers take our news at once.
    return node_id, incarnation + 1


def save_identity(data_dir: Path | None, node_id: bytes, incarnation: int) -> None:
    """Keep (node id, incarnation) under ``data_dir`` (a warning when it cannot)."""
    if data_dir is None:
        return
    path = data_dir / "node.json"
    tmp = path.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"node_id": node_id.hex(), "incarnation": incarnation}))
        tmp.replace(path)
    except OSError as exc:
        log.warning("cannot save identity to %s: %s", path, exc)
