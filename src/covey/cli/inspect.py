"""Inspecting and steering a running agent: members, info, tags, leave, monitor."""

import json
import sys
from typing import Annotated

import typer

from covey.cli import queries
from covey.cli.options import HttpOpt, JsonOpt, Target, _fail, agent_command, app, console


@agent_command(app)
def members(
    http: HttpOpt = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            "--status",
            help="Only members in this state (alive, suspect, failed, left).",
            show_default=False,
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            help="Only members whose tag KEY matches the regular expression VALUE "
            "(KEY=VALUE, anchored; repeatable: all must match), as serf members -tag.",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """List the members a running agent knows."""
    queries.members(target, http=http, state=state, tag=tag, json_=json_)


@agent_command(app)
def info(
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Show a running agent's own record, traffic counters and dropped frames per reason."""
    queries.info(target, json_=json_)


@agent_command(app)
def tags(
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE to set; repeatable.", show_default=False),
    ] = None,
    delete: Annotated[
        list[str] | None,
        typer.Option("--delete", help="KEY to delete; repeatable.", show_default=False),
    ] = None,
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Change a running agent's tags (the change is gossiped to every member)."""
    queries.tags(target, set_=set_, delete=delete, json_=json_)


@agent_command(app)
def leave(
    *,
    target: Target,
) -> None:
    """Make a running agent leave the cluster gracefully and stop."""
    queries.leave(target)


@agent_command(app)
def monitor(
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Stream a running agent's events (joins, failures, leaves, traces) until Ctrl-C."""
    from covey.runtime.control.client import ClientError

    client = target.client()
    try:
        for event in client.monitor():
            if json_:
                sys.stdout.write(json.dumps(event, sort_keys=True) + "\n")
                sys.stdout.flush()
            else:
                from covey.cli.render import event_line

                console.print(event_line(event), highlight=False)
    except ClientError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
