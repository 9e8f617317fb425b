"""Commands that need no agent: keygen, demo."""

import sys
from typing import Annotated

import typer

from covey.cli.options import (
    app,
    console,
)


@app.command()
def keygen() -> None:
    """Print a new Fernet key (put it in the key file of every agent of the cluster)."""
    from covey.core.crypto.fernet import generate_key

    sys.stdout.write(generate_key().decode() + "\n")


@app.command()
def demo(
    nodes: Annotated[int, typer.Option(min=3, max=9, help="Agents to start.")] = 5,
    steps: Annotated[bool, typer.Option("--steps", help="List the steps and exit.")] = False,
    only: Annotated[
        str | None,
        typer.Option("--only", metavar="STEP", help="Run one step (and the steps it needs first)."),
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print one JSON document of every step's figures.")
    ] = False,
) -> None:
    """Show the whole of covey on loopback: a collector, discovery, the leader and its
    failover with fencing, shared facts and versions, acknowledged deliveries, a graceful
    leave and the collector's timeline; each step explained, then measured.

    Everything stays on 127.0.0.1 (multicast on the loopback interface only); every
    process it starts is stopped by its PID. Exit 0 when every step worked.
    """
    from rich.console import Console

    from covey.cli.demo import STEPS, WIDTH, list_steps, run_demo
    from covey.cli.options import EXIT_CONFIG, _fail

    out = Console(width=min(WIDTH, console.width), highlight=False)
    if steps:
        list_steps(out)
        return
    if only is not None and only not in {s.name for s in STEPS}:
        names = ", ".join(s.name for s in STEPS)
        raise _fail(f"only: no step {only!r} (steps: {names})", EXIT_CONFIG)
    raise typer.Exit(run_demo(nodes, out, only=only, as_json=json_))
