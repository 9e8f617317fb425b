"""Commands that need no agent: keygen, demo."""

from __future__ import annotations

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
    nodes: Annotated[int, typer.Option(min=3, max=20, help="Agents to start.")] = 5,
) -> None:
    """Start a local cluster of agent processes on loopback, kill one, stop one, and finish.

    Everything stays on 127.0.0.1 (multicast on the loopback interface only).
    """
    from covey.cli.demo import run_demo

    raise typer.Exit(run_demo(nodes, console))
