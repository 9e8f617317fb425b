"""Inspecting and steering a running agent: members, info, tags, leave, monitor."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from covey.cli.options import (
    EXIT_CONFIG,
    HttpOpt,
    JsonOpt,
    Target,
    _fail,
    _print_json,
    agent_command,
    app,
    console,
)
from covey.cli.render import event_line, info_table, members_table


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
    import re

    states = ("alive", "suspect", "failed", "left")
    if state is not None and state not in states:
        raise _fail(f"state: {state!r} is not one of {', '.join(states)}", EXIT_CONFIG)
    wanted: list[tuple[str, re.Pattern[str]]] = []
    for item in tag or []:
        key, sep, pattern = item.partition("=")
        if not sep or not key:
            raise _fail(f"tag: {item!r} is not KEY=REGEX", EXIT_CONFIG)
        try:
            wanted.append((key, re.compile(pattern)))
        except re.error as exc:
            raise _fail(
                f"tag: {pattern!r} is not a regular expression: {exc}", EXIT_CONFIG
            ) from None
    result = target.query(http, "/v1/members", "members")
    if state:
        result = [m for m in result if m["state"] == state]
    for key, rx in wanted:
        result = [m for m in result if rx.fullmatch(m["tags"].get(key, "")) and key in m["tags"]]
    if json_:
        _print_json(result)
    else:
        console.print(members_table(result))


@agent_command(app)
def info(
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Show a running agent's own record, traffic counters and dropped frames per reason."""
    result = target.request("info")
    if json_:
        _print_json(result)
        return
    console.print(info_table(result))


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
    from covey.runtime.config.model import ConfigError
    from covey.runtime.config.sources import parse_tags

    try:
        to_set = parse_tags("set", set_ or [])
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    from covey.runtime.control.client import ClientError

    try:
        result = target.client().request("tags", set=to_set, delete=list(delete or []))
    except ClientError as exc:
        # Tags the agent refuses (too large) are bad input like a malformed KEY=VALUE: 2.
        bad_input = str(exc).startswith("tags:")
        raise _fail(str(exc), EXIT_CONFIG if bad_input else 1) from None
    if json_:
        _print_json(result["tags"])
    else:
        for k, v in sorted(result["tags"].items()):
            console.print(f"{k}={v}", markup=False, highlight=False)


@agent_command(app)
def leave(
    *,
    target: Target,
) -> None:
    """Make a running agent leave the cluster gracefully and stop."""
    target.request("leave")
    console.print("leaving")


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
                console.print(event_line(event), highlight=False)
    except ClientError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
