"""What the common commands do — ``members``, ``info``, ``names``, ``facts``, ``versions``,
``set``, ``tags``, ``leave`` — without Typer.

The Typer commands (:mod:`covey.cli.inspect`, :mod:`covey.cli.election`,
:mod:`covey.cli.facts`) declare the options and the help, then call these functions; the
quick path (:mod:`covey.cli.quick`) calls the same functions when it could parse the
command line itself. So both give the same output, errors and exit statuses. rich is
imported only for the tables (output without ``--json``).
"""

from __future__ import annotations

from typing import Any

from covey.cli.target import EXIT_CONFIG, Target, console, fail, plain, print_json

MEMBER_STATES = ("alive", "suspect", "failed", "left")


def members(
    target: Target, *, http: str | None, state: str | None, tag: list[str] | None, json_: bool
) -> None:
    """List the members a running agent knows (``state``, ``tag`` filter them)."""
    import re

    if state is not None and state not in MEMBER_STATES:
        raise fail(f"state: {state!r} is not one of {', '.join(MEMBER_STATES)}", EXIT_CONFIG)
    wanted: list[tuple[str, re.Pattern[str]]] = []
    for item in tag or []:
        key, sep, pattern = item.partition("=")
        if not sep or not key:
            raise fail(f"tag: {item!r} is not KEY=REGEX", EXIT_CONFIG)
        try:
            wanted.append((key, re.compile(pattern)))
        except re.error as exc:
            raise fail(
                f"tag: {pattern!r} is not a regular expression: {exc}", EXIT_CONFIG
            ) from None
    result = target.query(http, "/v1/members", "members")
    if state:
        result = [m for m in result if m["state"] == state]
    for key, rx in wanted:
        result = [m for m in result if rx.fullmatch(m["tags"].get(key, "")) and key in m["tags"]]
    if json_:
        print_json(result)
    else:
        from covey.cli.render import members_table

        console.print(members_table(result))


def info(target: Target, *, json_: bool) -> None:
    """Show a running agent's own record, counters and dropped frames per reason."""
    result = target.request("info")
    if json_:
        print_json(result)
        return
    from covey.cli.render import info_table

    console.print(info_table(result))


def tags(target: Target, *, set_: list[str] | None, delete: list[str] | None, json_: bool) -> None:
    """Change a running agent's tags; print the tags it has now."""
    from covey.runtime.config.errors import ConfigError
    from covey.runtime.config.items import parse_tags

    try:
        to_set = parse_tags("set", set_ or [])
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    from covey.runtime.control.client import ClientError

    try:
        result = target.client().request("tags", set=to_set, delete=list(delete or []))
    except ClientError as exc:
        # Tags the agent refuses (too large) are bad input like a malformed KEY=VALUE: 2.
        bad_input = str(exc).startswith("tags:")
        raise fail(str(exc), EXIT_CONFIG if bad_input else 1) from None
    if json_:
        print_json(result["tags"])
    else:
        for k, v in sorted(result["tags"].items()):
            plain(f"{k}={v}")


def leave(target: Target) -> None:
    """Make a running agent leave the cluster gracefully and stop."""
    target.request("leave")
    plain("leaving")


def names(target: Target, *, http: str | None, json_: bool) -> None:
    """Show the cluster, its leader, whether it is stable, this node, the term, the mode."""
    result = target.query(http, "/v1/names", "names")
    if json_:
        print_json(result)
        return
    stable = "stable" if result.get("stable") else "not stable"
    plain(f"cluster  {result['cluster']}")
    plain(f"leader   {result.get('leader') or '-'} ({stable})")
    plain(f"node     {result['node']} ({result.get('role', '?')})")
    plain(f"term     {result['term']}")
    if "expected_votes" in result:
        rule = result.get("expected_rule", "configured")
        plain(f"expected {result['expected_votes']} ({rule}), quorum {result.get('quorum')}")
    mode = result.get("mode", "normal")
    why = result.get("panic_reason")
    plain(f"mode     {mode}" + (f": {why}" if why else ""))
    for p in result.get("partitioned") or []:
        plain(f"partitioned (alive on the heartbeat disk, not fenced): {p}")


def facts(target: Target, *, node: str | None, http: str | None, json_: bool) -> None:
    """Show the facts of every live node (or of ``node``)."""
    path = "/v1/facts" + (f"?node={node}" if node else "")
    result = target.query(http, path, "facts", node=node)
    if node is not None and not result:
        raise fail(f"no live node {node!r} (see covey members)")
    if json_:
        print_json(result)
        return
    from rich.table import Table

    table = Table("node", "key", "value")
    for n, kv in sorted(result.items()):
        for k, v in sorted(kv.items()):
            table.add_row(n, k, v)
    console.print(table)


def _check(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except ValueError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None


def set_fact(target: Target, *, key: str, value: str) -> None:
    """Publish a fact of this node (refused here first when the agent would refuse it)."""
    from covey.core.state.messages import check_key, check_value
    from covey.core.state.versions import VERSION_KEY, parse_version

    _check(check_key, key)
    _check(check_value, value)
    if key == VERSION_KEY:
        _check(parse_version, value)
    result = target.request("fact_set", key=key, value=value)
    plain(f"{key}={value}" + ("" if result["changed"] else " (unchanged)"))


def versions(target: Target, *, http: str | None, json_: bool) -> None:
    """Show this node's version, every live node's, and the lowest."""
    result = target.query(http, "/v1/versions", "versions")
    if json_:
        print_json(result)
        return
    plain(f"local_version  {result['local'] or '-'}")
    plain(f"lowest_version {result['lowest'] or '- (unknown)'}")
    for n, v in result["nodes"].items():
        plain(f"  {n:<20} {v or '-'}")
