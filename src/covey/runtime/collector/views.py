"""The collector's three questions, answered from stored records: pure functions.

Every record carries the ``offset`` of its sender (the smallest ``receive_time - sent``
seen from it, see store.py), and is placed in time at ``at + offset``: its sender's clock
brought to the collector's. Ties are broken by node name, boot and sequence number, so
one sender's records keep their order and the answer is the same on every call.

* :func:`members` — each member's latest state as the agents reported it;
* :func:`stable` — whether one leader and one size have held for a while;
* :func:`timeline` — every record, from or about a node, in corrected time order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from covey.core.records import record
from covey.runtime.collector.records import Record

#: Ops that say something about a member's state, and which state.
MEMBER_STATES = {
    "alive": "alive",
    "join": "alive",
    "refute": "alive",
    "reboot": "alive",
    "suspect": "suspect",
    "failed": "failed",
    "left": "left",
    "exit": "left",
}
#: States of a member that no longer counts (its last view of the cluster is history).
GONE = frozenset({"failed", "left"})


def corrected(rec: Record) -> float:
    """When the record happened, by the collector's clock: ``at + offset``."""
    return float(rec["at"]) + float(rec.get("offset") or 0.0)


def _order(rec: Record) -> tuple[float, str, float, int]:
    return (corrected(rec), rec["node"], rec["boot"], rec["seq"])


@record
class _Report:
    """One agent's word about one member's state."""

    time: float
    state: str
    incarnation: int | None  # None: implied by the agent sending at all
    reporter: str


def _names(records: Iterable[Record]) -> dict[str, str]:
    """Member name → node id, from every record that gives both."""
    ids: dict[str, str] = {}
    for r in records:
        ids[r["node"]] = r["node_id"]
        if r["subject"] and r["subject_id"]:
            ids[r["subject"]] = r["subject_id"]
    return ids


def members(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Each member's latest state as the agents reported it, sorted by name.

    A record with an op of :data:`MEMBER_STATES` is a report about its ``subject`` (about
    its sender when it names none: ``join``, ``exit``...); an agent that sends records at
    all is alive as of its first one. The latest report in corrected time decides the
    state; ``reported_by`` names the agents whose own latest report says that state;
    ``since`` is when the reports last turned to it; ``incarnation`` is the latest
    incarnation reported with it (null when only implied).
    """
    ids = _names(records)
    reports: dict[str, list[_Report]] = defaultdict(list)
    names: dict[str, str] = {}
    first: dict[str, Record] = {}
    for r in sorted(records, key=_order):
        first.setdefault(r["node_id"], r)
        names.setdefault(r["node_id"], r["node"])
        state = MEMBER_STATES.get(r["op"])
        if state is None:
            continue
        if r["subject"] is None and r["subject_id"] is None:
            key, name = r["node_id"], r["node"]
        else:
            name = r["subject"] or r["subject_id"]
            key = r["subject_id"] or ids.get(name) or f"name:{name}"
        names[key] = name
        reports[key].append(_Report(corrected(r), state, r["n"], r["node"]))
    for node_id, r in first.items():
        reports[node_id].append(_Report(corrected(r), "alive", None, r["node"]))
    out = []
    for key, found in reports.items():
        found.sort(key=lambda rep: rep.time)  # stable: implied reports stay first on ties
        state = found[-1].state
        latest = {rep.reporter: rep for rep in found}
        since = found[-1].time
        for rep in reversed(found):
            if rep.state != state:
                break
            since = rep.time
        incarnations = [rep.incarnation for rep in found if rep.state == state]
        known = [i for i in incarnations if i is not None]
        out.append(
            {
                "name": names[key],
                "node_id": None if key.startswith("name:") else key,
                "state": state,
                "incarnation": known[-1] if known else None,
                "since": since,
                "reported_by": sorted(n for n, rep in latest.items() if rep.state == state),
            }
        )
    out.sort(key=lambda m: (m["name"], m["node_id"] or ""))
    return out


def _differ(what: str, views: list[dict[str, Any]], field: str) -> str:
    groups: dict[str, list[str]] = defaultdict(list)
    for v in views:
        groups["none" if v[field] is None else str(v[field])].append(v["node"])
    parts = [f"{value} ({', '.join(sorted(nodes))})" for value, nodes in sorted(groups.items())]
    return f"{what} differ: " + "; ".join(parts)


def stable(records: Sequence[Record], now: float, window: float) -> dict[str, Any]:
    """Whether every agent still counting reports one leader and one size, unchanged for
    ``window`` seconds at ``now`` (the collector's clock).

    The agents counted are those that sent records and are not reported failed or left
    (see :func:`members`): a dead node's last view is history. Each one's view is the
    leader and member count of its latest record; it changed when its records last showed
    another. The answer has ``stable``, the agreed ``leader`` and ``size`` (null when they
    differ), ``since`` (the latest change), ``why`` (empty when stable) and every agent's
    ``views``.
    """
    # Every sender is a member keyed by its node id (its own records imply it alive).
    gone = {m["node_id"] for m in members(records) if m["state"] in GONE}
    by_sender: dict[str, list[Record]] = defaultdict(list)
    for r in sorted(records, key=_order):
        by_sender[r["node_id"]].append(r)
    views = []
    for node_id, recs in sorted(by_sender.items()):
        last = recs[-1]
        if node_id in gone:
            continue
        view = (last["leader"], last["members"])
        since = corrected(last)
        for r in reversed(recs):
            if (r["leader"], r["members"]) != view:
                break
            since = corrected(r)
        views.append(
            {"node": last["node"], "node_id": node_id, "leader": view[0], "size": view[1],
             "since": since}
        )  # fmt: skip
    if not views:
        return {"stable": False, "leader": None, "size": None, "since": None,
                "why": "no agent has reported", "views": []}  # fmt: skip
    leaders = {v["leader"] for v in views}
    sizes = {v["size"] for v in views}
    since = max(v["since"] for v in views)
    why = []
    if len(leaders) > 1:
        why.append(_differ("leaders", views, "leader"))
    elif None in leaders:
        why.append("no leader")
    if len(sizes) > 1:
        why.append(_differ("sizes", views, "size"))
    if not why and now - since < window:
        why.append(f"last change {max(now - since, 0.0):.1f} s ago (< {window:g} s)")
    return {
        "stable": not why,
        "leader": next(iter(leaders)) if len(leaders) == 1 else None,
        "size": next(iter(sizes)) if len(sizes) == 1 else None,
        "since": since,
        "why": "; ".join(why),
        "views": views,
    }


def about(rec: Record, node: str) -> bool:
    """Whether ``rec`` is from or about ``node`` (a name or a node id)."""
    return node in (rec["node"], rec["subject"], rec["node_id"], rec["subject_id"])


def timeline(
    records: Iterable[Record],
    node: str | None = None,
    since: float | None = None,
    limit: int = 10_000,
) -> list[Record]:
    """The first ``limit`` records from or about ``node`` (all when None) that happened at
    or after ``since`` (corrected time), in corrected time order, each with its ``offset``."""
    picked = [
        r
        for r in records
        if (node is None or about(r, node)) and (since is None or corrected(r) >= since)
    ]
    picked.sort(key=_order)
    return picked[:limit]
