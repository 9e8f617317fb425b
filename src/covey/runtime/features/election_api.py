"""The election's Python facade (``agent.election``), control operations and HTTP route.

    async with covey.Agent(config) as agent:
        print(agent.election.names()["leader"])
        agent.election.recover()

Control operations (JSON lines): ``names``, ``recover``, ``reboot``, ``candidate`` ``node``,
``expect`` ``votes``; HTTP: ``GET /v1/names``, ``POST /v1/election/recover``, ``POST
/v1/election/expect``. With the election off (``--no-election``) every call refuses with
:class:`~covey.runtime.control.server.ControlError` ("the election is off ...").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from covey.runtime.control.server import ControlError
from covey.runtime.features.base import ControlHandler, HttpRoute, json_response

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiohttp import web

    from covey.core.election.election import Election
    from covey.runtime.context import AgentContext
    from covey.runtime.features.election import ElectionFeature

T = TypeVar("T")


class ElectionAPI:
    """Read and steer the agent's election (Seed 003's GetNames, recover, reboot...)."""

    def __init__(self, feature: ElectionFeature) -> None:
        self._feature = feature

    @property
    def enabled(self) -> bool:
        """True when the agent runs an election."""
        return self._feature.election is not None

    def _election(self) -> Election:
        ext = self._feature.election
        if ext is None:
            raise ControlError("the election is off (the agent runs with --no-election)")
        return ext

    def _ctx(self) -> AgentContext:
        ctx = self._feature.ctx
        if ctx is None or not ctx.running:
            raise ControlError("agent is not running")
        return ctx

    def _call(self, fn: Callable[[float], T]) -> T:
        return self._ctx().call(fn)

    def names(self) -> dict[str, object]:
        """Seed 003's GetNames: ``cluster``, ``leader``, ``stable``, ``node``, ``term``.

        Also the election ``mode`` (normal/panic) and why, the latest fencing outcomes
        and the heartbeat disk's state.

        Raises:
            ControlError: the election is off, or the agent is not running.
        """
        ext = self._election()
        ctx = self._ctx()
        out = ext.names(ctx.now())
        feature = self._feature
        out["fences"] = list(feature.fences)
        disk = feature.config.heartbeat_disk
        out["disk"] = None if disk is None else {"path": str(disk), "error": feature.disk_error}
        return out

    def recover(self) -> object:
        """Leave panic mode by hand (the core says what it did)."""
        ext = self._election()
        return self._call(ext.recover)

    def reboot(self) -> float:
        """Act as if this node rebooted (drop the role, sit out); seconds until it resumes."""
        ext = self._election()
        ctx = self._ctx()
        back = ctx.call(ext.reboot)
        return float(back - ctx.now())

    def expect(self, votes: int) -> str:
        """``covey expect N``: lower the tracked expected size cluster-wide (the core says
        what it did).

        Raises:
            ControlError: the size is configured (``--expected-votes``), ``votes`` is below
                1 or below the members alive, or the election is off.
        """
        ext = self._election()
        try:
            return self._call(lambda now: ext.expect(votes, now))
        except ValueError as exc:
            raise ControlError(str(exc)) from None

    def candidate(self, node: str) -> str:
        """Send our election info to member ``node`` (name or id); returns its name.

        Raises:
            ControlError: no such member (or the election is off).
        """
        ext = self._election()
        ctx = self._ctx()
        member = ctx.find_member(node)
        if member is None:
            raise ControlError(f"no member called {node!r}")
        ctx.call(lambda now: ext.send_info(member.address, now))
        return member.name


def election_ops(api: ElectionAPI) -> dict[str, ControlHandler]:
    """The election's control operations, answered by ``api``."""

    def candidate(req: dict[str, Any]) -> object:
        api._election()  # "the election is off" before any complaint about the request
        target = req.get("node")
        if not isinstance(target, str) or not target:
            raise ControlError('"node" must name a member')
        return {"sent_to": api.candidate(target)}

    def expect(req: dict[str, Any]) -> object:
        api._election()
        votes = req.get("votes")
        if type(votes) is not int or votes < 1:
            raise ControlError('"votes" must be an integer of at least 1')
        return {"result": api.expect(votes)}

    return {
        "names": lambda req: api.names(),
        "recover": lambda req: {"result": api.recover()},
        "reboot": lambda req: {"resumes_in": round(api.reboot(), 3)},
        "candidate": candidate,
        "expect": expect,
    }


def election_routes(api: ElectionAPI) -> list[HttpRoute]:
    """``GET /v1/names`` (404 with the reason when the election is off), ``POST
    /v1/election/recover`` (leave panic mode by hand) and ``POST /v1/election/expect``
    (lower the tracked expected size); both POSTs need the token."""
    from covey.runtime.http.adapt import op_handler
    from covey.runtime.http.routes import ANY, BOOL, INT, STR, Route, arr, enum, nullable, obj

    async def names(request: web.Request) -> web.Response:
        try:
            return json_response(api.names())
        except ControlError as exc:
            return json_response({"error": str(exc)}, status=404)

    shown = obj(
        {
            "cluster": STR,
            "leader": nullable(STR),
            "stable": BOOL,
            "node": STR,
            "term": INT,
            "mode": enum("normal", "panic"),
            "fences": arr(ANY),
        },
        {
            "role": STR,
            "panic_reason": nullable(STR),
            "quorum": INT,
            "partitioned": arr(STR),
            "expected_votes": INT,
            "expected_rule": enum("tracked", "configured"),
        },
    )
    return [
        Route(
            "GET",
            "/v1/names",
            names,
            "The leader, its term, whether it is stable, the election mode and fencing.",
            shown,
            tag="election",
            errors={404: "the election is off"},
            blocking=True,
        ),
        Route(
            "POST",
            "/v1/election/recover",
            op_handler(election_ops(api)["recover"]),
            "Leave panic mode by hand.",
            obj({"result": ANY}),
            tag="election",
            errors={404: "the election is off", 503: "the election is off or not running"},
            mutating=True,
        ),
        Route(
            "POST",
            "/v1/election/expect",
            op_handler(election_ops(api)["expect"], body=True),
            "Lower the tracked expected votes cluster-wide (refused below the members alive).",
            obj({"result": STR}),
            tag="election",
            body=obj({"votes": INT}, extra=False),
            errors={
                400: "votes below 1 or the members alive, or the size is configured",
                404: "the election is off",
                503: "not running",
            },
            mutating=True,
        ),
    ]
