"""A real pyre node for the ZRE interop tests, run inside the test's network namespace.

    python -m covey.lab.pyre_peer NAME [--group G]... [--expired SECONDS]

It prints one JSON line per pyre event on stdout (``{"event": "ENTER", "peer": hex,
"name": ..., ...}``, with the wall time ``t`` it was received at), and ``{"event":
"READY", "uuid": hex}`` once started. It reads commands on stdin, one per line:
``shout GROUP TEXT``, ``whisper UUID TEXT``, ``stop`` (pyre's own stop: a port-0 beacon,
then exit). EOF on stdin stops it too.

``--expired`` sets pyre's peer expiry in whole seconds (``PyrePeer.PEER_EXPIRED``, 30 s by
default; pyre multiplies it into a socket option that must be an integer) so a test need
not wait 30 s; the expiry code path is pyre's own either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--group", action="append", default=[])
    parser.add_argument("--expired", type=int, default=None)
    args = parser.parse_args()

    import zmq
    from pyre import Pyre  # type: ignore[import-untyped]
    from pyre.pyre_peer import PyrePeer  # type: ignore[import-untyped]

    if args.expired is not None:
        PyrePeer.PEER_EXPIRED = args.expired
    lock = threading.Lock()

    def say(obj: dict[str, object]) -> None:
        obj["t"] = time.time()
        with lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    node = Pyre(args.name)
    node.set_header("X-PYRE-TEST", "yes")
    for g in args.group:
        node.join(g)
    node.start()
    say({"event": "READY", "uuid": node.uuid().hex})
    commands: list[str] = []
    wake = threading.Event()

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.append(line.strip())
            wake.set()
        commands.append("stop")
        wake.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    poller = zmq.Poller()
    poller.register(node.socket(), zmq.POLLIN)
    while True:
        while commands:
            cmd, _, rest = commands.pop(0).partition(" ")
            if cmd == "stop":
                node.stop()
                say({"event": "STOPPED"})
                return
            if cmd == "shout":
                group, _, text = rest.partition(" ")
                node.shouts(group, text)
            elif cmd == "whisper":
                peer, _, text = rest.partition(" ")
                node.whispers(uuid.UUID(hex=peer), text)
        if dict(poller.poll(100)).get(node.socket()) != zmq.POLLIN:
            continue
        frames = node.recv()
        kind = frames[0].decode()
        out: dict[str, object] = {"event": kind, "peer": uuid.UUID(bytes=frames[1]).hex}
        out["name"] = frames[2].decode()
        if kind == "ENTER":
            out["headers"] = json.loads(frames[3].decode())
            out["endpoint"] = frames[4].decode()
        elif kind in ("JOIN", "LEAVE"):
            out["group"] = frames[3].decode()
        elif kind == "SHOUT":
            out["group"] = frames[3].decode()
            out["content"] = [f.decode(errors="replace") for f in frames[4:]]
        elif kind == "WHISPER":
            out["content"] = [f.decode(errors="replace") for f in frames[3:]]
        say(out)


if __name__ == "__main__":
    main()
