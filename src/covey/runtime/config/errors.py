"""The error of a bad setting, apart from the settings themselves.

It lives in a module of its own so that the CLI's quick commands (``covey members``) and
the control client can name it without importing the configuration model, which loads
the whole protocol core.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is wrong; ``str(err)`` is ``"<field>: <what is wrong>"``."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
