"""``python -m covey``: the same as the ``covey`` command."""

from covey.cli.app import main

main()
