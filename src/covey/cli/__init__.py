"""The ``covey`` command (Typer): ``app`` builds it, one module per command group."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``covey`` console script."""
    from covey.cli.app import main as run

    run()
