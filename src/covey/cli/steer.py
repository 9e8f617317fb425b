"""Commands that steer a running agent as Serf's do: ``covey join``, ``covey reload``."""

from __future__ import annotations

from typing import Annotated

import typer

from covey.cli.options import (
    EXIT_CONFIG,
    JsonOpt,
    Target,
    _fail,
    _plain,
    _print_json,
    agent_command,
    app,
)


@agent_command(app)
def join(
    addresses: Annotated[
        list[str], typer.Argument(metavar="HOST:PORT...", help="Members to contact.")
    ],
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Make a running agent contact more members (push-pull), as --join does at start;
    retried with back-off until one answers."""
    from covey.runtime.config.model import ConfigError
    from covey.runtime.config.sources import parse_address

    try:
        for text in addresses:
            parse_address("address", text)
    except ConfigError as exc:
        raise _fail(f"config error: {exc}", EXIT_CONFIG) from None
    result = target.request("join", addresses=list(addresses))
    if json_:
        _print_json(result)
    else:
        _plain("contacting " + ", ".join(result["contacting"]))


@agent_command(app)
def reload(
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Make a running agent reload its settings, as SIGHUP does (keys, tags, log level,
    HTTP token); prints what it reloaded and what needs a restart."""
    result = target.request("reload")
    if json_:
        _print_json(result)
        return
    _plain("reloaded: " + (", ".join(result["reloaded"]) or "nothing (no change)"))
    if result["needs_restart"]:
        _plain("need a restart: " + ", ".join(result["needs_restart"]))
