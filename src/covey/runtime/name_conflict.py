"""What the agent does when two live nodes claim one name (core rule:
:mod:`covey.core.membership.names`).

A claimant the table ignored is counted (``name_conflict``) and logged, once per
claimant. When this agent is the newer claimant — its join was answered with another
live node of its name — it logs one error line naming the clash and the holder, leaves,
and the process exits with status 2 (a configuration error: pick another ``--name``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from covey.core import NameConflict, format_address

if TYPE_CHECKING:
    from covey.runtime.agent import Agent

log = logging.getLogger("covey.agent")

#: Exit status of an agent refused for a name another live node holds.
EXIT_NAME_TAKEN = 2


def on_name_conflict(agent: Agent, event: NameConflict) -> None:
    """Count, log and, when this agent is the newer claimant, stop it (status 2)."""
    holder = f"node {event.holder.hex()} at {format_address(event.holder_address)}"
    agent.counters["name_conflict"] += 1
    if event.refused:
        log.error(
            "name clash: the name %r is held by %s in cluster %r; this agent (%s) refuses "
            "to join under it and stops: give it another --name",
            event.name,
            holder,
            agent.config.cluster,
            event.claimant.hex(),
        )
        agent.exit_code = EXIT_NAME_TAKEN
        agent.request_shutdown()
    else:
        log.warning(
            "name clash: node %s claims the name %r held by %s: ignored (the holder keeps it)",
            event.claimant.hex(),
            event.name,
            holder,
        )
