"""ZRE mode as a runtime feature: covey lives beside Zyre and pyre nodes (``--zre``).

With ``zre`` on, the agent is also a ZRE v2 node (RFC 36) whose UUID is its covey node id
and whose name is its covey name: it beacons on the ZRE port (5670 by default) over the
agent's discovery interfaces, says HELLO to the ZRE nodes it hears, JOINs the configured
groups (``--zre-group``), and passes the SHOUTs and WHISPERs it gets to the event stream
(``covey monitor``, ``agent.events()``) and to :class:`ZreAPI` (``agent.zre``).

ZRE peers are *foreign members*: ``covey members``, ``/v1/members`` and
``agent.member_listing()`` list them with ``kind: zre`` beside covey's own, their HELLO
headers as tags; they never enter the SWIM table and count for no quorum, election,
version or shared state. pyzmq is imported only when the mode is on.

Control operations: ``zre_peers``, ``zre_shout`` (``group``, ``content``), ``zre_whisper``
(``peer``, ``content``), ``zre_join`` / ``zre_leave`` (``group``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from covey.runtime.config.model import AgentConfig
from covey.runtime.control.codec import ControlError
from covey.runtime.features.base import ControlHandler, Feature
from covey.runtime.zre.events import ZreReceived

if TYPE_CHECKING:
    from covey.runtime.context import AgentContext
    from covey.runtime.net.interfaces import Interface
    from covey.runtime.zre.transport import ZreTransport

log = logging.getLogger("covey.zre")

Content = bytes | str


def _frames(content: tuple[Content, ...]) -> tuple[bytes, ...]:
    return tuple(c.encode() if isinstance(c, str) else bytes(c) for c in content)


class ZreAPI:
    """``agent.zre``: the ZRE peers, and SHOUT/WHISPER/JOIN/LEAVE on their side.

    Every call but :attr:`enabled` raises ``ControlError`` when ZRE mode is off or the
    agent is not running.
    """

    def __init__(self, feature: ZreFeature) -> None:
        self._f = feature

    @property
    def enabled(self) -> bool:
        """True when the agent runs with ``zre`` on."""
        return self._f.config.zre

    def peers(self) -> list[dict[str, object]]:
        """The ZRE peers that said HELLO, in the member shape with ``kind: zre``."""
        t = self._f.transport
        return [] if t is None else [p.to_json() for p in t.table.listed()]

    def groups(self) -> list[str]:
        """The ZRE groups this agent is in."""
        return list(self._f.running().table.groups)

    def shout(self, group: str, *content: Content) -> int:
        """SHOUT ``content`` (frames: text or bytes) to ``group``; how many peers got it."""
        t = self._f.running()
        sent = t.table.shout(_check_group(group), _frames(content))
        t.flush()
        return sent

    def whisper(self, peer: str, *content: Content) -> str:
        """WHISPER ``content`` to the peer with this name or hex UUID; returns its UUID.

        Raises:
            ControlError: no such peer, or a name more than one peer uses.
        """
        t = self._f.running()
        found = t.table.find(peer)
        if not found:
            raise ControlError(f"no ZRE peer {peer!r}")
        if len(found) > 1:
            ids = ", ".join(p.uuid.hex() for p in found)
            raise ControlError(f"{len(found)} ZRE peers are called {peer!r}; give a UUID: {ids}")
        t.table.whisper(found[0].uuid, _frames(content))
        t.flush()
        return found[0].uuid.hex()

    def join(self, group: str) -> bool:
        """JOIN ``group`` (False: already in it)."""
        t = self._f.running()
        done = t.table.join(_check_group(group))
        t.flush()
        return done

    def leave(self, group: str) -> bool:
        """LEAVE ``group`` (False: not in it)."""
        t = self._f.running()
        done = t.table.leave(_check_group(group))
        t.flush()
        return done

    async def messages(self) -> AsyncIterator[ZreReceived]:
        """The SHOUTs and WHISPERs received from now on (``async for``; ends at stop)."""
        ctx = self._f.ctx
        if ctx is None:
            raise ControlError("the agent is not running")
        with ctx.subscribe() as sub:
            async for event in sub:
                if isinstance(event, ZreReceived):
                    yield event

    def on_message(self, fn: Callable[[ZreReceived], None]) -> None:
        """Call ``fn(message)`` for every SHOUT and WHISPER received (never dropped)."""
        self._f.callbacks.append(fn)


def _check_group(group: object) -> str:
    if not isinstance(group, str) or not group or len(group.encode()) > 255:
        raise ControlError('"group" must be text of 1 to 255 bytes')
    return group


class ZreFeature(Feature):
    """ZRE mode (see the module docstring); inert when ``config.zre`` is off."""

    name = "zre"

    def __init__(self, config: AgentConfig, node_id: bytes, interfaces: tuple[Interface, ...]):
        self.config = config
        self.node_id = node_id
        # RFC 36 beacons are IPv4 (an IPv6 agent is refused --zre at configuration).
        self.interfaces = tuple(i for i in interfaces if not i.ipv6)
        self.transport: ZreTransport | None = None
        self.ctx: AgentContext | None = None
        self.callbacks: list[Callable[[ZreReceived], None]] = []
        self.api = ZreAPI(self)

    def running(self) -> ZreTransport:
        """The transport; raises ControlError when ZRE is off or the agent not running."""
        if not self.config.zre:
            raise ControlError("ZRE mode is off (start the agent with --zre)")
        if self.transport is None:
            raise ControlError("the agent is not running")
        return self.transport

    def headers(self) -> dict[str, str]:
        """What our HELLO tells ZRE peers about us besides our name."""
        return {
            "X-COVEY-CLUSTER": self.config.cluster,
            "X-COVEY-ID": self.node_id.hex(),
        }

    def bind(self) -> None:
        """Open the ZRE sockets (pyzmq is imported here), before the agent announces itself.

        Raises:
            OSError: the ZRE port or a mailbox port cannot be bound (the message says which).
        """
        if not self.config.zre:
            return
        from covey.runtime.zre.transport import ZreTransport

        self.transport = ZreTransport(
            self.node_id,
            self.config.name,
            self.headers(),
            self.config.zre_groups,
            self.interfaces,
            self.config.zre_port,
            self._publish,
        )

    def start(self, ctx: AgentContext) -> None:
        """Begin beaconing and reading (the events go to the agent's stream from now on)."""
        self.ctx = ctx
        if self.transport is None:
            return
        log.info(
            "zre: node %s on port %d, mailbox %s, groups %s",
            self.node_id.hex(),
            self.config.zre_port,
            self.transport.endpoint,
            ", ".join(self.config.zre_groups) or "none",
        )
        ctx.spawn(self.transport.run())

    def _publish(self, event: object) -> None:
        if isinstance(event, ZreReceived):
            for fn in self.callbacks:
                try:
                    fn(event)
                except Exception:
                    log.exception("zre message callback %r failed", fn)
        if self.ctx is not None:
            self.ctx.publish(event)  # type: ignore[arg-type]

    def stop(self) -> None:
        """The port-0 beacon (peers see us EXIT at once), then every socket closed."""
        if self.transport is not None:
            self.transport.close(announce=self.ctx is not None)

    def control_ops(self) -> Mapping[str, ControlHandler]:
        api = self.api

        def content(req: dict[str, Any]) -> tuple[Content, ...]:
            c = req.get("content", "")
            items = c if isinstance(c, list) else [c]
            if not items or not all(isinstance(x, str) for x in items) or len(items) > 16:
                raise ControlError('"content" must be text or a list of 1 to 16 texts')
            return tuple(items)

        def whisper(req: dict[str, Any]) -> object:
            peer = req.get("peer")
            if not isinstance(peer, str) or not peer:
                raise ControlError('"peer" must be a ZRE peer\'s name or UUID')
            return {"peer": api.whisper(peer, *content(req))}

        return {
            "zre_peers": lambda req: [*(api.peers() if api.enabled else [])],
            "zre_shout": lambda req: {
                "group": req.get("group"),
                "peers": api.shout(_check_group(req.get("group")), *content(req)),
            },
            "zre_whisper": whisper,
            "zre_join": lambda req: {"joined": api.join(_check_group(req.get("group")))},
            "zre_leave": lambda req: {"left": api.leave(_check_group(req.get("group")))},
        }

    def info(self) -> Mapping[str, object]:
        t = self.transport
        if t is None:
            return {}
        return {
            "uuid": self.node_id.hex(),
            "port": self.config.zre_port,
            "endpoint": t.endpoint,
            "groups": list(t.table.groups),
            "peers": len(t.table.listed()),
            "counters": dict(t.counters),
            "drops": dict(t.table.drops),
        }


__all__ = ["ZreAPI", "ZreFeature"]
