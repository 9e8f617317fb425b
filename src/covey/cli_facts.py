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

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from covey.cli import (
    EXIT_CONFIG,
    ControlOpt,
    HttpOpt,
    JsonOpt,
    KeyFileOpt,
    NameOpt,
    RpcOpt,
    _client,
    _fail,
    _plain,
    _print_json,
    _query,
    _request,
    app,
    console,
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


@app.command()
def facts(
    node: Annotated[str | None, typer.Argument(help="Only this node (name or id).")] = None,
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
    http: HttpOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Show the facts of every live node (or of NODE)."""
    path = "/v1/facts" + (f"?node={node}" if node else "")
    result = _query(http, path, control, name, rpc, key_file, "facts", node=node)
    if json_:
        _print_json(result)
        return
    table = Table("node", "key", "value")
    for n, kv in sorted(result.items()):
        for k, v in sorted(kv.items()):
            table.add_row(n, k, v)
    console.print(table)


@app.command("set")
def set_fact(
    key: Annotated[str, typer.Argument(help="Fact key (letters, digits, _ . : @ + = -).")],
    value: Annotated[str, typer.Argument(help="Fact value (text, at most 1024 octets).")],
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Publish a fact of this node (spread to every node)."""
    from covey.core.facts import VERSION_KEY
    from covey.core.shared_msgs import check_key, check_value
    from covey.core.versions import parse_version

    _check(check_key, key)
    _check(check_value, value)
    if key == VERSION_KEY:
        _check(parse_version, value)
    result = _request(_client(control, name, rpc, key_file), "fact_set", key=key, value=value)
    _plain(f"{key}={value}" + ("" if result["changed"] else " (unchanged)"))


@app.command("unset")
def unset_fact(
    key: Annotated[str, typer.Argument(help="Fact key to withdraw.")],
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Withdraw a fact of this node."""
    result = _request(_client(control, name, rpc, key_file), "fact_delete", key=key)
    _plain(f"{key} " + ("deleted" if result["changed"] else "was not set"))


@app.command()
def versions(
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
    http: HttpOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Show this node's version, every live node's, and the lowest."""
    result = _query(http, "/v1/versions", control, name, rpc, key_file, "versions")
    if json_:
        _print_json(result)
        return
    _plain(f"local_version  {result['local'] or '-'}")
    _plain(f"lowest_version {result['lowest'] or '- (unknown)'}")
    for n, v in result["nodes"].items():
        _plain(f"  {n:<20} {v or '-'}")


@app.command()
def action(
    action_name: Annotated[str, typer.Argument(metavar="NAME", help="Action name.")],
    payload: Annotated[str, typer.Argument(help="Payload text.")] = "",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the outcomes.")] = 10.0,
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run action NAME on every live node (once each); show who applied it and how.

    Exit status 3 when some node failed or did not answer in time.
    """
    from covey.core.shared_msgs import check_key, check_value
    from covey.runtime.client import ClientError

    _check(check_key, action_name, "name")
    _check(check_value, payload, "payload")
    if not 0 < timeout <= 300:
        raise _fail("timeout: must be in (0, 300]", EXIT_CONFIG)
    client = _client(control, name, rpc, key_file)
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
    raise typer.Exit(3 if bad else 0)


def _show(result: Any, json_: bool) -> None:
    if json_:
        _print_json(result)
    elif result is None:
        _plain("(not set)")
    else:
        _plain(" ".join(f"{k}={v}" for k, v in sorted(result.items())))


@registry_app.command("set")
def registry_set(
    ip: str,
    port: int,
    key: str,
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """SetRegistry(ip, port, key) for the whole cluster."""
    from covey.core.cluster_settings import encode_endpoint

    _check(encode_endpoint, ip, port, key)
    client = _client(control, name, rpc, key_file)
    _show(_request(client, "registry_set", ip=ip, port=port, key=key), False)


@registry_app.command("get")
def registry_get(
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """GetRegistry(): ip, port and key, as set anywhere in the cluster."""
    _show(_request(_client(control, name, rpc, key_file), "registry_get"), json_)


@steward_app.command("set")
def steward_set(
    ip: str,
    port: int,
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """SetSteward(ip, port) for the whole cluster."""
    from covey.core.cluster_settings import encode_endpoint

    _check(encode_endpoint, ip, port)
    _show(_request(_client(control, name, rpc, key_file), "steward_set", ip=ip, port=port), False)


@steward_app.command("get")
def steward_get(
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """GetSteward(): ip and port, as set anywhere in the cluster."""
    _show(_request(_client(control, name, rpc, key_file), "steward_get"), json_)


@setting_app.command("set")
def setting_set(
    setting: Annotated[str, typer.Argument(metavar="NAME")],
    value: str,
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Write a cluster-wide setting."""
    from covey.core.shared_msgs import check_key, check_value

    _check(check_key, setting, "name")
    _check(check_value, value)
    r = _request(_client(control, name, rpc, key_file), "setting_set", name=setting, value=value)
    _plain(f"{r['name']}={r['value']}")


@setting_app.command("delete")
def setting_delete(
    setting: Annotated[str, typer.Argument(metavar="NAME")],
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Delete a cluster-wide setting."""
    _request(_client(control, name, rpc, key_file), "setting_set", name=setting, value=None)
    _plain(f"{setting} deleted")


@setting_app.command("get")
def setting_get(
    setting: Annotated[str, typer.Argument(metavar="NAME")],
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Read a cluster-wide setting."""
    r = _request(_client(control, name, rpc, key_file), "setting_get", name=setting)
    if json_:
        _print_json(r)
    elif r["value"] is None:
        raise _fail(f"setting {setting!r} is not set")
    else:
        _plain(r["value"])


@setting_app.command("list")
def setting_list(
    control: ControlOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
    http: HttpOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Every cluster-wide setting."""
    result = _query(http, "/v1/settings", control, name, rpc, key_file, "settings")
    if json_:
        _print_json(result)
    else:
        for k, v in result.items():
            _plain(f"{k}={v}")
