"""``covey`` commands of the shared state: facts, versions, actions, settings.

    covey facts [NODE] [--json] [--http URL]     every live node's facts (or one node's)
    covey set KEY VALUE / covey unset KEY        publish / withdraw a fact of this node
    covey versions [--json] [--http URL]         local, per node, lowest
    covey action NAME [PAYLOAD] [--timeout S]    run NAME on every live node, show outcomes
    covey registry set IP PORT KEY | get         seed 003's cluster-wide registry
    covey steward set IP PORT | get              seed 003's cluster-wide steward
    covey setting set NAME VALUE | get NAME | list | delete NAME

They reach a running agent like ``covey members`` (``--control``, ``--name``, ``--rpc``).
Values the agent would refuse are refused here first, with exit status 2.
"""

from typing import Annotated, Any

import typer

from covey.cli import queries
from covey.cli.options import (
    EXIT_CONFIG,
    HttpOpt,
    JsonOpt,
    Target,
    _fail,
    _plain,
    _print_json,
    _request,
    agent_command,
    app,
)

registry_app = typer.Typer(help="Cluster-wide registry address (seed 003).", no_args_is_help=True)
steward_app = typer.Typer(help="Cluster-wide steward address (seed 003).", no_args_is_help=True)
setting_app = typer.Typer(help="Cluster-wide settings (last writer wins).", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
app.add_typer(steward_app, name="steward")
app.add_typer(setting_app, name="setting")


def _check(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except ValueError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None


@agent_command(app)
def facts(
    node: Annotated[str | None, typer.Argument(help="Only this node (name or id).")] = None,
    http: HttpOpt = None,
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Show the facts of every live node (or of NODE)."""
    queries.facts(target, node=node, http=http, json_=json_)


@agent_command(app, "set")
def set_fact(
    key: Annotated[str, typer.Argument(help="Fact key (letters, digits, _ . : @ + = -).")],
    value: Annotated[str, typer.Argument(help="Fact value (text, at most 1024 octets).")],
    *,
    target: Target,
) -> None:
    """Publish a fact of this node (spread to every node)."""
    queries.set_fact(target, key=key, value=value)


@agent_command(app, "unset")
def unset_fact(
    key: Annotated[str, typer.Argument(help="Fact key to withdraw.")],
    *,
    target: Target,
) -> None:
    """Withdraw a fact of this node."""
    result = target.request("fact_delete", key=key)
    _plain(f"{key} " + ("deleted" if result["changed"] else "was not set"))


@agent_command(app)
def versions(
    http: HttpOpt = None,
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Show this node's version, every live node's, and the lowest."""
    queries.versions(target, http=http, json_=json_)


@agent_command(app)
def action(
    action_name: Annotated[str, typer.Argument(metavar="NAME", help="Action name.")],
    payload: Annotated[str, typer.Argument(help="Payload text.")] = "",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the outcomes.")] = 10.0,
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Run action NAME on every live node (once each); show who applied it and how.

    Exit status 1 when some node failed or did not answer in time.
    """
    from covey.core.state.messages import check_key, check_value
    from covey.runtime.control.client import ClientError

    _check(check_key, action_name, "name")
    _check(check_value, payload, "payload")
    if not 0 < timeout <= 300:
        raise _fail("timeout: must be in (0, 300]", EXIT_CONFIG)
    client = target.client()
    client.timeout = timeout + 5.0
    try:
        result = client.request("action", name=action_name, payload=payload, timeout=timeout)
    except ClientError as exc:
        raise _fail(str(exc)) from None
    if json_:
        _print_json(result)
    else:
        for n, r in result["results"].items():
            _plain(f"{n:<20} {'ok ' if r['ok'] else 'FAILED'} {r['result']}")
        for n in result["missing"]:
            _plain(f"{n:<20} no answer")
    bad = result["missing"] or any(not r["ok"] for r in result["results"].values())
    raise typer.Exit(1 if bad else 0)


def _show(result: Any, json_: bool) -> None:
    if json_:
        _print_json(result)
    elif result is None:
        _plain("(not set)")
    else:
        _plain(" ".join(f"{k}={v}" for k, v in sorted(result.items())))


@agent_command(registry_app, "set")
def registry_set(
    ip: str,
    port: int,
    key: str,
    *,
    target: Target,
) -> None:
    """SetRegistry(ip, port, key) for the whole cluster."""
    from covey.core.state.settings import encode_endpoint

    _check(encode_endpoint, ip, port, key)
    client = target.client()
    _show(_request(client, "registry_set", ip=ip, port=port, key=key), False)


@agent_command(registry_app, "get")
def registry_get(
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """GetRegistry(): ip, port and key, as set anywhere in the cluster."""
    _show(target.request("registry_get"), json_)


@agent_command(steward_app, "set")
def steward_set(
    ip: str,
    port: int,
    *,
    target: Target,
) -> None:
    """SetSteward(ip, port) for the whole cluster."""
    from covey.core.state.settings import encode_endpoint

    _check(encode_endpoint, ip, port)
    _show(target.request("steward_set", ip=ip, port=port), False)


@agent_command(steward_app, "get")
def steward_get(
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """GetSteward(): ip and port, as set anywhere in the cluster."""
    _show(target.request("steward_get"), json_)


@agent_command(setting_app, "set")
def setting_set(
    setting: Annotated[str, typer.Argument(metavar="NAME")],
    value: str,
    *,
    target: Target,
) -> None:
    """Write a cluster-wide setting."""
    from covey.core.state.messages import check_key, check_value

    _check(check_key, setting, "name")
    _check(check_value, value)
    r = target.request("setting_set", name=setting, value=value)
    _plain(f"{r['name']}={r['value']}")


@agent_command(setting_app, "delete")
def setting_delete(
    setting: Annotated[str, typer.Argument(metavar="NAME")],
    *,
    target: Target,
) -> None:
    """Delete a cluster-wide setting."""
    target.request("setting_set", name=setting, value=None)
    _plain(f"{setting} deleted")


@agent_command(setting_app, "get")
def setting_get(
    setting: Annotated[str, typer.Argument(metavar="NAME")],
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Read a cluster-wide setting."""
    r = target.request("setting_get", name=setting)
    if json_:
        _print_json(r)
    elif r["value"] is None:
        raise _fail(f"setting {setting!r} is not set")
    else:
        _plain(r["value"])


@agent_command(setting_app, "list")
def setting_list(
    http: HttpOpt = None,
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Every cluster-wide setting."""
    result = target.query(http, "/v1/settings", "settings")
    if json_:
        _print_json(result)
    else:
        for k, v in result.items():
            _plain(f"{k}={v}")
