"""Lossless plain forms of the stored records, for the runtime's SQLite or Redis store.

``record_to_plain`` gives a msgpack/JSON-ready dict (octets as hex, so JSON works too);
``record_from_plain`` rebuilds the frozen record and raises :class:`RecordError` on
anything off, so a damaged row is reported, never half-loaded. The same for
:class:`~covey.core.deliveries.model.HandledRecord`.
"""

from __future__ import annotations

from typing import Any

from covey.core.deliveries.model import (
    Ask,
    DeliveryRecord,
    DeliveryState,
    HandledRecord,
    HandledState,
    ReceiptEntry,
    StageProgress,
)
from covey.core.deliveries.selectors import Selector, SelectorError, StageSpec


class RecordError(ValueError):
    """A stored record that cannot be read back."""


def _hex(v: Any, what: str, size: int | None = 16) -> bytes:
    try:
        raw = bytes.fromhex(v)
    except (TypeError, ValueError):
        raise RecordError(f"{what}: not hex") from None
    if size is not None and len(raw) != size:
        raise RecordError(f"{what}: wants {size} octets")
    return raw


def _num(v: Any, what: str) -> float:
    if type(v) not in (int, float):
        raise RecordError(f"{what}: not a number")
    return float(v)


def _opt(v: Any, what: str) -> float | None:
    return None if v is None else _num(v, what)


def _stage_to_plain(spec: StageSpec, p: StageProgress) -> dict[str, Any]:
    return {
        "required": spec.required,
        "selector": spec.selector.text,
        "exclude_previous": spec.exclude_previous,
        "deadline": spec.deadline,
        "asked": [n.hex() for n in p.asked],
        "waiting": [[a.node.hex(), a.deadline] for a in p.waiting],
        "receipts": [[r.node.hex(), r.result.hex(), r.at] for r in p.receipts],
        "refusals": [[n.hex(), why] for n, why in p.refusals],
        "refused": p.refused,
    }


def record_to_plain(rec: DeliveryRecord) -> dict[str, Any]:
    """A lossless, JSON-ready dict of ``rec`` (stages past ``progress`` have empty lists)."""
    empty = StageProgress()
    return {
        "id": rec.id.hex(),
        "owner": rec.owner.hex(),
        "payload": rec.payload.hex(),
        "created": rec.created,
        "deadline": rec.deadline,
        "state": rec.state.value,
        "stage": rec.stage,
        "reached": len(rec.progress),
        "due": rec.due,
        "reason": rec.reason,
        "starved_since": rec.starved_since,
        "backoff": rec.backoff,
        "version": rec.version,
        "stages": [
            _stage_to_plain(s, rec.progress[i] if i < len(rec.progress) else empty)
            for i, s in enumerate(rec.stages)
        ],
    }


def record_from_plain(d: Any) -> DeliveryRecord:
    """Rebuild a record from :func:`record_to_plain`'s dict; RecordError if off."""
    try:
        stages, progress = [], []
        for i, s in enumerate(d["stages"]):
            what = f"stage {i}"
            selector = Selector.parse(s["selector"])
            deadline = _opt(s["deadline"], what)
            spec = StageSpec(s["required"], selector, bool(s["exclude_previous"]), deadline)
            stages.append(spec)
            progress.append(
                StageProgress(
                    tuple(_hex(n, what) for n in s["asked"]),
                    tuple(Ask(_hex(n, what), _num(t, what)) for n, t in s["waiting"]),
                    tuple(
                        ReceiptEntry(_hex(n, what), _hex(r, what, None), _num(t, what))
                        for n, r, t in s["receipts"]
                    ),
                    tuple((_hex(n, what), str(why)) for n, why in s["refusals"]),
                    int(s["refused"]),
                )
            )
        reached = int(d["reached"])
        if not 0 <= reached <= len(stages):
            raise RecordError("reached: out of range")
        return DeliveryRecord(
            id=_hex(d["id"], "id"),
            owner=_hex(d["owner"], "owner"),
            payload=_hex(d["payload"], "payload", None),
            stages=tuple(stages),
            created=_num(d["created"], "created"),
            deadline=_opt(d["deadline"], "deadline"),
            state=DeliveryState(d["state"]),
            stage=int(d["stage"]),
            progress=tuple(progress[:reached]),
            due=_opt(d["due"], "due"),
            reason=str(d["reason"]),
            starved_since=_opt(d["starved_since"], "starved_since"),
            backoff=_num(d["backoff"], "backoff"),
            version=int(d["version"]),
        )
    except RecordError:
        raise
    except (KeyError, TypeError, ValueError, SelectorError) as exc:
        raise RecordError(f"delivery record: {type(exc).__name__}: {exc}") from None


def handled_to_plain(rec: HandledRecord) -> dict[str, Any]:
    """A lossless, JSON-ready dict of a receiver's record."""
    return {
        "delivery": rec.delivery.hex(),
        "stage": rec.stage,
        "owner": rec.owner.hex(),
        "state": rec.state.value,
        "deadline": rec.deadline,
        "result": rec.result.hex(),
        "reason": rec.reason,
        "at": rec.at,
    }


def handled_from_plain(d: Any) -> HandledRecord:
    """Rebuild a receiver's record from :func:`handled_to_plain`'s dict; RecordError if off."""
    try:
        return HandledRecord(
            _hex(d["delivery"], "delivery"),
            int(d["stage"]),
            _hex(d["owner"], "owner"),
            HandledState(d["state"]),
            _num(d["deadline"], "deadline"),
            _hex(d["result"], "result", None),
            str(d["reason"]),
            _num(d["at"], "at"),
        )
    except RecordError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"handled record: {type(exc).__name__}: {exc}") from None
