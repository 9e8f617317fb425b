"""What an operator may decide about another member: Serf's ``force-leave``.

Only the member itself can leave (it bumps its incarnation and says so), but a member
that crashed for good never will: it stays failed, other nodes keep looking for it, and
it is forgotten only after the failed retention. ``force-leave`` lets an operator say it
is gone for good, on its behalf: the member is marked left at the incarnation it failed
at, and the verdict is gossiped like any other. Nobody looks for a left member, and it
is forgotten after the (shorter) left retention.

Only a failed member can be forced out. A live one would refute the verdict at once, and
the attempt says more about the operator's view than about the member; one alive behind
a partition refutes it when the partition heals (a higher incarnation wins) and rejoins.
"""

from __future__ import annotations

from covey.core.membership.table import MemberTable
from covey.core.types import MemberState
from covey.core.wire.messages import Dead


def forced_leave(table: MemberTable, me: bytes, node_id: bytes) -> Dead:
    """The left verdict that forces failed member ``node_id`` out, sent as ``me``.

    Raises:
        KeyError: no member has this id.
        ValueError: the member is this node, or not failed.
    """
    m = table.get(node_id)
    if m is None:
        raise KeyError(node_id)
    if node_id == me or m.state is not MemberState.FAILED:
        what = "this node (use leave)" if node_id == me else m.state.label
        raise ValueError(f"{m.name} is {what}; only a failed member can be forced out")
    return Dead(m.incarnation, node_id, me, left=True)
