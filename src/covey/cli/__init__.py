"""The ``covey`` command (Typer): ``app`` builds it, one module per command group.

The common commands and ``covey agent`` take a quick path first (covey.cli.quick), which
runs them without importing Typer when it can parse the command line itself.
"""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``covey`` console script."""
    import sys

    from covey.cli.quick import format_alias, run

    code = run(format_alias(sys.argv[1:]))
    if code is not None:
        sys.exit(code)
    from covey.cli.app import main as run_typer

    run_typer()
