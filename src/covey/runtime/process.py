"""Running the agent as a process: logging, signals, exit codes.

SIGTERM or SIGINT starts the graceful leave; a second one forces the exit (the main task
is cancelled, sockets are still closed on the way out). SIGHUP reloads what can change
at run time (runtime/reload.py) instead of killing the agent (its default action).

Logs go to stderr, one line per record: ``HH:MM:SS covey[NAME] LEVEL message``, or with
``--log-format json`` one JSON object per line (``time`` as an ISO 8601 UTC stamp,
``level``, ``logger``, ``node``, ``message``, and ``error`` with the traceback if any), for
a journal or a log shipper.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import signal
import sys

from covey.runtime.agent import Agent
from covey.runtime.config.model import AgentConfig
from covey.runtime.config.sources import exposed_mode
from covey.runtime.sdnotify import notify

log = logging.getLogger("covey.process")

#: Exit status after a forced (second-signal) exit.
EXIT_FORCED = 130


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        out = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "node": self.node,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str, name: str, fmt: str = "text") -> None:
    """Log to stderr as ``covey[name] LEVEL message`` (or JSON lines: ``fmt="json"``)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(name))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s covey[{name}] %(levelname)s %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger("covey")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


async def serve(agent: Agent) -> int:
    """Run ``agent`` until a signal or a ``leave`` request stops it; returns the exit code."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            log.info("%s received: leaving the cluster", signal.Signals(signum).name)
            notify("STOPPING=1")
            agent.request_shutdown()
        else:
            log.warning("second signal: forcing exit")
            main.cancel()

    def on_hangup() -> None:
        # Serf and Consul reload on SIGHUP (keys, tags, log level: runtime/reload.py).
        from covey.runtime.reload import reload_agent

        if agent.ready:
            notify("RELOADING=1")
            reload_agent(agent)
            notify("READY=1")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)

    async def announce() -> None:
        await agent.wait_ready()
        notify(f"READY=1\nSTATUS=serving as {agent.config.name} in {agent.config.cluster}")

    ready = asyncio.ensure_future(announce())
    try:
        await agent.run()
    except asyncio.CancelledError:
        if len(received) > 1:
            return EXIT_FORCED
        raise
    finally:
        ready.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return agent.exit_code


def run_agent(config: AgentConfig) -> int:
    """Build and run an agent in a fresh event loop (the ``covey agent`` command).

    Raises:
        ConfigError: a setting is wrong (nothing was bound).
        OSError: a socket could not be bound (everything bound so far was closed).
    """
    setup_logging(config.log_level, config.name, config.log_format)

    async def main() -> int:
        agent = Agent(config)  # every setting checked: now the warnings, if any
        if config.key_file is not None and (mode := exposed_mode(config.key_file)) is not None:
            log.warning(
                "key file %s is readable by others (mode %o): chmod 600 it", config.key_file, mode
            )
        return await serve(agent)

    return asyncio.run(main())
