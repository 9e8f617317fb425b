"""Shared set-up for the deliveries unit tests: a journaling fake handle and a cluster."""

from __future__ import annotations

from typing import Any

from covey.core.deliveries import Deliveries, DeliveryRequest, Receipt, StageSpec
from covey.core.effects import Effect
from covey.core.events import Event
from covey.core.plugin import ExtensionMessage
from covey.core.types import Address

from ..fakes import FakeHandle, add_member, attach, node_id


class Journal(FakeHandle):
    """A FakeHandle that also keeps one ordered log of effects, streams and events."""

    def __init__(self, i: int = 1, **kw: Any) -> None:
        super().__init__(i, **kw)
        self.journal: list[tuple[str, Any]] = []

    def persist(self, effect: Effect) -> None:
        super().persist(effect)
        self.journal.append(("effect", effect))

    def open_stream(self, addr: Address, msgs: list[ExtensionMessage], *, now: float) -> None:
        super().open_stream(addr, msgs, now=now)
        self.journal.append(("stream", (addr, msgs)))

    def emit(self, event: Event) -> None:
        super().emit(event)
        self.journal.append(("event", event))

    def requests(self) -> list[tuple[int, DeliveryRequest]]:
        """Every request sent, as (member number, request), and forget them."""
        out = [
            (int(addr[0].rsplit(".", 1)[1]), m)
            for addr, msgs in self.streams
            for m in msgs
            if isinstance(m, DeliveryRequest)
        ]
        self.streams.clear()
        return out


def cluster(
    n: int = 5, tags: dict[int, dict[str, str]] | None = None, **kw: Any
) -> tuple[Deliveries, Journal]:
    """An owner (member 1) with members 2..n, all alive."""
    cap = Deliveries(**kw)
    h = Journal(1)
    attach(cap, h)
    for i in range(2, n + 1):
        add_member(h, cap, i, tags=(tags or {}).get(i))
    return cap, h


def stage(text: str, deadline: float | None = None) -> StageSpec:
    """A stage from ``K:SELECTOR``."""
    return StageSpec.parse(text, deadline=deadline)


def receipt(
    cap: Deliveries, i: int, req: DeliveryRequest, now: float, result: bytes = b"ok"
) -> Any:
    """Member ``i`` sends its receipt for ``req``; the owner's answer."""
    (answer,) = cap.on_stream(Receipt(req.delivery, req.stage, result), node_id(i), ("x", 1), now)
    return answer
