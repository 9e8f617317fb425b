"""Commands that steer a running agent as Serf's do: ``covey join``, ``covey reload``,
``covey force-leave``, ``covey rtt``."""

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


@agent_command(app, "force-leave")
def force_leave(
    node: Annotated[str, typer.Argument(metavar="NODE", help="The failed member's name or id.")],
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Mark a failed member left, cluster-wide, as Serf's force-leave: nobody looks for it
    any more and it is forgotten after the left retention. Exit 1 if it is not failed (a
    member alive behind a partition refutes the verdict when the partition heals)."""
    result = target.request("force_leave", node=node)
    if json_:
        _print_json(result)
    else:
        _plain(f"{result['name']} ({result['id']}) marked left")


@agent_command(app)
def rtt(
    node: Annotated[str, typer.Argument(metavar="NODE", help="A member's name or id.")],
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Round-trip time from the agent to NODE, as the agent's own direct probes measured
    it (smoothed as TCP's SRTT, with the last and lowest samples). Exit 1 before the
    first sample: each member is probed once per round of the probe order."""
    result = target.request("rtt", node=node)
    if json_:
        _print_json(result)
        return
    _plain(
        f"{result['name']}: {result['smoothed_ms']:.3f} ms smoothed, last "
        f"{result['last_ms']:.3f} ms, min {result['min_ms']:.3f} ms "
        f"({result['samples']} samples)"
    )
