"""The quick path of ``covey``: the common commands and ``covey agent`` without Typer.

Typer (0.29) builds a pydantic ``TypeAdapter`` for every option that is not a boolean
flag, so any ``covey`` command that Typer parses costs about 0.3 s of CPU before it runs
(``import typer`` alone: 0.13 s on the 2-core bench machine; see docs/benchmarks.md,
"Start-up and the CLI"). Typer therefore stays the source of every ``--help``, every usage
error and every other command, and this module parses, with :mod:`argparse`, only a
well-formed command line of ``agent``, ``members``, ``info``, ``names``, ``facts``,
``versions``, ``set``, ``tags`` or ``leave``. Anything it does not parse — ``--help``, a
mistyped or missing option, a value argparse refuses — goes to Typer unchanged, which
then explains the problem as before. The commands themselves run the same functions as
the Typer commands (:mod:`covey.cli.queries`, :mod:`covey.cli.agent_start`).

``tests/cli/test_quick.py`` checks that every option declared here is the Typer
command's, with the same kind (value, repeatable, flag), and the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Kinds of option: a text value, a path, a number, a repeatable text value, a flag.
STR, PATH, FLOAT, INT, LIST, FLAG = "str", "path", "float", "int", "list", "flag"

#: The options that say which agent a command talks to (covey.cli.options.agent_command).
TARGET_OPTIONS = {
    "control": PATH,
    "data_dir": PATH,
    "config": PATH,
    "name": STR,
    "rpc": STR,
    "key_file": PATH,
}

#: ``covey agent``'s options, as covey.cli.agent declares them.
AGENT_OPTIONS = {
    "config": PATH,
    "name": STR,
    "cluster": STR,
    "bind": STR,
    "advertise": STR,
    "interface": LIST,
    "multicast": STR,
    "no_multicast": FLAG,
    "join": LIST,
    "srv": STR,
    "srv_resolver": STR,
    "srv_interval": FLOAT,
    "zre": FLAG,
    "zre_port": INT,
    "zre_group": LIST,
    "key_file": PATH,
    "data_dir": PATH,
    "http": STR,
    "control": PATH,
    "rpc": STR,
    "tag": LIST,
    "plaintext": FLAG,
    "local_channel": FLAG,
    "probe_interval": FLOAT,
    "probe_timeout": FLOAT,
    "gossip_interval": FLOAT,
    "reap_failed_after": FLOAT,
    "reconnect_max": FLOAT,
    "log_level": STR,
    "log_format": STR,
    "local_version": STR,
    "version_file": PATH,
    "fact": LIST,
    "export_dir": PATH,
    "export_command": STR,
    "event_handler": LIST,
    "action_handler": STR,
    "versions_count_failed": FLAG,
    "no_election": FLAG,
    "expected_votes": INT,
    "election_bootstrap": FLOAT,
    "two_node": FLAG,
    "election_heartbeat": FLOAT,
    "fence_command": STR,
    "heartbeat_disk": PATH,
    "deliveries": STR,
    "scheduler": STR,
    "delivery_handler": STR,
    "delivery_deadline": FLOAT,
    "notify": LIST,
    "trace_buffer": INT,
    "collector": STR,
    "strict_permissions": FLAG,
    "http_token_file": PATH,
    "notify_secret": STR,
}

#: command → (positional arguments as (name, required), its own options).
COMMANDS: dict[str, tuple[tuple[tuple[str, bool], ...], dict[str, str]]] = {
    "members": ((), {"http": STR, "state": STR, "tag": LIST, "json_": FLAG}),
    "info": ((), {"json_": FLAG}),
    "names": ((), {"http": STR, "json_": FLAG}),
    "facts": ((("node", False),), {"http": STR, "json_": FLAG}),
    "versions": ((), {"http": STR, "json_": FLAG}),
    "set": ((("key", True), ("value", True)), {}),
    "tags": ((), {"set_": LIST, "delete": LIST, "json_": FLAG}),
    "leave": ((), {}),
}
#: Other spellings of an option, as Typer declares them.
ALIASES = {("members", "state"): ("--status",)}


def flag_of(dest: str) -> str:
    """The option spelling of a parameter: ``json_`` → ``--json``, ``key_file`` →
    ``--key-file``."""
    return "--" + dest.rstrip("_").replace("_", "-")


class _NotQuick(Exception):
    """argparse refused the command line: Typer will parse it (and explain)."""


def _parser(command: str, positionals: Any, options: dict[str, str]) -> Any:
    # argparse is imported here, not at the top: ``covey --help`` and the commands Typer
    # parses never need it.
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # never prints, never exits
            raise _NotQuick(message)

    p = Parser(prog=f"covey {command}", add_help=False, allow_abbrev=False, exit_on_error=False)
    for name, required in positionals:
        p.add_argument(name, nargs=None if required else "?")
    convert: dict[str, Any] = {STR: str, PATH: Path, FLOAT: float, INT: int}
    for dest, kind in options.items():
        flags = [flag_of(dest), *ALIASES.get((command, dest), ())]
        if kind == FLAG:
            p.add_argument(*flags, dest=dest, action="store_true")
        elif kind == LIST:
            p.add_argument(*flags, dest=dest, action="append", default=None)
        else:
            p.add_argument(*flags, dest=dest, type=convert[kind], default=None)
    return p


def parse(args: list[str]) -> tuple[str, dict[str, Any]] | None:
    """``(command, options)`` when the quick path takes ``args`` (after ``covey``), else
    None: Typer parses it."""
    if not args or args[0] not in (*COMMANDS, "agent") or "--help" in args:
        return None
    command = args[0]
    if command == "agent":
        positionals: Any = ()
        options = AGENT_OPTIONS
    else:
        positionals, own = COMMANDS[command]
        options = {**own, **TARGET_OPTIONS}
    parser = _parser(command, positionals, options)
    try:
        parsed = parser.parse_args(args[1:])
    except Exception:  # _NotQuick, argparse.ArgumentError, a value it could not convert
        return None
    return command, vars(parsed)


def format_alias(args: list[str]) -> list[str]:
    """``--format json`` (Serf's spelling) as ``--json``; ``--format text``/``table`` as
    nothing (the default output)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        value = None
        if arg == "--format" and i + 1 < len(args):
            value, i = args[i + 1], i + 2
        elif arg.startswith("--format="):
            value, i = arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        if value == "json":
            out.append("--json")
        elif value not in ("text", "table"):
            out += ["--format", value]  # click reports it
    return out


def run(args: list[str]) -> int | None:
    """Run ``covey ARGS`` on the quick path; its exit status, or None when Typer must."""
    found = parse(args)
    if found is None:
        return None
    command, options = found
    from covey.cli.target import CommandExit

    try:
        if command == "agent":
            from covey.agentd import prepare_imports

            # cffi out and PyCryptodome's probe spared before anything imports them;
            # ssl is decided by agent_start once it knows the configuration.
            prepare_imports(ssl=True)
            from covey.cli.agent_start import start

            start(options, in_process=True)
        target_args = {k: options.pop(k) for k in TARGET_OPTIONS}
        from covey.cli import queries
        from covey.cli.target import Target

        target = Target(**target_args)
        commands: dict[str, Callable[..., None]] = {
            "members": queries.members,
            "info": queries.info,
            "names": queries.names,
            "facts": queries.facts,
            "versions": queries.versions,
            "set": queries.set_fact,
            "tags": queries.tags,
            "leave": queries.leave,
        }
        run_query = commands[command]
        run_query(target, **options)
    except CommandExit as exc:
        return exc.code
    return 0
