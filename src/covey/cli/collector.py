"""``covey collector``: a trace collector outside the cluster (issue 12), and its questions.

    covey collector --key-file K [--bind HOST:PORT] [--data DIR]   start one, print HOST:PORT
    covey collector members ADDR --key-file K [--json]             who is in, in what state
    covey collector stable ADDR --key-file K [--for 5s] [--timeout 60s] [--json]
    covey collector timeline ADDR --key-file K [--node N] [--since T] [--limit N] [--json]
    covey collector stats ADDR --key-file K [--json]               counters, pid, data dir
    covey collector stop ADDR --key-file K [--json]                flush, close, exit

Every request is sealed with the key file (default ``$COVEY_KEY_FILE``): without the key
nobody reads the collector or stops it. Bad options exit 2; an unreachable or refusing
collector, or a ``stable`` that timed out, exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from covey.cli.options import EXIT_CONFIG, JsonOpt, _fail, _plain, _print_json, app

if TYPE_CHECKING:
    from covey.runtime.collector.client import CollectorClient

collector_app = typer.Typer(
    help="A trace collector outside the cluster. Without a command: start one in the "
    "background and print its HOST:PORT once it listens (exit 2 and one line if it cannot). "
    "The commands ask it who is in the cluster, whether it is stable, what happened, and "
    "stop it; each is sealed with --key-file.",
    rich_markup_mode="rich",
)
app.add_typer(collector_app, name="collector")

KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="Cluster key file (default $COVEY_KEY_FILE): seals every line to the collector.",
        show_default=False,
    ),
]
AddrArg = Annotated[str, typer.Argument(metavar="ADDR", help="HOST:PORT the collector printed.")]
#: Seconds ``stop`` waits for the collector's port to close.
STOP_WAIT = 10.0


def _keys(ctx: typer.Context, key_file: Path | None) -> tuple[bytes, ...]:
    from covey.runtime.config.model import ConfigError
    from covey.runtime.config.sources import load_keys

    if key_file is None and isinstance(ctx.obj, dict):
        key_file = ctx.obj.get("key_file")  # given before the subcommand's name
    if key_file is None and os.environ.get("COVEY_KEY_FILE"):
        key_file = Path(os.environ["COVEY_KEY_FILE"])
    if key_file is None:
        raise _fail("config error: key_file: required (--key-file K or $COVEY_KEY_FILE)", 2)
    try:
        return load_keys(key_file)
    except ConfigError as exc:
        raise _fail(f"config error: {exc}", EXIT_CONFIG) from None


def _client(ctx: typer.Context, addr: str, key_file: Path | None) -> CollectorClient:
    from covey.runtime.collector.client import CollectorClient

    keys = _keys(ctx, key_file)
    try:
        return CollectorClient(addr, keys)
    except ValueError as exc:
        raise _fail(f"config error: {exc}", EXIT_CONFIG) from None


def _ask(client: CollectorClient, op: str, **args: object) -> Any:
    from covey.runtime.collector.client import CollectorError

    try:
        return client.request(op, **args)
    except CollectorError as exc:
        raise _fail(str(exc)) from None


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


@collector_app.callback(invoke_without_command=True)
def collector(
    ctx: typer.Context,
    key_file: KeyOpt = None,
    bind: Annotated[
        str, typer.Option("--bind", help="HOST:PORT to listen on; port 0: any free port.")
    ] = "127.0.0.1:0",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Directory of the SQLite store and the log (default: a new temporary "
            "directory, named on stderr).",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Start a collector in the background; print its HOST:PORT once it listens.

    Exit 0 once it listens; exit 2 with one line when it cannot (bad key file, address in
    use, data directory unusable or held by another collector).
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"key_file": key_file}
        return
    from covey.runtime.collector.daemon import StartError, parse_bind, start

    keys = _keys(ctx, key_file)
    try:
        address = parse_bind(bind)
    except ValueError as exc:
        raise _fail(f"config error: {exc}", EXIT_CONFIG) from None
    temporary = data is None
    import shutil  # here, not at import: `covey --help` loads every command module
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="covey-collector-")) if data is None else data
    try:
        started = start(keys, address, where)
    except StartError as exc:
        if temporary:
            shutil.rmtree(where, ignore_errors=True)
        raise _fail(f"collector: {exc}", EXIT_CONFIG) from None
    if json_:
        _print_json({"address": started.address, "pid": started.pid, "data": str(started.data)})
    else:
        _plain(started.address)
    if temporary:
        sys.stderr.write(f"covey: collector: data in {started.data} (pid {started.pid})\n")


@collector_app.command()
def members(
    ctx: typer.Context, addr: AddrArg, key_file: KeyOpt = None, json_: JsonOpt = False
) -> None:
    """Who is in the cluster, and in what state, as the agents reported it."""
    result = _ask(_client(ctx, addr, key_file), "members")
    if json_:
        _print_json(result)
        return
    _plain(f"{'name':<20} {'state':<8} {'inc':>5}  {'since':<23}  reported by")
    for m in result:
        inc = "-" if m["incarnation"] is None else str(m["incarnation"])
        by = ", ".join(m["reported_by"])
        _plain(f"{m['name']:<20} {m['state']:<8} {inc:>5}  {_when(m['since']):<23}  {by}")


@collector_app.command()
def stable(
    ctx: typer.Context,
    addr: AddrArg,
    key_file: KeyOpt = None,
    for_: Annotated[
        str, typer.Option("--for", help="How long one leader and one size must have held.")
    ] = "5s",
    timeout: Annotated[
        str, typer.Option("--timeout", help="Give up (exit 1) after this long.")
    ] = "60s",
    json_: JsonOpt = False,
) -> None:
    """Wait until one leader and one member count have held for --for; exit 1 at --timeout."""
    from covey.cli.deliver import parse_seconds

    window = parse_seconds(for_, "for")
    limit = parse_seconds(timeout, "timeout")
    client = _client(ctx, addr, key_file)
    deadline = time.monotonic() + limit
    while True:  # bounded by the deadline: one question every 0.5 s at most
        result = _ask(client, "stable", **{"for": window})
        left = deadline - time.monotonic()
        if result["stable"] or left <= 0:
            break
        time.sleep(min(0.5, left))
    if json_:
        _print_json(result)
    if not result["stable"]:
        raise _fail(f"collector: not stable after {limit:g} s: {result['why']}")
    if not json_:
        _plain(f"stable: leader {result['leader']}, {result['size']} members, "
               f"unchanged since {_when(result['since'])}")  # fmt: skip


def _since(text: str | None) -> float | None:
    """Unix seconds as given, or a duration (``10m``) meaning that long ago."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        from covey.cli.deliver import parse_seconds

        return time.time() - parse_seconds(text, "since")
    if not value >= 0:
        raise _fail(f"since: {text!r} must be Unix seconds ≥ 0 or a duration (10m)", 2)
    return value


