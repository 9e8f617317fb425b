"""Control endpoints: a unix socket for local requests, a Fernet-sealed TCP one for remote.

Protocol: newline-delimited JSON. A request is ``{"op": ..., ...}``; the answer is
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``. Operations:

* ``members`` — every known member (``MemberInfo.to_json()`` shape);
* ``self`` — this node's record; ``info`` — self, counters and drop reasons;
* ``tags`` with ``set`` (object) and/or ``delete`` (list) — change our tags;
* ``leave`` — answer, then leave gracefully and stop;
* ``join`` with ``addresses`` (list of ``HOST:PORT``) — contact more seeds, as ``--join``;
* ``reload`` — what SIGHUP does (runtime/reload.py): ``{"reloaded", "needs_restart"}``;
* ``monitor`` — answer, then one event object per line until the client disconnects;
* ``drop`` with ``add`` / ``remove`` (lists of ``host:port``) and ``clear`` — testing aid:
  discard unicast traffic to or from those addresses, as if the network were cut;
* and the operations of the agent's features (``agent.control_ops``: facts, names...).

On the remote endpoint (``--rpc``) every line in both directions is a Fernet token sealed
with the cluster key (the first key seals, any key opens), so only key holders can use it.
Tokens older than :data:`RPC_TTL` seconds or seen before are refused (no replays).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covey.runtime.config.model import ConfigError
from covey.runtime.config.sources import parse_address
from covey.runtime.control.codec import RPC_TTL, ControlError, LineCodec, SealedCodec
from covey.runtime.control.member_ops import force_leave, round_trip
from covey.runtime.control.paths import (
    UntrustedPath,
    ensure_runtime_dir,
    link_socket,
    runtime_dir,
    socket_name,
    unlink_link,
)
from covey.runtime.events import Subscription, event_to_json
from covey.runtime.net.limits import PortGuard

if TYPE_CHECKING:
    from covey.runtime.agent import Agent

log = logging.getLogger("covey.control")

# The features and clients import the codec's names from here.
__all__ = [
    "RPC_TTL",
    "ControlError",
    "LineCodec",
    "SealedCodec",
    "handle_request",
    "remove_control_socket",
    "serve_connection",
    "start_control_servers",
]

#: Longest request line accepted (a sealed 64 KiB delivery payload fits).
LINE_LIMIT = 256 * 1024
#: Connections one peer host may hold open on a TCP endpoint.
MAX_PER_PEER = 32

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]
SpawnHandler = Callable[[Handler], Callable[[asyncio.StreamReader, asyncio.StreamWriter], None]]


async def start_control_servers(
    agent: Agent, spawn: SpawnHandler
) -> tuple[list[asyncio.Server], int | None]:
    """Bind the unix control socket and, if configured, the RPC endpoint (not yet serving).

    Returns the servers and the inode of the socket file created (see
    :func:`remove_control_socket`).
    """
    servers: list[asyncio.Server] = []
    inode: int | None = None
    path = agent.config.control_path
    in_runtime_dir = agent.config.control is None and agent.config.data_dir is None
    if in_runtime_dir:
        try:
            ensure_runtime_dir()
        except UntrustedPath as exc:
            raise ConfigError("control", f"{exc} (give --control or --data-dir)") from None
        except OSError as exc:
            raise ConfigError("control", f"cannot create the runtime dir: {exc}") from None
    _clear_stale_socket(path)
    plain = LineCodec()
    # Each endpoint's connection cap and refusal counters (runtime/net/limits.py).
    local_guard = agent.ports["control"]
    server = await asyncio.start_unix_server(
        spawn(lambda r, w: serve_connection(agent, r, w, plain, local_guard)),
        path=str(path),
        limit=LINE_LIMIT,
        start_serving=False,
    )
    servers.append(server)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)  # local requests: only the agent's user
        inode = path.stat().st_ino
    if not in_runtime_dir:  # so that a plain `covey members` finds it there too
        link_socket(path, agent.config.cluster, agent.config.name)
    if agent.config.rpc is not None:
        if not agent.config.keys:
            raise OSError("rpc: the remote control endpoint needs a key file")
        sealed = SealedCodec(list(agent.config.keys))
        rpc_guard = agent.ports["rpc"]
        host, port = agent.config.rpc
        servers.append(
            await asyncio.start_server(
                spawn(lambda r, w: serve_connection(agent, r, w, sealed, rpc_guard)),
                host,
                port,
                limit=LINE_LIMIT,
                reuse_address=True,
                start_serving=False,
            )
        )
    return servers, inode


def _clear_stale_socket(path: os.PathLike[str]) -> None:
    """Remove a socket file left by a dead agent; refuse if a live one answers there."""
    p = os.fspath(path)
    if not os.path.exists(p):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(p)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(p)
        return
    finally:
        probe.close()
    raise OSError(f"control: another agent is listening on {p}")


def remove_control_socket(path: Path, inode: int | None, cluster: str, name: str) -> None:
    """Unlink the control socket at ``path`` if it is still the one we created (``inode``),
    so an agent never removes another agent's socket; and the runtime directory's link
    to it, if that still points here."""
    with contextlib.suppress(OSError):
        if inode is not None and path.stat().st_ino == inode:
            path.unlink()
    unlink_link(runtime_dir() / socket_name(cluster, name), path)


async def serve_connection(
    agent: Agent,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    codec: LineCodec,
    guard: PortGuard,
) -> None:
    """Answer requests on one connection until the client closes it.

    On the sealed endpoint the agent first sends a plain line ``{"challenge": C, "node":
    ID}``, fresh for each connection; every sealed request must carry ``"challenge": C``.
    A captured request is thereby bound to one connection of one agent's run: replayed to
    another agent, to this one on another connection, or after a restart, it is refused
    (and repeating it on its own connection is refused as a seen token).

    Bounded (``guard``: the endpoint's cap, :mod:`covey.runtime.net.limits`): at most
    ``guard.cap`` connections per endpoint and :data:`MAX_PER_PEER` per peer host on a
    TCP one (others are answered "busy" and closed, counted as ``control_busy``, so one
    host cannot starve the rest, and the unix socket stays usable), the agent's
    ``idle_timeout`` for each whole request line (an idle or slow client is closed,
    ``control_timeout``), lines of at most :data:`LINE_LIMIT` octets
    (``control_oversized``).
    """
    peer = writer.get_extra_info("peername")
    host = peer[0] if isinstance(peer, tuple) else None  # None: the unix socket
    held = codec.per_peer.get(host, 0) if host is not None else 0
    if held >= MAX_PER_PEER:
        guard.busy()
        _log_refusal(codec, f"busy: {held} connections open from {host}")
    if held >= MAX_PER_PEER or not guard.admit():
        writer.write(LineCodec().encode({"ok": False, "error": "busy: too many connections"}))
        return
    codec.open += 1
    if host is not None:
        codec.per_peer[host] = held + 1
    try:
        await _serve_requests(agent, reader, writer, codec, guard)
    except TimeoutError:
        guard.timed_out()
    finally:
        guard.release()
        codec.open -= 1
        if host is not None:
            left = codec.per_peer.pop(host, 1) - 1
            if left > 0:
                codec.per_peer[host] = left


async def _serve_requests(
    agent: Agent,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    codec: LineCodec,
    guard: PortGuard,
) -> None:
    challenge = None
    if isinstance(codec, SealedCodec):
        # os.urandom, not secrets: that imports hmac, which maps OpenSSL's libcrypto
        # (3.3 MiB resident) into every agent for this one call.
        challenge = os.urandom(16).hex()
        hello = {"challenge": challenge, "node": agent.node_id.hex()}
        writer.write(LineCodec().encode(hello))
    while True:
        try:
            line = await asyncio.wait_for(reader.readline(), agent.config.idle_timeout)
        except ValueError:
            guard.oversized(f"request line above {LINE_LIMIT} octets")
            writer.write(LineCodec().encode({"ok": False, "error": "request line too long"}))
            return
        except TimeoutError:
            raise  # (an OSError too): counted by serve_connection
        except OSError:
            return
        if not line:
            return
        if not line.strip():
            continue
        try:
            request = codec.decode(line)
            if challenge is not None and (
                not isinstance(request, dict) or request.pop("challenge", None) != challenge
            ):
                raise ControlError("challenge: not this connection's (a replayed request?)")
        except ControlError as exc:
            _log_refusal(codec, str(exc))
            # The client cannot open a sealed answer if it has not the key: answer plainly.
            writer.write(LineCodec().encode({"ok": False, "error": str(exc)}))
            counters = agent.runtime_counters()
            # Refused sealed lines (forged, old, replayed) and malformed local requests
            # are different stories for an operator: two counters.
            which = "rpc_refused" if isinstance(codec, SealedCodec) else "control_refused"
            counters[which] = counters.get(which, 0) + 1
            return
        op = request.get("op") if isinstance(request, dict) else None
        try:
            result = handle_request(agent, request)
            if inspect.isawaitable(result):
                # Feature operations may wait (an action collecting its results).
                result = await result
        except ControlError as exc:
            writer.write(codec.encode({"ok": False, "error": str(exc)}))
        except ValueError as exc:  # ConfigError from bad tags
            writer.write(codec.encode({"ok": False, "error": str(exc)}))
        else:
            writer.write(codec.encode({"ok": True, "result": result}))
            if op == "monitor":
                await writer.drain()
                await _monitor(agent, reader, writer, codec)
                return
            if op == "leave":
                await writer.drain()
                agent.request_shutdown()
                return
        await writer.drain()


#: Seconds between two log lines about refused requests on one endpoint.
REFUSAL_LOG_EVERY = 10.0


def _log_refusal(codec: LineCodec, reason: str) -> None:
    """Log a refused control request, at most one line per endpoint every
    :data:`REFUSAL_LOG_EVERY` seconds, with the count of those not logged since (an
    attacker must not be able to fill the log; the counters have them all)."""
    now = time.monotonic()
    if now - codec.refusal_logged < REFUSAL_LOG_EVERY:
        codec.refusals_quiet += 1
        return
    quiet, codec.refusals_quiet, codec.refusal_logged = codec.refusals_quiet, 0, now
    more = f" ({quiet} more since the last line)" if quiet else ""
    log.warning("control request refused: %s%s", reason, more)


def handle_request(agent: Agent, request: object) -> object:
    """Run one control operation and return its result; raises ControlError."""
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        raise ControlError('request must be an object with an "op" string')
    op = request["op"]
    if not agent.ready and op != "info":
        raise ControlError("agent is shutting down")
    if op == "members":
        return agent.member_listing()
    if op == "self":
        return agent.local().to_json()
    if op == "info":
        return agent.info()
    if op == "tags":
        set_ = request.get("set") or {}
        delete = request.get("delete") or []
        if not isinstance(set_, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in set_.items()
        ):
            raise ControlError('"set" must map text to text')
        if not isinstance(delete, list) or not all(isinstance(k, str) for k in delete):
            raise ControlError('"delete" must be a list of keys')
        return agent.update_tags(set_, delete).to_json()
    if op in ("leave", "monitor"):
        return "leaving" if op == "leave" else "monitoring"
    if op == "drop":
        return _drop(agent, request)
    if op == "join":
        return _join(agent, request)
    if op == "force_leave":
        return force_leave(agent, request)
    if op == "rtt":
        return round_trip(agent, request)
    if op == "reload":
        from covey.runtime.reload import reload_agent

        applied, restart = reload_agent(agent)
        return {"reloaded": applied, "needs_restart": restart}
    ops = agent.control_ops
    handler = ops.get(op)
    if handler is not None:
        return handler(request)
    core = [
        *("members", "self", "info", "tags", "leave", "monitor", "drop", "join", "reload"),
        *("force_leave", "rtt"),
    ]
    known = ", ".join([*core, *ops])
    raise ControlError(f"unknown op {op!r} ({known})")


def _join(agent: Agent, request: dict[str, Any]) -> object:
    """Contact more seeds (``addresses``: ``HOST:PORT`` texts), as ``--join`` does at start."""
    given = request.get("addresses")
    if not isinstance(given, list) or not given or len(given) > 64:
        raise ControlError('"addresses" must be a list of 1 to 64 HOST:PORT texts')
    try:
        addresses = [parse_address("addresses", a) for a in given]
    except ValueError as exc:
        raise ControlError(str(exc)) from None
    driver = agent._driver
    if driver is None:
        raise ControlError("agent is shutting down")
    driver.call(lambda now: agent.node.join(addresses, now=now))
    return {"contacting": [f"{h}:{p}" for h, p in addresses]}


def _drop(agent: Agent, request: dict[str, Any]) -> object:
    """Testing aid: drop unicast traffic to/from addresses (``add``, ``remove``, ``clear``)."""
    try:
        add = {parse_address("add", a) for a in request.get("add") or []}
        remove = {parse_address("remove", a) for a in request.get("remove") or []}
    except ValueError as exc:
        raise ControlError(str(exc)) from None
    try:
        drop = agent.drop_traffic(add, remove, clear=bool(request.get("clear")))
    except RuntimeError as exc:
        raise ControlError(str(exc)) from None
    return sorted(f"{h}:{p}" for h, p in drop)


async def _monitor(
    agent: Agent, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, codec: LineCodec
) -> None:
    """Stream events until the client disconnects or the agent stops."""
    with agent.events() as sub:
        gone = asyncio.ensure_future(reader.read(1))  # EOF (b"") when the client leaves
        # The client's leaving ends the subscription, so this task waits on its queue
        # alone: an event is written one loop turn after it is published (a wait() on
        # both per event took three, behind whatever else those turns ran, such as
        # an action handler's fork).
        gone.add_done_callback(lambda _: _end(sub))
        try:
            async for event in sub:
                if gone.done():
                    return
                writer.write(codec.encode(event_to_json(event, agent.node.wall_offset)))
                await writer.drain()
        finally:
            gone.cancel()


def _end(sub: Subscription) -> None:
    """End ``sub``'s iteration (its queue's last item is None)."""
    sub.close()
    if sub.queue.full():
        sub.queue.get_nowait()
    sub.queue.put_nowait(None)
