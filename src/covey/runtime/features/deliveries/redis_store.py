"""The deliveries store in Redis (``--scheduler redis://HOST:PORT/DB``), shared by nodes.

Several agents of one cluster point at one Redis: they share the schedule (the ``due``
sorted set) and the receipts record, and a live node takes over the due deliveries of a
node whose lease expired. Every key starts with ``covey:<cluster>:``; the key layout is
in docs/protocol.md, "Deliveries in Redis".

The two writes that must not interleave with another node's are Lua scripts, which Redis
runs atomically: ``save_delivery`` (fence check, version check, record and scores) and
``takeover`` (ownership moves only while the old owner's lease key is absent). Durability
is Redis's: run it with ``appendonly yes`` and ``appendfsync always`` so a write this
store returned from survives a crash of Redis.

Every socket has a timeout and the client never retries by itself (a retried takeover
whose first reply was lost would claim silently): a failure is one
:class:`~covey.runtime.features.deliveries.store.StoreUnavailable`, and the caller waits
and tries again. ``redis`` is imported here only: import this module only when
``--scheduler`` names Redis, so other agents never load the client.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn, cast
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from covey.core.deliveries import DeliveryRecord, HandledRecord
from covey.core.deliveries.codec import (
    handled_from_plain,
    handled_to_plain,
    record_from_plain,
    record_to_plain,
)
from covey.runtime.config.model import ConfigError
from covey.runtime.features.deliveries.store import Fenced, StoreUnavailable

#: The port when the URL names none (Redis's own default).
DEFAULT_PORT = 6379
#: ``takeover`` looks at up to ``max(SCAN_MIN, limit * SCAN_FACTOR)`` due ids, lowest
#: score first: due ids of live owners (ours too) are passed over, and the scan stays
#: bounded (the script blocks Redis while it runs). An orphan behind more due ids of live
#: owners waits until their owners reschedule them.
SCAN_FACTOR = 4
SCAN_MIN = 1000

# KEYS: d:<id>, due, all, owned:<node>. ARGV: node, version, record, state, due ("" for
# none), created, id. Fenced beats the version check: an old owner learns it lost the
# delivery even when it writes a stale version.
_SAVE = """
local stored = redis.call('HMGET', KEYS[1], 'owner', 'version')
if stored[1] and stored[1] ~= ARGV[1] then return {'fenced', stored[1]} end
if stored[2] and tonumber(stored[2]) >= tonumber(ARGV[2]) then return {'skip'} end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'version', ARGV[2], 'record', ARGV[3],
  'state', ARGV[4])
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[2], ARGV[7])
else
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[7])
end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[7])
redis.call('SADD', KEYS[4], ARGV[7])
return {'ok'}
"""

# KEYS: due. ARGV: key prefix, node, now, scan, limit. Returns the claimed records' JSON.
_TAKEOVER = """
local prefix, node, limit = ARGV[1], ARGV[2], tonumber(ARGV[5])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, ARGV[4])
local out = {}
for _, id in ipairs(ids) do
  if #out >= limit then break end
  local key = prefix .. 'd:' .. id
  local stored = redis.call('HMGET', key, 'owner', 'record')
  local owner = stored[1]
  if owner and stored[2] and owner ~= node
      and redis.call('EXISTS', prefix .. 'lease:' .. owner) == 0 then
    redis.call('HSET', key, 'owner', node)
    redis.call('SREM', prefix .. 'owned:' .. owner, id)
    redis.call('SADD', prefix .. 'owned:' .. node, id)
    out[#out + 1] = stored[2]
  end
end
return out
"""


def parse_url(url: str) -> tuple[str, int, int]:
    """(host, port, db) of ``redis://HOST[:PORT][/DB]``.

    Raises:
        ConfigError: (field ``scheduler``) anything else, with what is wrong.
    """

    def bad(what: str) -> NoReturn:
        raise ConfigError("scheduler", f"{what} in {url!r} (want redis://HOST:PORT/DB)")

    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when not a number in 0..65535
    except ValueError:
        bad("bad port")
    if parts.scheme != "redis":
        bad(f"scheme {parts.scheme!r} is not redis")
    if not parts.hostname:
        bad("no host")
    if parts.username is not None or parts.password is not None:
        bad("credentials are not supported")
    if parts.query or parts.fragment:
        bad("query or fragment")
    if port == 0:
        bad("port 0")
    path = parts.path.strip("/")
    if path and not (path.isascii() and path.isdigit()):
        bad(f"database {path!r} is not a number")
    return parts.hostname, port or DEFAULT_PORT, int(path or 0)


def _octets(raw: object) -> bytes | None:
    """The octets of a hex value Redis returned (None: absent or not hex)."""
    try:
        return bytes.fromhex(raw.decode()) if isinstance(raw, bytes) else None
    except (UnicodeDecodeError, ValueError):
        return None


def _score(value: float) -> str:
    """A score Redis reads back as the same double (``repr`` round-trips)."""
    if math.isnan(value):
        raise ValueError("store: a score is NaN")
    return repr(value)


class RedisDeliveryStore:
    """:class:`~covey.runtime.features.deliveries.store.SharedStore` in Redis.

    Safe to use from several threads (redis-py's pool hands each call a connection).
    ``counters["bad_records"]`` / ``counters["bad_handled"]`` count stored entries that
    could not be decoded and were skipped (never raised to the caller).

    Args:
        url: ``redis://HOST:PORT/DB``.
        cluster: the cluster name; every key starts with ``covey:<cluster>:``.
        timeout: seconds any connect, read or write may take.

    Raises:
        ConfigError: a bad URL (field ``scheduler``); see :meth:`connect` for reachability.
    """

    backend = "redis"

    def __init__(self, url: str, cluster: str, *, timeout: float = 1.0) -> None:
        self.host, self.port, self.db = parse_url(url)
        if not cluster:
            raise ConfigError("scheduler", "the cluster name is empty")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError("scheduler", f"timeout must be positive, not {timeout}")
        self.cluster = cluster
        self.prefix = f"covey:{cluster}:"
        self.counters: dict[str, int] = {"bad_records": 0, "bad_handled": 0}
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.where = f"{host}:{self.port}"
        self.url = f"redis://{self.where}/{self.db}"
        self._redis = redis.Redis(
            host=self.host,
            port=self.port,
            db=self.db,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._save = self._redis.register_script(_SAVE)
        self._takeover = self._redis.register_script(_TAKEOVER)

    @classmethod
    def connect(cls, url: str, cluster: str, *, timeout: float = 1.0) -> RedisDeliveryStore:
        """A store whose Redis answered a PING (what the agent opens at start).

        Raises:
            ConfigError: a bad URL, or Redis cannot be reached (field ``scheduler``).
        """
        store = cls(url, cluster, timeout=timeout)
        try:
            store.check()
        except ConfigError:
            store.close()
            raise
        return store

    def check(self) -> None:
        """PING Redis once.

        Raises:
            ConfigError: ``scheduler: cannot reach redis at HOST:PORT: <reason>``.
        """
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise ConfigError("scheduler", f"cannot reach redis at {self.where}: {exc}") from None

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _unavailable(self, exc: redis.RedisError) -> StoreUnavailable:
        return StoreUnavailable(f"redis at {self.where}: {type(exc).__name__}: {exc}")

    def _decode(self, raw: object) -> DeliveryRecord | None:
        """The record of a stored JSON value, or None (counted) when it cannot be read."""
        try:
            if not isinstance(raw, bytes):
                raise ValueError("not a string")
            return record_from_plain(json.loads(raw))
        except (ValueError, RecursionError):  # JSON, UTF-8 and RecordError are ValueErrors
            self.counters["bad_records"] += 1
            return None

    # --- DeliveryStore -------------------------------------------------------------------

    def load(self, node: bytes) -> tuple[list[DeliveryRecord], list[HandledRecord]]:
        """The delivery records ``node`` owns (ended ones too) and its handled records.

        Entries that cannot be decoded are skipped and counted.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        try:
            ids = sorted(cast(set[bytes], self._redis.smembers(self._key("owned", node.hex()))))
            pipe = self._redis.pipeline(transaction=False)
            for i in ids:
                pipe.hget(self._key("d", i.decode(errors="replace")), "record")
            raws = pipe.execute() if ids else []
            handled = self._redis.hgetall(self._key("handled", node.hex()))
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None
        records = [r for r in map(self._decode, raws) if r is not None]
        done: list[HandledRecord] = []
        for _, value in sorted(handled.items()):
            try:
                done.append(handled_from_plain(json.loads(value)))
            except (ValueError, RecursionError):
                self.counters["bad_handled"] += 1
        return records, done

    def save_delivery(self, node: bytes, record: DeliveryRecord) -> None:
        """Write ``record`` and its scores in one Lua script (skipped when not newer).

        Raises:
            Fenced: the stored record names another owner than ``node``.
            StoreUnavailable: Redis cannot be reached; nothing was written.
        """
        ident = record.id.hex()
        keys = [
            self._key("d", ident),
            self._key("due"),
            self._key("all"),
            self._key("owned", node.hex()),
        ]
        args: list[str | int] = [
            node.hex(),
            record.version,
            json.dumps(record_to_plain(record), separators=(",", ":")),
            record.state.value,
            "" if record.due is None else _score(record.due),
            _score(record.created),
            ident,
        ]
        try:
            answer = self._save(keys=keys, args=args)
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None
        if answer and answer[0] == b"fenced":
            # A damaged owner field still fences: the write did not happen.
            raise Fenced(record.id, _octets(answer[1]) or b"")

    def save_handled(self, node: bytes, record: HandledRecord) -> None:
        """Write ``node``'s handled record for (delivery, stage), replacing the older one.

        Raises:
            StoreUnavailable: Redis cannot be reached; nothing was written.
        """
        field = f"{record.delivery.hex()}:{record.stage}"
        value = json.dumps(handled_to_plain(record), separators=(",", ":"))
        try:
            self._redis.hset(self._key("handled", node.hex()), field, value)
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None

    def get(self, delivery: bytes) -> DeliveryRecord | None:
        """The stored record of ``delivery``, whoever owns it (None: unknown or unreadable).

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        try:
            raw = self._redis.hget(self._key("d", delivery.hex()), "record")
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None
        return None if raw is None else self._decode(raw)

    def owner(self, delivery: bytes) -> bytes | None:
        """The node that owns ``delivery`` now (None: unknown).

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        try:
            raw = self._redis.hget(self._key("d", delivery.hex()), "owner")
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None
        return _octets(raw)

    def schedule(self) -> list[tuple[bytes, float]]:
        """The ``due`` sorted set, lowest score first: (delivery id, due).

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        try:
            rows = self._redis.zrange(self._key("due"), 0, -1, withscores=True)
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None
        out: list[tuple[bytes, float]] = []
        for member, score in cast(list[tuple[bytes, float]], rows):
            ident = _octets(member)
            if ident is None:
                self.counters["bad_records"] += 1
            else:
                out.append((ident, float(score)))
        return out

    def describe(self) -> dict[str, Any]:
        """``backend``, ``url`` and the counts ``deliveries`` and ``due``.

        Never raises: when Redis cannot be reached the counts are None and ``error``
        says why (``covey info`` must still answer).
        """
        out: dict[str, Any] = {"backend": self.backend, "url": self.url, "cluster": self.cluster}
        try:
            out["deliveries"] = int(self._redis.zcard(self._key("all")))
            out["due"] = int(self._redis.zcard(self._key("due")))
        except redis.RedisError as exc:
            out.update(deliveries=None, due=None, error=str(self._unavailable(exc)))
        out["counters"] = dict(self.counters)
        return out

    def close(self) -> None:
        """Close the pool's connections (idempotent; a later call reconnects)."""
        self._redis.close()

    # --- SharedStore ---------------------------------------------------------------------

    def renew(self, node: bytes, ttl: float) -> None:
        """Set or extend ``node``'s lease to ``ttl`` seconds from now (at least 1 ms).

        Raises:
            ValueError: ``ttl`` is not a positive number.
            StoreUnavailable: Redis cannot be reached.
        """
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"store: lease ttl must be positive, not {ttl}")
        try:
            self._redis.set(self._key("lease", node.hex()), b"1", px=max(1, round(ttl * 1000)))
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None

    def takeover(self, node: bytes, now: float, limit: int) -> list[DeliveryRecord]:
        """Claim up to ``limit`` deliveries due by ``now`` whose owner's lease expired.

        One Lua script: two nodes claiming at once never both get a delivery. Returns
        the claimed records as stored (``record.owner`` is still the old owner); one that
        cannot be decoded is claimed but skipped and counted. When Redis fails *after*
        running the script (a lost reply), the claims stand without being returned:
        :meth:`load` of ``node`` finds them.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        if limit <= 0:
            return []
        scan = max(SCAN_MIN, limit * SCAN_FACTOR)
        args: list[str | int] = [self.prefix, node.hex(), _score(now), scan, limit]
        try:
            raws = self._takeover(keys=[self._key("due")], args=args)
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None
        return [r for r in map(self._decode, raws) if r is not None]
