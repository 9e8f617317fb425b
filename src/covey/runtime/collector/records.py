"""The trace record and the ``traces`` batch as docs/traces.md defines them, checked.

Everything the collector stores has passed :func:`check_batch`: a batch with one
wrong-shaped record is refused whole (the error names the record), so what is stored is
always a complete, well-typed record. Optional fields (the nullable ones, ``detail`` and
``n``) may be left out; fields the contract does not name are not kept.

The agent side can use :func:`check_record` in its own tests to hold its records to the
same contract.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

#: The fields of a record, in the order the store keeps them.
FIELDS = (
    "seq",
    "boot",
    "at",
    "op",
    "node",
    "node_id",
    "cluster",
    "subject",
    "subject_id",
    "leader",
    "term",
    "members",
    "detail",
    "n",
    "cause",
)
#: Most records in one ``traces`` request.
MAX_RECORDS = 1000
#: Longest ``detail``, in UTF-8 octets.
DETAIL_LIMIT = 200
#: Longest name, cluster name or cause, in characters.
NAME_LIMIT = 255
#: Largest integer kept (SQLite's INTEGER is 64-bit signed).
INT_LIMIT = 2**63 - 1

# Ops are open-ended (the agent side may add some): lower-case words, stored as given.
_OP = re.compile(r"[a-z][a-z0-9_]{0,31}")
_HEX = re.compile(r"[0-9a-fA-F]{1,64}")

Record = dict[str, Any]


class RecordError(ValueError):
    """A request or a record does not have the contract's shape (message says where)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """One checked ``traces`` request: who sent it, when by its clock, and its records."""

    node_id: str
    node: str
    cluster: str
    boot: float
    sent: float
    lost: int
    records: tuple[Record, ...]


def _int(where: str, value: object, low: int | None = None) -> int:
    # bool is an int in Python; True is not a sequence number.
    floor = -INT_LIMIT if low is None else low
    if isinstance(value, bool) or not isinstance(value, int) or not floor <= value <= INT_LIMIT:
        raise RecordError(f"{where} must be an integer" + ("" if low is None else f" ≥ {low}"))
    return value


def _number(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{where} must be a number")
    out = float(value)
    if not math.isfinite(out) or out < 0:
        raise RecordError(f"{where} must be a finite number ≥ 0")
    return out


def _text(where: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > NAME_LIMIT or (not value and not empty):
        raise RecordError(f"{where} must be text of 1..{NAME_LIMIT} characters")
    return value


def _hex(where: str, value: object) -> str:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise RecordError(f"{where} must be a hex node id")
    return value.lower()


def _nullable(where: str, value: object, check: Any) -> Any:
    return None if value is None else check(where, value)


def check_record(obj: object, where: str = "record") -> Record:
    """The record ``obj`` with every contract field, checked and normalised.

    Raises:
        RecordError: a field is missing or has the wrong type or size.
    """
    if not isinstance(obj, dict):
        raise RecordError(f"{where} must be an object")
    for name in ("seq", "boot", "at", "op", "node", "node_id", "cluster", "members"):
        if name not in obj:
            raise RecordError(f"{where} has no {name!r}")
    op = obj["op"]
    if not isinstance(op, str) or not _OP.fullmatch(op):
        raise RecordError(f"{where}.op must be a lower-case word (a-z, 0-9, _; ≤ 32)")
    detail = obj.get("detail", "")
    if not isinstance(detail, str) or len(detail.encode("utf-8", "replace")) > DETAIL_LIMIT:
        raise RecordError(f"{where}.detail must be text of at most {DETAIL_LIMIT} octets")
    return {
        "seq": _int(f"{where}.seq", obj["seq"], 1),
        "boot": _number(f"{where}.boot", obj["boot"]),
        "at": _number(f"{where}.at", obj["at"]),
        "op": op,
        "node": _text(f"{where}.node", obj["node"]),
        "node_id": _hex(f"{where}.node_id", obj["node_id"]),
        "cluster": _text(f"{where}.cluster", obj["cluster"], empty=True),
        "subject": _nullable(f"{where}.subject", obj.get("subject"), _text),
        "subject_id": _nullable(f"{where}.subject_id", obj.get("subject_id"), _hex),
        "leader": _nullable(f"{where}.leader", obj.get("leader"), _text),
        "term": _nullable(f"{where}.term", obj.get("term"), lambda w, v: _int(w, v, 0)),
        "members": _int(f"{where}.members", obj["members"], 0),
        "detail": detail,
        "n": _int(f"{where}.n", obj.get("n", 0)),
        "cause": _nullable(f"{where}.cause", obj.get("cause"), _text),
    }


def check_batch(request: dict[str, Any]) -> Batch:
    """The checked ``traces`` request; every record must come from the sending node.

    Raises:
        RecordError: a field of the request, or one of its records, is wrong.
    """
    for name in ("node_id", "node", "cluster", "boot", "sent", "records"):
        if name not in request:
            raise RecordError(f"traces: the request has no {name!r}")
    node_id = _hex("traces: node_id", request["node_id"])
    records = request["records"]
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        raise RecordError(f"traces: records must be a list of at most {MAX_RECORDS}")
    checked = []
    for i, raw in enumerate(records):
        rec = check_record(raw, f"records[{i}]")
        if rec["node_id"] != node_id:
            # A sender reports its own records: its clock offset applies to them.
            raise RecordError(f"records[{i}].node_id is not the sender's ({node_id})")
        checked.append(rec)
    return Batch(
        node_id=node_id,
        node=_text("traces: node", request["node"]),
        cluster=_text("traces: cluster", request["cluster"], empty=True),
        boot=_number("traces: boot", request["boot"]),
        sent=_number("traces: sent", request["sent"]),
        lost=_int("traces: lost", request.get("lost", 0), 0),
        records=tuple(checked),
    )
