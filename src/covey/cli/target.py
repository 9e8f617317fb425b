"""The running agent a command talks to, and how a command prints and fails — without Typer.

Both the Typer commands (:mod:`covey.cli.options` re-exports these) and the quick path of
the common commands (:mod:`covey.cli.quick`) use this module, so it imports neither Typer
nor rich: a failure is a :class:`CommandExit` (the Typer side turns it into
``typer.Exit``), and rich's console is made on first use.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

EXIT_CONFIG = 2
EXIT_UNREACHABLE = 1


class CommandExit(Exception):
    """End the command with exit status ``code`` (its message is already on stderr)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def fail(message: str, code: int = EXIT_UNREACHABLE) -> CommandExit:
    """Write ``covey: message`` as one line on stderr; the exception to raise."""
    # Plain write: one line, never wrapped to the terminal width.
    sys.stderr.write(f"covey: {message}\n")
    return CommandExit(code)


class _LazyConsole:
    """rich's ``Console``, imported when first printed to (rich costs ~0.1 s to import;
    ``--json`` output and plain lines never need it)."""

    def __init__(self) -> None:
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console()
        return getattr(self._console, name)


#: The CLI's rich console (made on first use).
console: Any = _LazyConsole()


def plain(text: str) -> None:
    """Print text as is: no markup, no highlighting, no wrapping."""
    sys.stdout.write(text + "\n")


def print_json(obj: object) -> None:
    """Print ``obj`` as indented JSON with sorted keys."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def connect_client(
    control: Path | None,
    name: str | None,
    rpc: str | None,
    key_file: Path | None,
    data_dir: Path | None = None,
    config: Path | None = None,
) -> Any:
    """A connected control client; a one-line error and :class:`CommandExit` if none."""
    from covey.runtime.config.errors import ConfigError
    from covey.runtime.control.client import ClientError, connect

    try:
        return connect(
            control=control,
            name=name,
            rpc=rpc,
            key_file=key_file,
            environ=os.environ,
            data_dir=data_dir,
            config=config,
        )
    except ConfigError as exc:
        raise fail(f"config error: {exc}", EXIT_CONFIG) from None
    except ClientError as exc:
        raise fail(str(exc)) from None


def send_request(client: Any, op: str, **args: object) -> Any:
    """One control request on ``client``; its result, or a one-line error."""
    from covey.runtime.control.client import ClientError

    try:
        return client.request(op, **args)
    except ClientError as exc:
        raise fail(str(exc)) from None


def http_query(url: str, path: str) -> Any:
    """``GET path`` on an agent's HTTP API at ``url``; the decoded JSON, or a one-line error."""
    from covey.runtime.control.client import ClientError, http_get

    try:
        return http_get(url, path)
    except ClientError as exc:
        raise fail(str(exc)) from None


class Target:
    """The running agent a command talks to (``--control``, ``--data-dir``, ``--config``,
    ``--name``, ``--rpc``, ``--key-file``).

    A plain class rather than a dataclass: ``dataclasses`` imports ``inspect``, about
    15 ms of every quick command's start.
    """

    __slots__ = ("config", "control", "data_dir", "key_file", "name", "rpc")

    def __init__(
        self,
        control: Path | None,
        data_dir: Path | None,
        config: Path | None,
        name: str | None,
        rpc: str | None,
        key_file: Path | None,
    ) -> None:
        self.control = control
        self.data_dir = data_dir
        self.config = config
        self.name = name
        self.rpc = rpc
        self.key_file = key_file

    def client(self) -> Any:
        """A connected control client; a clear one-line error and exit status if none."""
        return connect_client(
            self.control, self.name, self.rpc, self.key_file, self.data_dir, self.config
        )

    def request(self, op: str, **args: object) -> Any:
        """One control request; its result."""
        return send_request(self.client(), op, **args)

    def query(self, http: str | None, path: str, op: str, **args: object) -> Any:
        """``GET path`` on the agent's HTTP API when ``http`` is given, else ``op``."""
        if http is None:
            return send_request(self.client(), op, **args)
        return http_query(http, path)