def _line(rec: dict[str, Any]) -> str:
    parts = [_when(rec["at"] + rec["offset"]), f"{rec['node']:<14}", f"{rec['op']:<13}"]
    parts.append(f"{rec['subject'] or '-':<14}")
    parts.append(f"n={rec['n']} leader={rec['leader'] or '-'} term={rec['term']}")
    parts.append(f"members={rec['members']}")
    if rec["detail"]:
        parts.append(rec["detail"])
    if rec["cause"]:
        parts.append(f"[{rec['cause']}]")
    return " ".join(parts)


@collector_app.command()
def timeline(
    ctx: typer.Context,
    addr: AddrArg,
    key_file: KeyOpt = None,
    node: Annotated[
        str | None, typer.Option("--node", help="Only records from or about this node.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="From this time on: Unix seconds, or a duration ago (10m)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many records.")] = 10_000,
    json_: Annotated[
        bool, typer.Option("--json", help="JSON lines: one record per line, with its offset.")
    ] = False,
) -> None:
    """Every node's records merged into one timeline, in corrected time order."""
    if not 1 <= limit <= 100_000:
        raise _fail("limit: must be 1..100000", EXIT_CONFIG)
    args: dict[str, object] = {"limit": limit}
    if node is not None:
        args["node"] = node
    start = _since(since)
    if start is not None:
        args["since"] = start
    records = _ask(_client(ctx, addr, key_file), "timeline", **args)
    for rec in records:
        if json_:
            sys.stdout.write(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
        else:
            _plain(_line(rec))
    if len(records) >= limit:
        sys.stderr.write(f"covey: collector: the first {limit} records only (--limit)\n")


@collector_app.command()
def stats(
    ctx: typer.Context, addr: AddrArg, key_file: KeyOpt = None, json_: JsonOpt = False
) -> None:
    """The collector's counters, pid, data directory, and the agents it heard from."""
    result = _ask(_client(ctx, addr, key_file), "stats")
    if json_:
        _print_json(result)
        return
    for key, value in result.items():
        if key != "senders":
            _plain(f"{key:<20} {value}")
    for s in result["senders"]:
        _plain(f"  {s['node']:<20} offset {s['offset']:+.3f} s  lost {s['lost']}  "
               f"last heard {_when(s['last_seen'])}")  # fmt: skip


def _closed(client: CollectorClient) -> bool:
    import socket

    try:
        with socket.create_connection(client.address, timeout=1.0):
            return False
    except OSError:
        return True


@collector_app.command()
def stop(
    ctx: typer.Context, addr: AddrArg, key_file: KeyOpt = None, json_: JsonOpt = False
) -> None:
    """Stop the collector: it flushes its store, closes its socket and exits."""
    client = _client(ctx, addr, key_file)
    _ask(client, "stop")
    deadline = time.monotonic() + STOP_WAIT
    while not _closed(client):  # bounded by the deadline
        if time.monotonic() >= deadline:
            raise _fail(f"collector: asked to stop, but {client.where} still accepts connections")
        time.sleep(0.05)
    if json_:
        _print_json({"stopping": True, "closed": True})
    else:
        _plain(f"stopped the collector at {client.where}")
