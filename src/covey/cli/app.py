"""The ``covey`` command: run an agent (covey.cli.agent), inspect and steer a running one, or
watch a demo.

Settings of ``covey agent`` come from flags, then ``COVEY_*`` environment variables, then
the ``--config`` TOML file, then defaults. A bad value prints one line naming the field
(``covey: config error: bind: port must be 1..65535``) and exits with status 2.
"""

from __future__ import annotations

from covey.cli.options import app

# The command groups, imported in the order their commands appear in ``--help``.
# isort: off
from covey.cli import agent as agent
from covey.cli import inspect as inspect
from covey.cli import tools as tools
from covey.cli import election as election
from covey.cli import facts as facts
from covey.cli import deliver as deliver
from covey.cli import trace as trace
from covey.cli import collector as collector

# isort: on

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``covey`` console script."""
    app()
