"""Two of Serf's operator commands on members: ``force-leave`` and ``rtt``.

Both name a member by its name or id, both are control operations (``force_leave``,
``rtt``) that the CLI and the HTTP API share, and both refuse with a
:class:`~covey.runtime.control.codec.ControlError` that says why: an unknown member, a
name two members share, a member that is not failed, no round trip measured yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from covey.runtime.control.codec import ControlError

if TYPE_CHECKING:
    from covey.core import MemberInfo
    from covey.runtime.agent import Agent


def find_one(agent: Agent, name_or_id: object) -> MemberInfo:
    """The one member called ``name_or_id`` (a name or 32 hex digits).

    Raises:
        ControlError: not text, no such member, or a name more than one member uses
            (then the ids to use instead are listed).
    """
    if not isinstance(name_or_id, str) or not name_or_id:
        raise ControlError('"node" must be a member\'s name or id')
    found = [m for m in agent.members() if name_or_id in (m.name, m.id_hex)]
    if not found:
        raise ControlError(f"no such member: {name_or_id!r}")
    if len(found) > 1:
        ids = ", ".join(m.id_hex for m in found)
        raise ControlError(f"{len(found)} members are called {name_or_id!r}; give an id: {ids}")
    return found[0]


def force_leave(agent: Agent, request: dict[str, Any]) -> dict[str, object]:
    """``force_leave``: mark failed member ``node`` left, cluster-wide (gossiped)."""
    m = find_one(agent, request.get("node"))
    driver = agent._driver
    if driver is None or not agent.ready:
        raise ControlError("agent is shutting down")
    try:
        gone = driver.call(lambda now: agent.node.force_leave(m.node_id, now=now))
    except (KeyError, ValueError) as exc:
        raise ControlError(str(exc).strip("'\"")) from None
    return {"name": gone.name, "id": gone.id_hex, "state": "left"}


def round_trip(agent: Agent, request: dict[str, Any]) -> dict[str, object]:
    """``rtt``: the round trips this agent measured to member ``node``."""
    m = find_one(agent, request.get("node"))
    if m.node_id == agent.node_id:
        raise ControlError(f"{m.name} is this agent; give another member")
    measured = agent.node.round_trip(m.node_id)
    if measured is None:
        every = agent.config.probe_interval * max(1, len(agent.members()) - 1)
        raise ControlError(
            f"no round trip to {m.name} measured yet (each member is probed about every "
            f"{every:g} s); try again shortly"
        )
    return {"name": m.name, "id": m.id_hex, **measured.to_json()}
