"""Network faults injected with nftables inside the lab's host namespaces.

There is no netem in the kernels this runs on, so every fault is a *drop* rule:
``numgen random mod 100 < P drop`` for loss, address matches for partitions. Each host
namespace gets one table ``inet covey_lab`` with an ``input`` and an ``output`` chain
(hooks at filter priority). The set of active faults is kept here and every change
regenerates each host's table and loads it with one ``nft -f`` transaction, so a fault is
added or removed atomically and :meth:`Faults.heal` leaves empty chains behind.

Only traffic of the lab's ``eth0`` is matched (``iifname``/``oifname``), never ``lo``.

Where a rule goes:

* loss of P % *at a host*: its input chain drops P % of what arrives on eth0;
* loss of P % *on a link* a-b: a's input drops P % from b and b's input P % from a;
* a *partition* between groups: each host drops input from and output to the other side
  (beacons included: they carry the sender's address as source);
* *multicast blocked*: every host drops 224.0.0.0/4 both ways (unicast untouched);
  *broadcast blocked* likewise for the subnet broadcast address;
* a *dead network* at a host: every packet in or out of its eth0 is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from covey.core.records import record
from covey.lab.netns import Host, Lab, run

TABLE = "covey_lab"


@record
class Rule:
    """One drop rule at one host: ``chain`` is "input" or "output", ``text`` the match
    (rendered as ``<text> counter drop``, so :meth:`Faults.dropped` can tell what it caught)."""

    host: str
    chain: str
    text: str


def _pct(p: float) -> int:
    if not 0 <= p <= 100:
        raise ValueError("loss must be 0..100 %")
    return round(p)


def loss_at(host: Host, percent: float) -> list[Rule]:
    """``percent`` % of the packets arriving at ``host`` are dropped."""
    p = _pct(percent)
    return [Rule(host.name, "input", f'iifname "{host.dev}" numgen random mod 100 < {p}')]


def loss_between(a: Host, b: Host, percent: float) -> list[Rule]:
    """``percent`` % loss each way on the link between ``a`` and ``b``."""
    p = _pct(percent)
    return [
        Rule(x.name, "input", f'iifname "{x.dev}" ip saddr {y.addr} numgen random mod 100 < {p}')
        for x, y in ((a, b), (b, a))
    ]


def partition(side_a: Iterable[Host], side_b: Iterable[Host]) -> list[Rule]:
    """No packet passes between a host of ``side_a`` and one of ``side_b``."""
    a, b = list(side_a), list(side_b)
    rules: list[Rule] = []
    for mine, theirs in ((a, b), (b, a)):
        if not theirs:
            continue
        addrs = "{ " + ", ".join(h.addr for h in theirs) + " }"
        for h in mine:
            rules.append(Rule(h.name, "input", f'iifname "{h.dev}" ip saddr {addrs}'))
            rules.append(Rule(h.name, "output", f'oifname "{h.dev}" ip daddr {addrs}'))
    return rules


def block_multicast(hosts: Iterable[Host]) -> list[Rule]:
    """Multicast (224.0.0.0/4) is dropped both ways at every host; unicast still works."""
    out: list[Rule] = []
    for h in hosts:
        out.append(Rule(h.name, "input", f'iifname "{h.dev}" ip daddr 224.0.0.0/4'))
        out.append(Rule(h.name, "output", f'oifname "{h.dev}" ip daddr 224.0.0.0/4'))
    return out


def block_broadcast(hosts: Iterable[Host], broadcast: str) -> list[Rule]:
    """Datagrams to the subnet broadcast address are dropped both ways at every host."""
    out: list[Rule] = []
    for h in hosts:
        out.append(Rule(h.name, "input", f'iifname "{h.dev}" ip daddr {broadcast}'))
        out.append(Rule(h.name, "output", f'oifname "{h.dev}" ip daddr {broadcast}'))
    return out


def dead_network(host: Host) -> list[Rule]:
    """Every packet in or out of ``host``'s eth0 is dropped (cable pulled)."""
    return [
        Rule(host.name, "input", f'iifname "{host.dev}"'),
        Rule(host.name, "output", f'oifname "{host.dev}"'),
    ]


@dataclass
class Faults:
    """The faults active in one lab, by label; every change is applied at once.

    Example::

        faults = Faults(lab)
        faults.set("split", partition(lab.hosts[:2], lab.hosts[2:]))
        faults.remove("split")
        faults.heal()
    """

    lab: Lab
    active: dict[str, list[Rule]] = field(default_factory=dict)

    def set(self, label: str, rules: list[Rule]) -> None:
        """Add (or replace) the fault ``label``."""
        self.active[label] = list(rules)
        self.apply()

    def remove(self, label: str) -> None:
        """Remove the fault ``label`` (no error if absent)."""
        if self.active.pop(label, None) is not None:
            self.apply()

    def heal(self) -> None:
        """Remove every fault."""
        self.active.clear()
        self.apply()

    def ruleset(self, host: Host) -> str:
        """The nft script that replaces ``host``'s lab table with the active faults."""
        lines = [
            f"table inet {TABLE}",
            f"delete table inet {TABLE}",
            f"table inet {TABLE} {{",
        ]
        for chain, hook in (("input", "input"), ("output", "output")):
            lines.append(f"  chain {chain} {{")
            lines.append(f"    type filter hook {hook} priority 0; policy accept;")
            for rules in self.active.values():
                lines.extend(
                    f"    {r.text} counter drop"
                    for r in rules
                    if r.host == host.name and r.chain == chain
                )
            lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def apply(self) -> None:
        """Load every host's table (one nft transaction per host)."""
        for h in self.lab.hosts:
            run(h.argv("nft", "-f", "-"), stdin=self.ruleset(h))

    def dropped(self, host: Host) -> int:
        """Packets the active rules at ``host`` dropped since they were last applied."""
        out = run(host.argv("nft", "list", "table", "inet", TABLE), check=False)
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", out))

    def describe(self) -> str:
        """Active fault labels, for logs."""
        return ", ".join(sorted(self.active)) or "none"
