"""``covey keys``: rotate the cluster's encryption keys on every member at once (Serf's
``serf keys``).

    covey keys list [--json]          every key, with how many members hold it (and seal with it)
    covey keys install KEY            every member adds KEY (opens with it, does not seal yet)
    covey keys use KEY                every member seals with KEY from now on
    covey keys remove KEY             every member drops KEY (refused for the primary key)
    covey keys local [--json]         this member's keys only (no cluster round)

Each cluster-wide command prints one line per member and ``N of M members``; it exits 1
when a member failed or did not answer, 2 when the key is malformed or the operation is
refused here first (removing this member's primary key, using a key it does not hold).
A key may begin with ``-`` (url-safe base64): put ``--`` before it
(``covey keys use -- -OAg...=``). The keys are shown in full: they come over the local
control socket (or ``--rpc``, sealed), never over HTTP. The rotation procedure is in
docs/operations.md.
"""

from typing import Annotated, Any

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

keys_app = typer.Typer(help="Rotate the cluster's keys on every member.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="A Fernet key (44 characters).")]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for the members' answers.")]


def _key(text: str) -> str:
    from covey.core.crypto.keyring import KeyError_, check_key

    try:
        return check_key(text).decode()
    except KeyError_ as exc:
        raise _fail(f"key: {exc}", EXIT_CONFIG) from None


def _timeout(timeout: float) -> float:
    if not 0 < timeout <= 300:
        raise _fail("timeout: must be in (0, 300]", EXIT_CONFIG)
    return timeout


def _run(target: Target, op: str, timeout: float, **args: object) -> Any:
    from covey.runtime.control.client import ClientError

    client = target.client()
    client.timeout = timeout + 5.0
    try:
        return client.request(f"keys_{op}", timeout=timeout, **args)
    except ClientError as exc:
        raise _fail(str(exc)) from None


def _report(result: Any, what: str, json_: bool) -> None:
    """Per-member lines and the ``N of M`` line; exit 1 unless every member succeeded."""
    if json_:
        _print_json(result)
    else:
        for n, r in result["results"].items():
            _plain(f"{n:<20} {'ok    ' if r['ok'] else 'FAILED'} {r['result']}")
        for n in result["missing"]:
            _plain(f"{n:<20} no answer")
        _plain(f"{what} on {result['ok']} of {result['total']} members")
    raise typer.Exit(0 if result["ok"] == result["total"] else 1)


def _local(target: Target) -> list[str]:
    keys: list[str] = target.request("keys_local")["keys"]
    return keys


@agent_command(keys_app, "install")
def install(
    key: KeyArg, timeout: TimeoutOpt = 10.0, json_: JsonOpt = False, *, target: Target
) -> None:
    """Every member adds KEY to its keyring (it opens frames; the primary still seals)."""
    key = _key(key)
    _report(_run(target, "install", _timeout(timeout), key=key), f"installed {_fp(key)}", json_)


@agent_command(keys_app, "use")
def use(key: KeyArg, timeout: TimeoutOpt = 10.0, json_: JsonOpt = False, *, target: Target) -> None:
    """Every member seals with KEY from now on (install it everywhere first)."""
    key = _key(key)
    if key not in _local(target):
        raise _fail(
            f"key {_fp(key)} is not installed here: covey keys install it first", EXIT_CONFIG
        )
    _report(_run(target, "use", _timeout(timeout), key=key), f"in use {_fp(key)}", json_)


@agent_command(keys_app, "remove")
def remove(
    key: KeyArg, timeout: TimeoutOpt = 10.0, json_: JsonOpt = False, *, target: Target
) -> None:
    """Every member drops KEY. Refused for the primary key: use another one first."""
    key = _key(key)
    local = _local(target)
    if local and local[0] == key:
        raise _fail(f"key {_fp(key)} is the primary key: covey keys use another first", EXIT_CONFIG)
    _report(_run(target, "remove", _timeout(timeout), key=key), f"removed {_fp(key)}", json_)


@agent_command(keys_app, "list")
def list_cmd(timeout: TimeoutOpt = 10.0, json_: JsonOpt = False, *, target: Target) -> None:
    """Every key of every live member, with how many hold it and how many seal with it."""
    result = _run(target, "list", _timeout(timeout))
    if json_:
        _print_json(result)
    else:
        total = result["total"]
        for key, e in result["keys"].items():
            role = f"primary on {e['primary']}" if e["primary"] else "not primary"
            _plain(f"{key}  {e['fingerprint']}  {e['members']}/{total} members  {role}")
        for n, r in result["results"].items():
            if not r["ok"]:
                _plain(f"{n:<20} FAILED {r['result']}")
        for n in result["missing"]:
            _plain(f"{n:<20} no answer")
        _plain(f"listed by {result['ok']} of {total} members")
    raise typer.Exit(0 if result["ok"] == result["total"] else 1)


@agent_command(keys_app, "local")
def local(json_: JsonOpt = False, *, target: Target) -> None:
    """This member's keys (primary first), without asking the others."""
    result = target.request("keys_local")
    if json_:
        _print_json(result)
        return
    for i, key in enumerate(result["keys"]):
        _plain(f"{key}  {_fp(key)}  {'primary' if i == 0 else ''}".rstrip())
    if not result["stored"]:
        _plain("(no data directory: changes last until the agent restarts)")


def _fp(key: str) -> str:
    from covey.core.crypto.keyring import fingerprint

    return fingerprint(key.encode())
