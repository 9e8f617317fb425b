"""systemd's readiness protocol (``Type=notify``): tell the service manager where we are.

When systemd starts the agent with ``Type=notify`` it sets ``NOTIFY_SOCKET``; the agent
sends ``READY=1`` once it serves (every socket bound, the core started), ``RELOADING=1``
then ``READY=1`` around a SIGHUP reload, and ``STOPPING=1`` when it begins to leave. Each
message is one datagram to that unix socket (``@name`` is the abstract namespace). Without
``NOTIFY_SOCKET`` nothing is sent. No library: the protocol is this one datagram.
"""

from __future__ import annotations

import contextlib
import os
import socket


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (``READY=1``, ``STATUS=...``, newline-separated) to systemd.

    Returns True when it was sent; False without ``NOTIFY_SOCKET`` or when sending failed
    (never raises: readiness is advice to the service manager, not a reason to stop).
    """
    env = os.environ if environ is None else environ
    target = env.get("NOTIFY_SOCKET")
    if not target or target[0] not in "@/":
        return False
    address = "\0" + target[1:] if target[0] == "@" else target
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(state.encode(), address)
        return True
    return False
