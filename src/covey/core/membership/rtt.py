"""Round-trip times to members, measured by the probes (``covey rtt``).

Every direct probe answered before its timeout is a sample: the time from the ping to
its ack. The smoothed figure is TCP's SRTT (RFC 6298: ``srtt += (sample - srtt) / 8``),
so one slow ack moves it little. Only direct acks count: an ack relayed through another
member, or one that came over the TCP fallback, measures more than the path to the member.

Serf answers ``rtt`` from network coordinates, which estimate the time between any two
members; covey reports what this node measured itself, which is exact but only for its
own paths. A node probes each member once per round of its probe order, so a member is
measured about every ``members * probe_interval`` seconds.

The table is bounded (:data:`MAX_TRACKED` members): the simulator runs thousands of
nodes, each of which would otherwise keep a record per member.
"""

from __future__ import annotations

from covey.core.records import record

#: Members whose round trips one node keeps; the oldest measured entry goes first.
MAX_TRACKED = 256
#: Weight of a new sample in the smoothed figure (RFC 6298's alpha).
ALPHA = 0.125


@record
class RoundTrip:
    """What one node measured of its round trips to one member (seconds).

    Attributes:
        last: the latest sample.
        smoothed: the smoothed round-trip time (SRTT).
        low: the lowest sample seen.
        samples: how many samples were taken.
        at: the ``now`` of the latest sample.
    """

    last: float
    smoothed: float
    low: float
    samples: int
    at: float

    def to_json(self) -> dict[str, object]:
        """Milliseconds, rounded to the microsecond (the shape of ``covey rtt --json``)."""
        return {
            "last_ms": round(self.last * 1000, 3),
            "smoothed_ms": round(self.smoothed * 1000, 3),
            "min_ms": round(self.low * 1000, 3),
            "samples": self.samples,
        }


class RoundTrips:
    """The round trips a node measured, by member id (bounded)."""

    def __init__(self, limit: int = MAX_TRACKED) -> None:
        self._limit = limit
        self._by_id: dict[bytes, RoundTrip] = {}

    def record(self, node_id: bytes, sample: float, now: float) -> None:
        """Add one sample for ``node_id`` (a negative one, from a clock step, is ignored)."""
        if sample < 0:
            return
        old = self._by_id.pop(node_id, None)
        if old is None:
            if len(self._by_id) >= self._limit:
                del self._by_id[next(iter(self._by_id))]  # least recently measured
            new = RoundTrip(sample, sample, sample, 1, now)
        else:
            smoothed = old.smoothed + ALPHA * (sample - old.smoothed)
            new = RoundTrip(sample, smoothed, min(old.low, sample), old.samples + 1, now)
        self._by_id[node_id] = new  # re-inserted: the dict's order is the age order

    def get(self, node_id: bytes) -> RoundTrip | None:
        """What was measured to ``node_id``, if anything."""
        return self._by_id.get(node_id)

    def forget(self, node_id: bytes) -> None:
        """Drop a member's record (it was reaped)."""
        self._by_id.pop(node_id, None)

    def __len__(self) -> int:
        return len(self._by_id)
