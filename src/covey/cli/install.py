"""Files for installing covey as a service: ``covey unit``, ``covey example-config`` and
``covey man`` (the man page, made from the CLI itself so it always matches it)."""

import datetime
import shutil
import sys
from pathlib import Path
from typing import Any

from covey.cli.options import app


def _shipped(name: str) -> str:
    from importlib import resources  # only when a file is installed

    return resources.files("covey.packaging").joinpath(name).read_text(encoding="utf-8")


@app.command()
def unit() -> None:
    """Print the systemd unit (Type=notify, reload on SIGHUP), its ExecStart pointing at
    this covey: covey unit > /etc/systemd/system/covey.service."""
    text = _shipped("covey.service")
    script = Path(sys.argv[0])
    if script.name == "covey" and script.exists():
        here = str(script.absolute())
    else:
        here = shutil.which("covey") or f"{sys.executable} -m covey"
    sys.stdout.write(text.replace("/usr/local/bin/covey", here))


@app.command("example-config")
def example_config() -> None:
    """Print an example configuration file (every setting is documented in
    docs/operations.md)."""
    sys.stdout.write(_shipped("covey.toml"))


def _roff(text: str) -> str:
    out = text.replace("\\", "\\\\").replace("-", "\\-")
    return "\n".join(("\\&" + ln) if ln.startswith((".", "'")) else ln for ln in out.splitlines())


def _options(command: Any) -> list[str]:
    lines: list[str] = []
    for param in command.params:
        names = getattr(param, "opts", None)
        if not names or param.param_type_name != "option":
            continue
        lines += [".TP", "\\fB" + _roff(", ".join(names)) + "\\fR"]
        lines.append(_roff(getattr(param, "help", None) or ""))
    return lines


def man_page() -> str:
    """The covey(1) man page (roff), from the command tree."""
    import typer.main

    root = typer.main.get_command(app)
    from covey import __version__

    day = datetime.date.today().isoformat()
    lines = [
        f'.TH COVEY 1 "{day}" "covey {__version__}" "User Commands"',
        ".SH NAME",
        "covey \\- machines that know each other",
        ".SH SYNOPSIS",
        "\\fBcovey\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        _roff(root.help or ""),
        ".PP",
        "Exit status: 0 ok, 1 the operation failed, 2 a usage or configuration error.",
        ".SH COMMANDS",
    ]

    def walk(prefix: str, group: Any) -> None:
        for name in group.list_commands(None):
            cmd = group.get_command(None, name)
            if cmd is None or getattr(cmd, "hidden", False):
                continue
            full = f"{prefix} {name}"
            lines.extend([".SS", "\\fB" + _roff(full.strip()) + "\\fR"])
            lines.append(_roff((cmd.help or "").strip()))
            lines.extend(_options(cmd))
            if hasattr(cmd, "list_commands"):
                walk(full, cmd)

    walk("covey", root)
    lines += [
        ".SH FILES",
        "/etc/covey/covey.toml (covey example\\-config), the systemd unit (covey unit).",
        ".SH SEE ALSO",
        "docs/operations.md, docs/http.md, docs/protocol.md in the covey sources.",
    ]
    return "\n".join(lines) + "\n"


@app.command()
def man() -> None:
    """Print the covey(1) man page (roff): covey man > /usr/local/share/man/man1/covey.1."""
    sys.stdout.write(man_page())
