"""What every ``covey`` command shares: the Typer app, the option types, the agent target.

The command groups (``covey.cli.agent``, ``inspect``, ``tools``, ``election``, ``facts``)
each import this module and add their commands to :data:`app`; ``covey.cli.app`` imports
them in the order they appear in ``--help``. Nothing here imports a command module, so
there is no import cycle.
"""

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from covey.cli.target import (
    EXIT_CONFIG,
    EXIT_UNREACHABLE,
    CommandExit,
    Target,
    console,
    plain,
    print_json,
    send_request,
)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_UNREACHABLE",
    "ConfigOpt",
    "ControlOpt",
    "DataDirOpt",
    "HttpOpt",
    "JsonOpt",
    "KeyFileOpt",
    "NameOpt",
    "RpcOpt",
    "Target",
    "_fail",
    "_plain",
    "_print_json",
    "_request",
    "agent_command",
    "app",
    "console",
]

app = typer.Typer(
    name="covey",
    help="covey: machines that know each other. Discovery by multicast beacons, SWIM "
    "membership with Lifeguard, one elected leader, shared state, acknowledged deliveries, "
    "traces and a collector outside the cluster; everything sealed with the cluster key.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from covey import __version__

        sys.stdout.write(f"covey {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print covey's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """The options of ``covey`` itself (``--version``); the help is the app's."""


# ---------------------------------------------------------------- shared option types

ControlOpt = Annotated[
    Path | None,
    typer.Option(
        "--control",
        help="Unix control socket of the agent (default: $COVEY_CONTROL, then --data-dir, "
        "--config, --name, or the only agent in the runtime directory).",
        show_default=False,
    ),
]
NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="Name of a local agent (found in the runtime directory).",
        show_default=False,
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data directory of a local agent (its covey.sock).", show_default=False
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Config file of a local agent (finds its socket).", show_default=False
    ),
]
RpcOpt = Annotated[
    str | None,
    typer.Option(
        "--rpc",
        help="HOST:PORT of a remote agent's authenticated control endpoint (needs --key-file).",
        show_default=False,
    ),
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option("--key-file", help="Cluster key file, for --rpc.", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
HttpOpt = Annotated[
    str | None,
    typer.Option("--http", help="URL of an agent's HTTP API instead.", show_default=False),
]


def _fail(message: str, code: int = EXIT_UNREACHABLE) -> typer.Exit:
    # Plain write: one line, never wrapped to the terminal width.
    sys.stderr.write(f"covey: {message}\n")
    return typer.Exit(code)


#: One control request; its result, or a one-line error (``CommandExit``, which
#: :func:`agent_command` turns into ``typer.Exit``).
_request = send_request
_plain = plain
_print_json = print_json


_TARGET_OPTIONS = (
    ("control", ControlOpt),
    ("data_dir", DataDirOpt),
    ("config", ConfigOpt),
    ("name", NameOpt),
    ("rpc", RpcOpt),
    ("key_file", KeyFileOpt),
)
F = TypeVar("F", bound=Callable[..., Any])


def agent_command(typer_app: typer.Typer, command_name: str | None = None) -> Callable[[F], F]:
    """Register a command that reaches a running agent.

    The command gets the ``--control``, ``--data-dir``, ``--config``, ``--name``, ``--rpc``
    and ``--key-file`` options
    and receives them as one keyword argument ``target`` (a :class:`Target`).
    """

    def register(func: F) -> F:
        sig = inspect.signature(func, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "target"]
        kw_only = inspect.Parameter.KEYWORD_ONLY
        extra = [
            inspect.Parameter(n, kw_only, default=None, annotation=a) for n, a in _TARGET_OPTIONS
        ]

        @functools.wraps(func)
        def command(**kw: Any) -> Any:
            target = Target(*(kw.pop(n) for n, _ in _TARGET_OPTIONS))
            try:
                return func(target=target, **kw)
            except CommandExit as exc:  # from the Typer-free helpers (covey.cli.target)
                raise typer.Exit(exc.code) from None

        # Typer reads the parameters from __signature__: the wrapper shows the command's
        # own options plus the shared target options.
        setattr(command, "__signature__", sig.replace(parameters=own + extra))  # noqa: B010
        typer_app.command(command_name)(command)
        return func

    return register
