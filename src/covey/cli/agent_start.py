"""Start an agent from ``covey agent``'s options, without Typer.

Both ways into ``covey agent`` end here: the Typer command (:mod:`covey.cli.agent`, which
declares the options and the help) and the quick path (:mod:`covey.cli.quick`, which
parses a well-formed command line with :mod:`argparse` before Typer is imported).
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

from covey.cli.target import EXIT_CONFIG, fail

#: Options that are switches of ``covey agent`` rather than settings of the same name.
_SWITCHES = ("config", "no_multicast", "no_election")
#: Switches that, left off, leave the setting to the other sources.
_ON_SWITCHES = (
    "plaintext",
    "local_channel",
    "versions_count_failed",
    "two_node",
    "strict_permissions",
    "zre",
)


def settings_from_options(options: dict[str, Any]) -> dict[str, object]:
    """The settings the command line gives (``None``: not given), from its options."""
    flags: dict[str, object] = {k: v for k, v in options.items() if k not in _SWITCHES}
    no_multicast = bool(options.get("no_multicast"))
    flags["multicast"] = False if no_multicast else options.get("multicast")
    flags["election"] = False if options.get("no_election") else None
    for on in _ON_SWITCHES:
        flags[on] = True if flags.get(on) else None
    return flags


def start(options: dict[str, Any], *, in_process: bool) -> NoReturn:
    """Validate the settings and run the agent until it stops; never returns.

    ``in_process``: run the agent in this process (the quick path, which has loaded
    nothing the agent does not need); otherwise replace this process with the lean agent
    process (covey.runtime.lean_process), leaving Typer's and rich's modules behind.

    Raises:
        CommandExit: a bad setting (status 2) or an error before the agent starts (1).
    """
    from covey.runtime.config.errors import ConfigError

    flags = settings_from_options(options)
    config = options.get("config")
    try:
        if options.get("no_multicast") and options.get("multicast"):
            raise ConfigError("multicast", "--multicast and --no-multicast exclude each other")
        from dataclasses import replace

        from covey.runtime.config.model import ReloadSources
        from covey.runtime.config.sources import build_config, read_env, read_toml

        file_settings = read_toml(config) if config is not None else {}
        env_settings = read_env(os.environ)
        cfg = build_config(file_settings, env_settings, flags)
        given = {k: v for k, v in flags.items() if v is not None}
        cfg = replace(cfg, reload_from=ReloadSources(config, env_settings, given))
        if not in_process:
            from covey.runtime.lean_process import exec_agent

            # The long-running agent leaves the CLI's modules behind; it reports interface
            # and identity errors itself, in the same one-line form, before binding.
            exec_agent(cfg)
    except ConfigError as exc:
        raise fail(f"config error: {exc}", EXIT_CONFIG) from None
    except OSError as exc:
        raise fail(f"cannot start: {exc}") from None
    from covey.agentd import prepare_imports
    from covey.runtime.lean_process import needs_ssl, run_lean

    # As in the lean process (covey.agentd): ssl stays out unless the configuration
    # needs it, about 4 MiB of OpenSSL bindings.
    prepare_imports(ssl=needs_ssl(cfg))
    sys.exit(run_lean(cfg))
