"""``covey`` commands of the leader election (seeds 001 and 003).

    covey names [--json] [--http URL]      cluster, leader, stable, node, term, mode
    covey recover                          leave panic mode (the leader applies and spreads it)
    covey reboot                           restart this node's election after a random delay
    covey candidate NODE                   send this node's election view to NODE
    covey expect N                         lower the tracked expected votes cluster-wide
    covey disk format PATH --slots N       lay out a heartbeat disk
    covey disk dump PATH [--json]          show its slots

They reach a running agent like ``covey members`` (``--control``, ``--name``, ``--rpc``).
"""

import time
from pathlib import Path
from typing import Annotated

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
    agent_command,
    app,
)

disk_app = typer.Typer(
    help="Heartbeat disk (shared storage, one slot per node).", no_args_is_help=True
)
app.add_typer(disk_app, name="disk")


@agent_command(app)
def names(
    http: HttpOpt = None,
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Show the cluster, its leader, whether it is stable, this node, the term and the mode."""
    queries.names(target, http=http, json_=json_)


@agent_command(app)
def recover(
    *,
    target: Target,
) -> None:
    """Leave panic mode: the leader applies it and its heartbeats spread it to every node."""
    result = target.request("recover")
    _plain(str(result["result"]))


@agent_command(app)
def reboot(
    *,
    target: Target,
) -> None:
    """Restart this node's election participation after a random delay (testing aid)."""
    result = target.request("reboot")
    _plain(f"election restarts in {result['resumes_in']:.2f} s")


@agent_command(app)
def candidate(
    node: Annotated[str, typer.Argument(help="Member that receives our election view.")],
    *,
    target: Target,
) -> None:
    """Send this node's election view (term, leader, role) to NODE (testing aid)."""
    result = target.request("candidate", node=node)
    _plain(f"sent to {result['sent_to']}")


@agent_command(app)
def expect(
    votes: Annotated[int, typer.Argument(help="The new expected votes (at least 1).")],
    *,
    target: Target,
) -> None:
    """Lower the tracked expected votes cluster-wide (never below the members alive)."""
    if votes < 1:
        raise _fail("config error: votes: must be at least 1", EXIT_CONFIG)
    result = target.request("expect", votes=votes)
    _plain(str(result["result"]))


@disk_app.command("format")
def disk_format(
    path: Annotated[Path, typer.Argument(help="File or block device (erased!).")],
    slots: Annotated[int, typer.Option("--slots", help="Node slots (1..4096).")] = 16,
) -> None:
    """Lay out an empty heartbeat disk with one 4 KiB slot per node."""
    from covey.runtime.features.hbdisk import DiskError, format_disk

    if not 1 <= slots <= 4096:
        raise _fail("config error: slots: must be 1..4096", EXIT_CONFIG)
    try:
        format_disk(path, slots)
    except DiskError as exc:
        raise _fail(str(exc)) from None
    _plain(f"formatted {path}: {slots} slots of 4096 octets")


@disk_app.command("dump")
def disk_dump(
    path: Annotated[Path, typer.Argument(help="Heartbeat disk.")],
    json_: JsonOpt = False,
) -> None:
    """Show every written slot of a heartbeat disk (name, age, term, incarnation)."""
    from covey.runtime.features.hbdisk import DiskError, read_disk

    try:
        count, records = read_disk(path)
    except DiskError as exc:
        raise _fail(str(exc)) from None
    if json_:
        _print_json({"slots": count, "written": [r.to_json() for r in records]})
        return
    _plain(f"{path}: {count} slots, {len(records)} written")
    now = time.time()
    for r in records:
        _plain(
            f"{r.index:4d}  {r.name:20s} {r.node_id.hex()}  age {now - r.stamp:7.1f} s  "
            f"term {r.term}  incarnation {r.incarnation}  seq {r.seq}"
        )
