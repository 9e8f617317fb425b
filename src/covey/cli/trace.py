"""``covey trace``: the agent's trace records (seed 003's MonInfo ring buffer).

    covey trace [--last N] [--follow] [--json]    the newest records, then (--follow) new ones
    covey trace send HOST:PORT                    the agent sends its buffer to a collector

They reach a running agent like ``covey members`` (``--control``, ``--name``, ``--rpc``).
The record fields and the collector are described in docs/traces.md.
"""

import json
import sys
import time
from typing import Annotated, Any

import typer

from covey.cli.options import (
    EXIT_CONFIG,
    ConfigOpt,
    ControlOpt,
    DataDirOpt,
    KeyFileOpt,
    NameOpt,
    RpcOpt,
    Target,
    _fail,
    _plain,
    _print_json,
    agent_command,
    app,
)

trace_app = typer.Typer(
    help="Trace records of an agent (join, probe, failed, leader...), or send them to a collector.",
    invoke_without_command=True,
)
app.add_typer(trace_app, name="trace")

#: Seconds between two looks for new records with --follow.
FOLLOW_EVERY = 0.5


def _line(r: dict[str, Any]) -> str:
    at = time.strftime("%H:%M:%S", time.localtime(r["at"])) + f".{int(r['at'] * 1000) % 1000:03d}"
    who = f" {r['subject']}" if r.get("subject") else ""
    lead = f" leader={r['leader']}/{r['term']}" if r.get("leader") else ""
    head = f"{r['seq']:>6} {at} {r['node']:<12} {r['op']:<14}{who}"
    return f"{head}  {r['detail']}{lead} n={r['members']}"


def _show(records: list[dict[str, Any]], json_: bool) -> None:
    for r in records:
        if json_:
            sys.stdout.write(json.dumps(r, sort_keys=True) + "\n")
        else:
            _plain(_line(r))
    sys.stdout.flush()


@trace_app.callback()
def trace(
    ctx: typer.Context,
    last: Annotated[int, typer.Option(help="How many of the newest records (1..10000).")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Then print new records.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="JSON lines instead of text.")] = False,
    control: ControlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    name: NameOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Print the agent's newest trace records (oldest first); --follow keeps printing."""
    if ctx.invoked_subcommand is not None:
        return
    if not 0 < last <= 10_000:
        raise _fail("last: must be in 1..10000", EXIT_CONFIG)
    target = Target(control, data_dir, config, name, rpc, key_file)
    answer = target.request("trace", last=last)
    if not answer["enabled"]:
        raise _fail("tracing is off on this agent (--trace-buffer 0)", EXIT_CONFIG)
    _show(answer["records"], json_)
    seq = answer["seq"]
    try:
        while follow:
            time.sleep(FOLLOW_EVERY)
            answer = target.request("trace", after=seq)
            _show(answer["records"], json_)
            if answer["records"]:
                seq = answer["records"][-1]["seq"]
    except KeyboardInterrupt:
        pass


@agent_command(trace_app, "send")
def send(
    address: Annotated[str, typer.Argument(metavar="HOST:PORT", help="The collector.")],
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *,
    target: Target,
) -> None:
    """Have the agent send its whole buffer to a collector (sealed with the cluster key)."""
    client = target.client()
    client.timeout = 60.0
    from covey.runtime.control.client import ClientError

    try:
        result = client.request("trace_send", address=address)
    except ClientError as exc:
        raise _fail(str(exc), EXIT_CONFIG if "address" in str(exc) else 1) from None
    if json_:
        _print_json(result)
    else:
        _plain(f"sent {result['records']} records, the collector stored {result['stored']}")
