"""Where an agent keeps its deliveries: the interface every backend implements.

Two backends: :class:`~covey.runtime.features.deliveries.sqlite_store.SqliteDeliveryStore`
(the default, in the data directory, one node) and
:class:`~covey.runtime.features.deliveries.redis_store.RedisDeliveryStore`
(``--scheduler redis://...``: several nodes share one schedule and one record of
receipts, and a live node takes over the deliveries of a dead owner).

Both hold the same three things:

* the owner's :class:`~covey.core.deliveries.DeliveryRecord` per delivery (the last
  version written wins; an older version is skipped, so a repeated write is harmless);
* the sorted set of delivery ids scored by ``record.due`` (wall seconds), seed 002's
  ``broadcast:in-flight``: written in the same transaction as the record, removed once
  the delivery ended;
* each receiver's :class:`~covey.core.deliveries.HandledRecord` per (delivery, stage).

The writes run on the driver's effect-writer thread, before the messages of the step
that made them leave (runtime/driver.py). They raise :class:`StoreUnavailable` when the
backend cannot be reached (the deliveries then wait, see the feature) and
:class:`Fenced` when another node took the delivery over (its old owner must drop it).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from covey.core.deliveries import DeliveryRecord, HandledRecord


class StoreUnavailable(ValueError):
    """The backend cannot be reached now (Redis down); the write did not happen."""


class Fenced(ValueError):
    """The delivery is owned by another node now (taken over); the write did not happen."""

    def __init__(self, delivery: bytes, owner: bytes) -> None:
        super().__init__(f"delivery {delivery.hex()} is owned by {owner.hex()[:12]} now")
        self.delivery = delivery
        self.owner = owner


class DeliveryStore(Protocol):
    """What the deliveries feature needs of a backend (see the module docstring).

    ``node`` is always this agent's node id (16 octets).
    """

    #: ``sqlite`` or ``redis``.
    backend: str

    def load(self, node: bytes) -> tuple[list[DeliveryRecord], list[HandledRecord]]:
        """The delivery records ``node`` owns (ended ones too) and its handled records.

        Raises:
            StoreUnavailable: the backend cannot be reached.
        """
        ...

    def save_delivery(self, node: bytes, record: DeliveryRecord) -> None:
        """Write ``record`` and its score (``record.due``; removed when None) at once.

        Skipped when the stored version is at least ``record.version``.

        Raises:
            Fenced: the stored record names another owner than ``node``.
            StoreUnavailable: the backend cannot be reached; nothing was written.
        """
        ...

    def save_handled(self, node: bytes, record: HandledRecord) -> None:
        """Write ``node``'s handled record for (delivery, stage), replacing the older one.

        Raises:
            StoreUnavailable: the backend cannot be reached; nothing was written.
        """
        ...

    def get(self, delivery: bytes) -> DeliveryRecord | None:
        """The stored record of ``delivery``, whoever owns it (None: unknown)."""
        ...

    def schedule(self) -> list[tuple[bytes, float]]:
        """The sorted set, lowest score first: (delivery id, due) of every live delivery."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ``covey info`` shows: ``backend``, where it is, and counts."""
        ...

    def close(self) -> None:
        """Release the connection (idempotent)."""
        ...


class SharedStore(DeliveryStore, Protocol):
    """A store several nodes share (Redis): owner leases and takeover.

    Every node holds a lease (a key that expires, renewed well before it does). A node
    whose lease expired is dead to the others: a live node may then claim its due
    deliveries, atomically (one Lua script), so only one claimer wins each.
    """

    def renew(self, node: bytes, ttl: float) -> None:
        """Set or extend ``node``'s lease to ``ttl`` seconds from now.

        Raises:
            StoreUnavailable: the backend cannot be reached.
        """
        ...

    def owner(self, delivery: bytes) -> bytes | None:
        """The node that owns ``delivery`` now (None: unknown).

        Raises:
            StoreUnavailable: the backend cannot be reached.
        """
        ...

    def takeover(self, node: bytes, now: float, limit: int) -> list[DeliveryRecord]:
        """Claim up to ``limit`` deliveries due by ``now`` (wall seconds) whose owner's
        lease has expired: their stored owner becomes ``node``; returns the claimed
        records (as stored, naming the old owner in ``record.owner``).

        Raises:
            StoreUnavailable: the backend cannot be reached.
        """
        ...


def shared(store: DeliveryStore | None) -> SharedStore | None:
    """``store`` when several nodes share it (it has leases and takeover), else None."""
    if store is not None and hasattr(store, "takeover") and hasattr(store, "renew"):
        return cast("SharedStore", store)
    return None
