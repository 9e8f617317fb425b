"""The ``covey`` command: run an agent (covey.cli.agent), inspect and steer a running one, or
watch a demo.

Settings of ``covey agent`` come from flags, then ``COVEY_*`` environment variables, then
the ``--config`` TOML file, then defaults. A bad value prints one line naming the field
(``covey: config error: bind: port must be 1..65535``) and exits with status 2.
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Any

from covey.cli.options import app
from covey.cli.quick import format_alias

# The command groups, imported in the order their commands appear in ``--help``.
# isort: off
from covey.cli import agent as agent
from covey.cli import inspect as inspect
from covey.cli import steer as steer
from covey.cli import tools as tools
from covey.cli import election as election
from covey.cli import facts as facts
from covey.cli import keys as keys
from covey.cli import deliver as deliver
from covey.cli import trace as trace
from covey.cli import collector as collector
from covey.cli import install as install
from covey.cli import zre as zre

# isort: on

__all__ = ["app", "format_alias", "help_tree", "main"]


def help_tree(typer_app: Any) -> Any:
    """A copy of ``typer_app`` whose commands take no parameters: enough for the top-level
    ``--help``, which lists only each command's name and help text.

    Typer builds every parameter of every command (55 here) before it can print even
    that list, about a third of ``covey --help``'s time; the copy's commands keep their
    names, help, visibility and docstrings, so the text is the same (a test compares
    the two), and the groups are copied the same way. Never used to run a command.
    """
    new = copy.copy(typer_app)
    commands = []
    for info in typer_app.registered_commands:
        shown = copy.copy(info)
        real = info.callback

        def no_params() -> None:
            raise RuntimeError("a help tree runs no command")

        no_params.__doc__ = getattr(real, "__doc__", None)
        no_params.__name__ = getattr(real, "__name__", "command")
        shown.callback = no_params
        commands.append(shown)
    new.registered_commands = commands
    groups = []
    for group in typer_app.registered_groups:
        shown_group = copy.copy(group)
        shown_group.typer_instance = help_tree(group.typer_instance)
        groups.append(shown_group)
    new.registered_groups = groups
    return new


def main() -> None:
    """Entry point of the ``covey`` console script.

    Usage errors (a mistyped flag, a missing argument) are one line on stderr, naming the
    command's ``--help``, with exit status 2; a command without its subcommand prints
    its help (status 2, as click does).
    """
    # Typer 0.2x carries its own copy of click; its exceptions are the ones raised.
    import typer
    from typer._click import exceptions as click

    args = format_alias(sys.argv[1:])
    # The top-level help needs no command's parameters (shell completion, which runs
    # with no arguments and _COVEY_COMPLETE set, needs them all).
    top_help = args == ["--help"] and "_COVEY_COMPLETE" not in os.environ
    run = help_tree(app) if top_help else app
    try:
        code = run(args=args, prog_name="covey", standalone_mode=False)
    except click.NoArgsIsHelpError as exc:
        sys.stderr.write(exc.ctx.get_help() + "\n" if exc.ctx else "")
        sys.exit(2)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "covey"
        message = " ".join(exc.format_message().split())
        sys.stderr.write(f"covey: {message} (see '{where} --help')\n")
        sys.exit(2)
    except typer.Abort:
        sys.stderr.write("covey: aborted\n")
        sys.exit(130)
    except click.ClickException as exc:
        sys.stderr.write(f"covey: {' '.join(exc.format_message().split())}\n")
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
