"""Configuration of one protocol core: identity and timings.

The defaults follow HashiCorp memberlist's LAN profile where covey does the same thing
(probe interval 1 s, probe timeout 0.5 s, gossip every 0.2 s to 3 nodes, suspicion
multiplier 4, max multiplier 6), so comparisons with Serf are like for like.
"""

from __future__ import annotations

import math
from dataclasses import field

import msgpack

from covey.core.records import record
from covey.core.types import Address
from covey.core.wire.messages import NODE_ID_LEN

#: Most octets the msgpack-encoded tags of one node may take.
TAGS_LIMIT = 8192


class ConfigError(ValueError):
    """A core configuration value is out of range; the message names the field."""


@record
class CoreConfig:
    """Identity and timing of one node's protocol core.

    Attributes:
        node_id: 16-byte UUID of this node.
        name: human-readable node name.
        cluster: cluster name; frames from another cluster are ignored (and counted).
        address: the (host, port) peers reach this node on, for UDP and TCP alike.
        tags: initial key/value metadata (at most :data:`TAGS_LIMIT` octets encoded).
        probe_interval: seconds between probes of one member.
        probe_timeout: seconds to wait for a direct ack before indirect probes.
        tcp_check_after: seconds without an ack before the target's TCP port is tried (a
            refused connection proves the process gone); at most ``probe_timeout``.
        indirect_checks: members asked to probe on our behalf.
        gossip_interval: seconds between gossip rounds while there is news to spread.
        gossip_nodes: members each gossip round sends to.
        retransmit_mult: each update is sent retransmit_mult * log10(N+1) times.
        suspicion_mult: minimum suspicion timeout is suspicion_mult * log10(N) probe intervals.
        suspicion_max_mult: the suspicion timeout starts at this multiple of the minimum.
        push_pull_interval: seconds between anti-entropy full-state exchanges (scaled with N).
        awareness_max: upper bound of the local health score (Lifeguard).
        beacon_interval: seconds between discovery beacons once settled.
        beacon_jitter: fraction of the interval randomly added or removed.
        reconnect_interval: first delay before re-contacting failed members and seeds.
        reconnect_max: upper bound of that delay under backoff (and of the join retry's).
        join_retry_interval: first delay before a seed whose join failed (not up yet) is
            tried again, times 1-2 (jitter); it doubles per failure up to reconnect_max.
        reap_failed_after: seconds a failed member is kept (and re-contacted) before forgotten.
        reap_left_after: seconds a member that left is kept before forgotten.
        lost_limit: how many reaped failed members are remembered (and re-contacted for as
            long as the node runs) so that a partition longer than the reap time heals.
        max_datagram: largest datagram sent.
        eager_gossip: send news at once instead of waiting for the next gossip tick.
        direct_push_limit: up to this many live members, news that originates here (our
            tag changes, refutations, extension updates marked direct) goes straight to
            every member, one hop, besides being gossiped.
        settled_beacons: keep sending periodic beacons once joined with nobody missing
            (off: a settled node is silent; newcomers announce themselves and get answers).
    """

    node_id: bytes
    name: str
    cluster: str
    address: Address
    tags: dict[str, str] = field(default_factory=dict)
    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    tcp_check_after: float = 0.1
    indirect_checks: int = 3
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    retransmit_mult: int = 4
    suspicion_mult: int = 4
    suspicion_max_mult: int = 6
    push_pull_interval: float = 30.0
    awareness_max: int = 8
    beacon_interval: float = 5.0
    beacon_jitter: float = 0.25
    reconnect_interval: float = 2.0
    reconnect_max: float = 30.0
    join_retry_interval: float = 0.1
    reap_failed_after: float = 3600.0
    reap_left_after: float = 600.0
    lost_limit: int = 128
    max_datagram: int = 1400
    eager_gossip: bool = True
    direct_push_limit: int = 16
    settled_beacons: bool = False

    def __post_init__(self) -> None:
        if len(self.node_id) != NODE_ID_LEN:
            raise ConfigError("node_id: must be 16 bytes")
        if not self.name or len(self.name.encode()) > 255:
            raise ConfigError("name: must be 1 to 255 octets of UTF-8")
        if not self.cluster or len(self.cluster.encode()) > 255:
            raise ConfigError("cluster: must be 1 to 255 octets of UTF-8")
        host, port = self.address
        if not host or not 0 < port < 65536:
            raise ConfigError("address: needs a host and a port in 1..65535")
        check_tags(self.tags)
        for fname in (
            "probe_interval",
            "probe_timeout",
            "tcp_check_after",
            "gossip_interval",
            "push_pull_interval",
            "beacon_interval",
            "reconnect_interval",
            "reconnect_max",
            "join_retry_interval",
            "reap_failed_after",
            "reap_left_after",
        ):
            if getattr(self, fname) <= 0:
                raise ConfigError(f"{fname}: must be positive")
        if self.probe_timeout >= self.probe_interval:
            raise ConfigError("probe_timeout: must be shorter than probe_interval")
        if self.tcp_check_after > self.probe_timeout:
            raise ConfigError("tcp_check_after: must not be longer than probe_timeout")
        for fname in (
            "indirect_checks",
            "gossip_nodes",
            "retransmit_mult",
            "suspicion_mult",
            "suspicion_max_mult",
        ):
            if getattr(self, fname) < 1:
                raise ConfigError(f"{fname}: must be at least 1")
        if self.lost_limit < 0:
            raise ConfigError("lost_limit: must not be negative")
        if self.reconnect_max < self.reconnect_interval:
            raise ConfigError("reconnect_max: must not be shorter than reconnect_interval")
        if self.join_retry_interval > self.reconnect_max:
            raise ConfigError("join_retry_interval: must not be longer than reconnect_max")
        if not 0 <= self.beacon_jitter < 1:
            raise ConfigError("beacon_jitter: must be in [0, 1)")
        if not 576 <= self.max_datagram <= 65000:
            raise ConfigError("max_datagram: must be in 576..65000")


def check_tags(tags: dict[str, str]) -> None:
    """Raise :class:`ConfigError` unless ``tags`` is a str→str map within the size limit."""
    for k, v in tags.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ConfigError("tags: keys and values must be strings")
        if not k:
            raise ConfigError("tags: empty key")
    size = len(msgpack.packb(tags))
    if size > TAGS_LIMIT:
        raise ConfigError(f"tags: {size} octets encoded, limit {TAGS_LIMIT}")


def push_pull_scale(live: int) -> float:
    """memberlist's scaling of the anti-entropy interval beyond 32 live members."""
    if live <= 32:
        return 1.0
    return math.ceil(math.log2(live) - math.log2(32)) + 1.0
