"""The quick path of ``covey`` (covey.cli.quick): the same options as Typer's commands, a
hand-over to Typer for anything it does not parse, and none of the CLI stack loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from covey.cli import quick
from covey.cli.app import app


def _typer_params(command: str) -> tuple[list[tuple[str, bool]], dict[str, tuple[str, ...]]]:
    """(positionals as (name, required), {dest: (kind, *spellings)}) of a Typer command."""
    group: Any = typer.main.get_command(app)
    positionals: list[tuple[str, bool]] = []
    options: dict[str, tuple[str, ...]] = {}
    kinds = {str: quick.STR, Path: quick.PATH, float: quick.FLOAT, int: quick.INT}
    for p in group.commands[command].params:
        if p.param_type_name == "argument":
            positionals.append((p.name, bool(p.required)))
            continue
        if p.is_flag:
            kind = quick.FLAG
        elif p.multiple:
            kind = quick.LIST
        else:
            kind = kinds[p.type_descriptor.annotation]
        options[p.name] = (kind, *sorted(p.opts))
    return positionals, options


@pytest.mark.parametrize("command", [*quick.COMMANDS, "agent"])
def test_quick_options_are_the_typer_commands(command: str) -> None:
    """Every option of the quick path is the Typer command's, same kind and spelling, and
    none is missing: a new option in covey.cli.* fails here until quick.py has it."""
    positionals, options = _typer_params(command)
    if command == "agent":
        own: dict[str, str] = quick.AGENT_OPTIONS
        mine_pos: list[tuple[str, bool]] = []
    else:
        pos, own_opts = quick.COMMANDS[command]
        own = {**own_opts, **quick.TARGET_OPTIONS}
        mine_pos = list(pos)
    assert mine_pos == positionals
    mine = {
        dest: (kind, *sorted([quick.flag_of(dest), *quick.ALIASES.get((command, dest), ())]))
        for dest, kind in own.items()
    }
    assert mine == options


@pytest.mark.parametrize(
    "args",
    [
        ["members", "--help"],
        ["members", "--bogus"],
        ["members", "--jso"],  # no abbreviations (click has none)
        ["agent", "--probe-interval", "fast"],
        ["agent", "--expected-votes", "2.5"],
        ["set", "only-a-key"],
        ["facts", "a", "b"],
        ["monitor"],
        ["--version"],
        [],
    ],
)
def test_what_the_quick_path_leaves_to_typer(args: list[str]) -> None:
    """Help, mistakes and other commands are Typer's: it explains them as before."""
    assert quick.parse(args) is None


def test_what_the_quick_path_parses() -> None:
    """Options in any order, repeated ones collected, paths as Path, numbers converted."""
    command, opts = quick.parse(
        [
            "members",
            "--tag",
            "a=b",
            "--json",
            "--status",
            "alive",
            "--tag",
            "c=d",
            "--control=/run/x.sock",
        ]
    ) or ("", {})
    assert command == "members"
    assert opts["tag"] == ["a=b", "c=d"] and opts["json_"] is True
    assert opts["state"] == "alive" and opts["control"] == Path("/run/x.sock")
    assert opts["rpc"] is None and opts["http"] is None
    command, opts = quick.parse(["agent", "--probe-interval", "0.5", "--no-election"]) or ("", {})
    assert opts["probe_interval"] == 0.5 and opts["no_election"] is True
    assert opts["join"] is None and opts["plaintext"] is False
    assert quick.parse(["set", "k", "v"]) == ("set", {**_none_target(), "key": "k", "value": "v"})
    assert quick.format_alias(["members", "--format", "json"]) == ["members", "--json"]


def _none_target() -> dict[str, Any]:
    return dict.fromkeys(quick.TARGET_OPTIONS)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (what it imports is then its own)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )


def test_a_common_command_loads_no_cli_stack(tmp_path: Path) -> None:
    """`covey members --json` imports neither Typer, rich, pydantic, asyncio nor the
    protocol core, and fails like Typer's command (one line, status 1)."""
    missing = tmp_path / "nobody.sock"
    code = (
        "import sys; from covey.cli import main\n"
        f"sys.argv = ['covey', 'members', '--json', '--control', {str(missing)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n"
        "    bad = [m for m in ('typer', 'rich', 'pydantic', 'asyncio', 'covey.core')"
        " if m in sys.modules]\n"
        "    print(exc.code, bad)\n"
    )
    done = _python(code)
    assert done.stdout.strip() == "1 []", done.stdout + done.stderr
    assert done.stderr.startswith("covey: cannot reach the agent at "), done.stderr
    assert done.stderr.count("\n") == 1


def test_the_agent_process_skips_the_architecture_probe() -> None:
    """After covey.agentd.prepare_imports, PyCryptodome loads on ctypes without importing
    ``platform`` (whose architecture() runs ``file`` in a subprocess) or ``ssl``, and its
    AES still gives the FIPS-197 answer."""
    code = (
        "import sys\n"
        "from covey.agentd import prepare_imports\n"
        "prepare_imports(ssl=False)\n"
        "from Crypto.Cipher import AES\n"
        "key = bytes(range(16))\n"
        "block = bytes.fromhex('00112233445566778899aabbccddeeff')\n"
        "print(AES.new(key, AES.MODE_ECB).encrypt(block).hex())\n"
        "print([m for m in ('platform', 'ssl', '_ssl', 'cffi') if sys.modules.get(m)])\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["69c4e0d86a7b0430d8cdb78070b4c55a", "[]"]


def test_help_loads_neither_rich_nor_the_agent() -> None:
    """`covey --help` builds Typer's command tree but imports no rich (tables are drawn
    only by the commands that show one), no pydantic, no asyncio and no protocol core."""
    code = (
        "import sys; from covey.cli import main\n"
        "sys.argv = ['covey', '--help']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n"
        "    bad = [m for m in ('rich', 'pydantic', 'asyncio', 'covey.core', 'socket')"
        " if m in sys.modules]\n"
        "    print(exc.code, bad, file=sys.stderr)\n"
    )
    done = _python(code)
    assert done.stderr.strip() == "0 []", done.stderr
    assert "Usage: covey" in done.stdout and "members" in done.stdout


def test_the_top_level_help_tree_prints_typers_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`covey --help` runs on a copy of the app whose commands have no parameters; the
    text is the full app's, character for character, and the copy runs no command."""
    from covey.cli.app import help_tree

    texts = []
    for tree in (app, help_tree(app)):
        with pytest.raises(SystemExit) as done:
            tree(args=["--help"], prog_name="covey")
        assert done.value.code == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1]
    assert "members" in texts[0] and "zre" in texts[0] and "--version" in texts[0]
    with pytest.raises(RuntimeError, match="a help tree runs no command"):
        help_tree(app)(args=["members"], prog_name="covey", standalone_mode=False)
