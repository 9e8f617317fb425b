"""The receiver's handler in the agent: a Python callback or ``--delivery-handler CMD``.

A request reaches the runtime as a :class:`~covey.core.deliveries.DeliveryRequested`
event, published only once its ``started`` record is durable (so a handler runs at most
once per delivery stage per node, across restarts). One handler runs per request:

* the Python callbacks given to ``agent.deliveries.on_request(fn)``, newest first: ``fn``
  gets the event and returns the receipt's result (``bytes`` or ``str``), a
  :class:`~covey.core.deliveries.Refused`, or an awaitable of one; an exception refuses;
* else the command: the payload on stdin; ``COVEY_DELIVERY_ID``, ``COVEY_DELIVERY_STAGE``,
  ``COVEY_DELIVERY_OWNER`` (node id, hex) and ``COVEY_DELIVERY_DEADLINE`` (Unix seconds)
  in its environment; its stdout (at most 16 KiB) becomes the receipt's result; a
  non-zero exit refuses, with the last line of its stderr as the reason; past the
  deadline it is killed and the request refused;
* else the request is acknowledged with an empty result (a plain "received").

At most :data:`MAX_RUNNING` handlers run at once; the rest wait their turn.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable

from covey.core.deliveries import Answer, DeliveryRequested, Refused
from covey.core.deliveries.model import RESULT_LIMIT
from covey.runtime.shell import run_shell

#: Handlers running at once on one node.
MAX_RUNNING = 32
#: Octets of stderr kept for a refusal's reason.
STDERR_LIMIT = 4096

_Result = bytes | str | Refused
RequestFn = Callable[[DeliveryRequested], "_Result | Awaitable[_Result]"]


def _as_answer(value: object) -> Answer:
    if isinstance(value, Refused):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if value is None:
        return b""
    return Refused(f"handler returned {type(value).__name__}, not bytes, str or Refused")


class HandlerRunner:
    """Runs one handler per request and gives back its answer (see the module docstring).

    Args:
        command: the ``--delivery-handler`` shell command, or None.
    """

    def __init__(self, command: str | None) -> None:
        self.command = command
        self.callbacks: list[RequestFn] = []
        self._slots = asyncio.Semaphore(MAX_RUNNING)
        #: Runs by outcome: answered, refused, timed_out.
        self.counters: dict[str, int] = {"runs": 0, "answered": 0, "refused": 0, "timed_out": 0}

    async def run(self, request: DeliveryRequested) -> Answer:
        """Run the handler for ``request``; never raises (a failure is a refusal)."""
        async with self._slots:
            self.counters["runs"] += 1
            left = request.deadline - time.time()
            try:
                async with asyncio.timeout(max(left, 0.001)):
                    answer = await self._run(request)
            except TimeoutError:
                self.counters["timed_out"] += 1
                answer = Refused("the handler did not finish before the deadline")
            except Exception as exc:  # a handler's bug refuses the request, nothing more
                answer = Refused(f"handler raised {type(exc).__name__}: {exc}")
        self.counters["refused" if isinstance(answer, Refused) else "answered"] += 1
        return answer

    async def _run(self, request: DeliveryRequested) -> Answer:
        if self.callbacks:
            value: object = self.callbacks[-1](request)
            if inspect.isawaitable(value):
                value = await value
            return _as_answer(value)
        if self.command is not None:
            return await self._run_command(self.command, request)
        return b""

    async def _run_command(self, command: str, request: DeliveryRequested) -> Answer:
        env = {
            **os.environ,
            "COVEY_DELIVERY_ID": request.delivery.hex(),
            "COVEY_DELIVERY_STAGE": str(request.stage),
            "COVEY_DELIVERY_OWNER": request.owner.hex(),
            "COVEY_DELIVERY_DEADLINE": f"{request.deadline:.3f}",
        }
        # One octet over the limit is kept, so an answer too long is refused (its size counted).
        done = await run_shell(
            command, env, request.payload, keep=max(RESULT_LIMIT + 1, STDERR_LIMIT)
        )
        if done.code != 0:
            lines = done.err[-STDERR_LIMIT:].decode(errors="replace").strip().splitlines()
            why = lines[-1] if lines else ""
            return Refused(f"handler exited {done.code}" + (f": {why}" if why else ""))
        if done.out_size > RESULT_LIMIT:
            return Refused(f"handler printed {done.out_size} octets, over the {RESULT_LIMIT} limit")
        return done.out
