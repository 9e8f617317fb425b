"""Shared helpers for simulator tests."""

from __future__ import annotations

from collections.abc import Iterable

from covey.core import MemberFailed, MemberState
from covey.sim import SimHost, Simulation


def build(n: int, seed: int, *, join: bool = True, **kw: object) -> Simulation:
    """A simulation of ``n`` nodes; all but the first join the first by static address."""
    sim = Simulation(seed, **kw)  # type: ignore[arg-type]
    first = sim.add_node()
    for _ in range(n - 1):
        sim.add_node(join=[first.name] if join else [])
    return sim


def views(sim: Simulation, hosts: Iterable[SimHost]) -> list[dict[bytes, tuple[MemberState, int]]]:
    """Each host's member table as id -> (state, incarnation)."""
    return [{m.node_id: (m.state, m.incarnation) for m in h.node.members()} for h in hosts]


def state_of(observer: SimHost, subject: SimHost) -> MemberState | None:
    """How ``observer`` sees ``subject`` (None if unknown)."""
    m = observer.node.table.get(subject.config.node_id)
    return None if m is None else m.state


def all_see(
    sim: Simulation,
    subject: SimHost,
    state: MemberState,
    observers: Iterable[SimHost] | None = None,
) -> bool:
    """True when every observer (default: every other up host) sees ``subject`` in ``state``."""
    obs = observers if observers is not None else [h for h in sim.running() if h is not subject]
    return all(state_of(o, subject) is state for o in obs)


def failed_verdicts(sim: Simulation) -> list[tuple[float, str, str]]:
    """Every (time, observer, subject) failed verdict recorded so far."""
    return [
        (t, h.name, e.member.name)
        for h in sim.hosts.values()
        for t, e in h.events
        if isinstance(e, MemberFailed)
    ]
