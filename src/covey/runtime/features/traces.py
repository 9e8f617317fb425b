"""Traces in the agent: the ring buffer of trace records, ``covey trace``, the collector.

:class:`TracesFeature` listens to every event the agent publishes (synchronously: none is
missed), turns the traced ones into records (runtime/traces/records.py) and keeps the last
``--trace-buffer`` of them (0 switches tracing off). With ``--collector HOST:PORT`` it
streams them there (runtime/traces/link.py), the buffer's earlier records first.

At shutdown, records the collector has not stored are written to
``DATA_DIR/traces-unsent.jsonl`` (with a data directory) and sent first after the next
start; without one they are lost, and the log says how many. While running, records that
fall out of the buffer unsent are counted (``covey info`` → ``traces.lost``).

Control operations: ``trace`` [``after`` seq] [``last`` n] → ``{"records", "seq"}``;
``trace_send`` ``address`` → ``{"stored"}`` (the whole buffer, sent once).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covey.core import Address, MemberState, format_address
from covey.runtime.config.model import AgentConfig
from covey.runtime.config.sources import parse_address
from covey.runtime.control.server import ControlError
from covey.runtime.features.base import ControlHandler, Feature, HttpRoute, json_response
from covey.runtime.traces.link import CollectorLink, LinkError, send_records
from covey.runtime.traces.records import TraceBuffer, TraceMaker

if TYPE_CHECKING:
    from aiohttp import web

    from covey.runtime.context import AgentContext
    from covey.runtime.events import AgentEvent

log = logging.getLogger("covey.traces")

#: Records left unsent at shutdown, in the data directory.
UNSENT = "traces-unsent.jsonl"
#: Most records one ``trace`` answer carries.
MAX_ANSWER = 10_000


class TracesFeature(Feature):
    """The trace records of one agent (see the module docstring)."""

    name = "traces"

    def __init__(self, config: AgentConfig, node_id: bytes) -> None:
        self.config = config
        self.node_id = node_id
        self.boot = time.time()
        self.enabled = config.trace_buffer > 0
        self.buffer = TraceBuffer(
            max(config.trace_buffer, 1), streaming=config.collector is not None
        )
        self.maker: TraceMaker | None = None
        self.link: CollectorLink | None = None
        self.ctx: AgentContext | None = None

    @property
    def identity(self) -> dict[str, Any]:
        """Who sends: ``node_id``, ``node``, ``cluster``, ``boot``."""
        c = self.config
        return {
            "node_id": self.node_id.hex(),
            "node": c.name,
            "cluster": c.cluster,
            "boot": self.boot,
        }

    def prepare(self, ctx: AgentContext) -> None:
        """Listen to the events from the core's start on."""
        self.ctx = ctx
        if not self.enabled:
            return

        def alive() -> int:
            return sum(m.state is MemberState.ALIVE for m in ctx.members.members.values())

        self.maker = TraceMaker(
            self.config.name,
            self.node_id,
            self.config.cluster,
            self.boot,
            alive,
            lambda now: now + ctx.wall_offset,
        )
        ctx.listen(self._on_event)

    def start(self, ctx: AgentContext) -> None:
        """With a collector, stream to it."""
        if self.enabled and self.config.collector is not None:
            self.link = CollectorLink(
                self.config.collector,
                self.config.keys,
                self.buffer,
                self.identity,
                backlog=self._read_unsent(),
            )
            ctx.spawn(self.link.run())

    def _on_event(self, event: AgentEvent) -> None:
        maker = self.maker
        if maker is not None and (record := maker.from_event(event)) is not None:
            self.buffer.add(record)

    # ------------------------------------------------------------------ unsent records

    def _unsent_path(self) -> Path | None:
        d = self.config.data_dir
        return None if d is None else d / UNSENT

    def _read_unsent(self) -> list[dict[str, Any]]:
        path = self._unsent_path()
        if path is None or not path.exists():
            return []
        out = []
        try:
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    out.append(record)
            path.unlink()
        except OSError as exc:
            log.warning("traces: cannot read %s: %s", path, exc)
        return out

    def stop(self) -> None:
        """Keep what the collector has not stored for the next start (or say it is lost)."""
        link = self.link
        if link is None:
            return
        unsent = link.backlog + self.buffer.unsent()
        if not unsent:
            return
        path = self._unsent_path()
        if path is None:
            log.warning("traces: %d records not sent to the collector are lost", len(unsent))
            return
        try:
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in unsent))
            os.replace(tmp, path)
            log.info("traces: %d records kept for the collector in %s", len(unsent), path)
        except OSError as exc:
            log.warning("traces: %d records lost: cannot write %s: %s", len(unsent), path, exc)

    # ------------------------------------------------------------------ operations

    def control_ops(self) -> Mapping[str, ControlHandler]:
        return {"trace": self._trace, "trace_send": self._send}

    def http_routes(self) -> Sequence[HttpRoute]:
        """``GET /v1/traces`` (``?last=N`` or ``?after=SEQ``): the records in the ring."""
        from covey.runtime.http.routes import BOOL, INT, Param, Route, arr, error_response, obj

        async def traces(request: web.Request) -> web.Response:
            args = {k: int(request.query[k]) for k in ("last", "after") if k in request.query}
            try:
                return json_response(self._trace(args))
            except ControlError as exc:
                return error_response(400, str(exc))

        return [
            Route(
                "GET",
                "/v1/traces",
                traces,
                "The trace records held in this agent's ring (docs/traces.md), newest last.",
                obj({"records": arr(obj({"op": {"type": "string"}})), "seq": INT, "enabled": BOOL}),
                tag="traces",
                params=(
                    Param("last", {**INT, "minimum": 1, "maximum": MAX_ANSWER}, "The last N."),
                    Param("after", {**INT, "minimum": 0}, "Those after record number SEQ."),
                ),
            )
        ]

    def _trace(self, r: dict[str, Any]) -> object:
        after, last = r.get("after"), r.get("last")
        if after is not None and (type(after) is not int or after < 0):
            raise ControlError("after: must be a record number (an integer >= 0)")
        if last is not None and (type(last) is not int or not 0 < last <= MAX_ANSWER):
            raise ControlError(f"last: must be an integer in 1..{MAX_ANSWER}")
        if after is not None:
            records = self.buffer.after(after, MAX_ANSWER)
        else:
            records = self.buffer.last(last or MAX_ANSWER)
        return {"records": records, "seq": self.buffer.seq, "enabled": self.enabled}

    async def _send(self, r: dict[str, Any]) -> object:
        text = r.get("address")
        if not isinstance(text, str):
            raise ControlError("address: must be HOST:PORT text")
        try:
            address: Address = parse_address("address", text)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        records = self.buffer.last(self.buffer.size)
        try:
            stored = await send_records(address, self.config.keys, self.identity, records)
        except LinkError as exc:
            raise ControlError(str(exc)) from None
        return {"records": len(records), "stored": stored}

    def info(self) -> Mapping[str, object]:
        link = self.link
        c = self.config.collector
        return {
            "enabled": self.enabled,
            "buffer": self.config.trace_buffer,
            "held": len(self.buffer),
            "seq": self.buffer.seq,
            "collector": None if c is None else format_address(c),
            "connected": bool(link and link.connected),
            "acked": self.buffer.acked,
            "sent": 0 if link is None else link.sent,
            "backlog": 0 if link is None else len(link.backlog),
            "lost": self.buffer.lost,
            "last_error": "" if link is None else link.last_error,
        }
