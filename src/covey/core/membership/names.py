"""Who keeps a name two live nodes claim (memberlist's ``conflict`` delegate).

The member table is keyed by node id; a name is the operator's label for one. Two live
nodes under one name would make every name-keyed view (``covey facts``, the dashboard,
selectors) show one of them at random, so the rule, deterministic for every observer:

* the first live holder of a name keeps it: an alive message from another node id at
  another address claiming a name a live member holds is dropped by the table, and
  reported here once per claimant (:class:`NameConflict` with ``refused`` False);
* a joining node whose join is answered with a live holder of its own name is the newer
  claimant: it reports :class:`NameConflict` with ``refused`` True, and the runtime
  leaves and exits with status 2, naming the clash. The holder's state (its facts, keyed
  by its node id) is never touched.

The same address under a new node id is a restart with a fresh identity, not a second
claimant: it is admitted (the old record fails in due course).
"""

from __future__ import annotations

from collections.abc import Callable

from covey.core.config import CoreConfig
from covey.core.events import Event, NameConflict
from covey.core.member import Member
from covey.core.membership.table import MemberTable
from covey.core.types import MemberState
from covey.core.wire.messages import Alive, PushPull

#: Claimants remembered as already reported (an attacker must not grow this forever).
_REPORTED_MAX = 1024


class NameClaims:
    """Reports name conflicts the table refused, and spots a join answered with our name.

    Args:
        config: our node id, name and address.
        table: the member table (its ``on_conflict`` hook is set here).
        emit: hands an event to the node's caller.
    """

    def __init__(self, config: CoreConfig, table: MemberTable, emit: Callable[[Event], None]):
        self._config = config
        self._emit = emit
        self._reported: set[bytes] = set()
        #: True once a join was answered with a live holder of our name.
        self.refused = False
        table.on_conflict = self._ignored

    def _ignored(self, holder: Member, claim: Alive, now: float) -> None:
        if claim.node_id in self._reported:
            return
        if len(self._reported) >= _REPORTED_MAX:
            self._reported.clear()
        self._reported.add(claim.node_id)
        self._emit(
            NameConflict(claim.name, holder.node_id, holder.address, claim.node_id, False, now)
        )

    def check_join_reply(self, pp: PushPull, now: float) -> bool:
        """True (and report it) when a join's answer holds another live node of our name."""
        c = self._config
        for r in pp.members:
            if (
                r.name == c.name
                and r.node_id != c.node_id
                and r.state is MemberState.ALIVE
                and r.address != c.address
            ):
                if not self.refused:
                    self.refused = True
                    self._emit(NameConflict(c.name, r.node_id, r.address, c.node_id, True, now))
                return True
        return False
