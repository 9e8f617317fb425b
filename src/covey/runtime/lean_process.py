"""The lean agent process.

``covey agent`` parses and validates its settings with the full CLI stack (typer, rich,
click), then replaces itself with ``python -m covey.agentd`` — same PID, same
stdout/stderr — handing over the validated :class:`AgentConfig` through an inherited
pipe. The long-running agent thus never carries the CLI's modules: it runs in about
35 MiB instead of about 49 MiB. The configuration (it holds the cluster keys) never
appears on a command line or in the environment.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import NoReturn

from covey.runtime.config.model import AgentConfig, ConfigError

#: Most octets handed over through the pipe before exec (a pipe buffer holds 64 KiB).
_PIPE_LIMIT = 60_000


def needs_ssl(config: AgentConfig) -> bool:
    """True when the agent needs the ``ssl`` module: the Redis client imports it (it can
    speak TLS), an https:// notification URL speaks it, and ``prometheus_client`` (the
    HTTP API's ``/metrics``) imports it at its own import."""
    return (
        config.scheduler is not None
        or config.http is not None
        or any(u.startswith("https:") for u in config.notify)
    )


def exec_agent(config: AgentConfig) -> NoReturn:
    """Replace this process with a lean agent process running ``config``."""
    data = pickle.dumps(config)
    if len(data) > _PIPE_LIMIT:  # cannot happen with the documented limits; stay correct
        from covey.runtime.process import run_agent

        sys.exit(run_agent(config))
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    os.set_inheritable(read_fd, True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(
        sys.executable,
        [
            sys.executable,
            "-m",
            "covey.agentd",
            "--config-fd",
            str(read_fd),
            "--name",
            config.name,
            *(["--ssl"] if needs_ssl(config) else []),
        ],
    )


def _read_config(fd: int) -> AgentConfig:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    # The pipe was written by our own parent process image just before exec: trusted.
    config = pickle.loads(b"".join(chunks))
    if not isinstance(config, AgentConfig):
        raise TypeError("the configuration pipe held no AgentConfig")
    return config


def main(argv: list[str]) -> int:
    """Entry point of ``python -m covey.agentd --config-fd FD [--name NAME]``."""
    if len(argv) < 3 or argv[1] != "--config-fd" or not argv[2].isdigit():
        sys.stderr.write("covey.agentd is started by `covey agent`, not by hand\n")
        return 2
    return run_lean(_read_config(int(argv[2])))


def run_lean(config: AgentConfig) -> int:
    """Run the agent in this process until it stops; its exit status. Errors found while
    starting (an interface, the identity file, a port taken) are one line on stderr."""
    from covey.runtime.process import run_agent

    try:
        return run_agent(config)
    except ConfigError as exc:
        sys.stderr.write(f"covey: config error: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"covey: cannot start: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
