"""The routes of membership and of the agent itself: members, self, health, info,
interfaces, tags, force-leave, rtt, leave. The features bring theirs (facts, names,
deliveries, traces...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from covey.runtime.http.routes import (
    BOOL,
    INT,
    NUM,
    STR,
    Param,
    Route,
    arr,
    enum,
    error_response,
    json_response,
    mapping,
    nullable,
    obj,
)

if TYPE_CHECKING:
    from aiohttp import web

    from covey.runtime.agent import Agent

STATES = ("alive", "suspect", "failed", "left")
#: One member, as ``covey members --json`` shows it (``kind: zre`` marks a foreign ZRE peer).
MEMBER = obj(
    {
        "name": STR,
        "id": STR,
        "address": STR,
        "state": enum(*STATES),
        "incarnation": INT,
        "tags": mapping(STR),
    },
    {"kind": enum("zre")},
)
HEALTH = obj(
    {
        "status": enum("ok", "degraded", "stopping"),
        "reasons": arr(STR),
        "name": STR,
        "cluster": STR,
        "members": mapping(INT),
        "health": INT,
    }
)
#: One word per interface (worst first in the overall one).
NET_STATUS = enum("bad_key", "foreign_cluster", "dropping", "silent", "ok")
#: Drops by reason, bad_key and foreign_cluster first (always present).
NET_DROPS = mapping(INT)
PEER = obj({"address": STR, "name": nullable(STR), "count": INT, "dropped": INT, "last": NUM})
INTERFACE = obj(
    {
        "name": STR,
        "address": STR,
        "mode": enum("multicast", "broadcast"),
        "beacons_out": INT,
        "beacons_in": INT,
        "last_out": nullable(NUM),
        "last_in": nullable(NUM),
        "peers": arr(PEER),
        "drops": NET_DROPS,
        "status": NET_STATUS,
    }
)
INTERFACES = obj(
    {
        "interfaces": arr(INTERFACE),
        "unicast": obj(
            {
                "address": STR,
                "datagrams_in": INT,
                "datagrams_out": INT,
                "drops": NET_DROPS,
                "last_in": nullable(NUM),
                "status": NET_STATUS,
            }
        ),
        "status": NET_STATUS,
    }
)
INFO = obj(
    {
        "self": MEMBER,
        "cluster": STR,
        "encrypted": BOOL,
        "keys": INT,
        "discovery": obj({"enabled": BOOL, "mode": STR}),
        "pid": INT,
        "uptime": NUM,
        "stats": obj(),
        "drops": mapping(INT),
        "runtime": mapping(INT),
        "interfaces": INTERFACES,
        "http": obj({"index": INT, "held_queries": INT, "event_streams": INT}),
    }
)
TAG_TEXT = {"type": "string", "maxLength": 512}
TAGS_BODY = obj(
    optional={
        "set": {**mapping(TAG_TEXT), "maxProperties": 64},
        "delete": {**arr(TAG_TEXT), "maxItems": 64},
    },
    extra=False,
)


ROUND_TRIP = obj(
    {
        "name": STR,
        "id": STR,
        "last_ms": NUM,
        "smoothed_ms": NUM,
        "min_ms": NUM,
        "samples": INT,
    }
)
NODE = Param("node", STR, "The member's name or id.")


def core_routes(agent: Agent) -> list[Route]:
    """The routes of the module docstring, for ``agent``."""
    from covey.runtime.control.member_ops import force_leave, round_trip
    from covey.runtime.http.adapt import op_handler

    async def members(request: web.Request) -> web.Response:
        state = request.query.get("state")
        shown = agent.member_listing()
        if state:
            shown = [m for m in shown if m["state"] == state]
        return json_response(shown)

    async def self_(request: web.Request) -> web.Response:
        return json_response(agent.local().to_json())

    async def health(request: web.Request) -> web.Response:
        stats = agent.statistics()
        verdict = agent.health.verdict(stopping=not agent.ready)
        body = {
            "status": verdict["status"],
            "reasons": verdict["reasons"],
            "name": agent.name,
            "cluster": agent.config.cluster,
            "members": stats.members,
            "health": stats.health,
        }
        return json_response(body, status=200 if agent.ready else 503)

    async def info(request: web.Request) -> web.Response:
        from covey.runtime.http.app import INDEX_KEY, STREAMS_KEY

        shown = agent.info()
        shown["http"] = {
            "index": request.app[INDEX_KEY].index,
            "held_queries": request.app[INDEX_KEY].waiting,
            "event_streams": request.app[STREAMS_KEY].open,
        }
        return json_response(shown)

    async def interfaces(request: web.Request) -> web.Response:
        return json_response(agent.interfaces())

    async def tags(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            member = agent.update_tags(body.get("set"), body.get("delete") or ())
        except ValueError as exc:
            return error_response(400, f"tags: {exc}")
        return json_response(member.to_json())

    async def leave(request: web.Request) -> web.Response:
        agent.request_shutdown()
        return json_response({"result": "leaving"}, status=202)

    tag = "agent"
    return [
        Route(
            "GET",
            "/v1/members",
            members,
            "Every member this agent knows, with state, address and tags.",
            arr(MEMBER),
            tag="membership",
            params=(Param("state", enum(*STATES), "Only members in this state."),),
            blocking=True,
        ),
        Route("GET", "/v1/self", self_, "This agent's own member record.", MEMBER, tag=tag),
        Route(
            "GET",
            "/v1/health",
            health,
            "ok or degraded (with the reasons) and the member counts; 503 while stopping.",
            HEALTH,
            tag=tag,
            errors={503: "the agent is stopping"},
            blocking=True,
        ),
        Route(
            "GET",
            "/v1/info",
            info,
            "What covey info shows: self, discovery, counters, drops by reason, features.",
            INFO,
            tag=tag,
        ),
        Route(
            "GET",
            "/v1/interfaces",
            interfaces,
            "Per discovery interface: beacons out and in, from whom, when last, drops by "
            "reason (bad_key first); the unicast socket's; a one-word status.",
            INTERFACES,
            tag=tag,
            description=(
                "Tells a dead interface (silent: beacons_in 0, last_in null, no drops) "
                "from a bad key (bad_key drops, the sender among the peers with name "
                "null). Peers: the 64 sources heard last, newest first."
            ),
        ),
        Route(
            "PUT",
            "/v1/tags",
            tags,
            "Set some of this agent's tags and delete others (the rest are kept).",
            MEMBER,
            tag="membership",
            body=TAGS_BODY,
            mutating=True,
        ),
        Route(
            "POST",
            "/v1/force-leave/{node}",
            op_handler(lambda r: force_leave(agent, r), path=("node",)),
            "Mark a failed member left, cluster-wide, so nobody looks for it any more.",
            obj({"name": STR, "id": STR, "state": enum("left")}),
            tag="membership",
            params=(NODE,),
            body=None,
            errors={404: "no such member", 409: "the member is not failed"},
            mutating=True,
        ),
        Route(
            "GET",
            "/v1/rtt/{node}",
            op_handler(lambda r: round_trip(agent, r), path=("node",)),
            "Round-trip times this agent measured to a member by its direct probes.",
            ROUND_TRIP,
            tag="membership",
            params=(NODE,),
            errors={404: "no such member", 503: "no round trip measured yet"},
        ),
        Route(
            "POST",
            "/v1/leave",
            leave,
            "Leave the cluster gracefully and stop the agent.",
            obj({"result": STR}),
            tag=tag,
            status=202,
            body=None,
            mutating=True,
        ),
    ]
