"""Rich renderings shared by the CLI and the demo: member tables, info, event lines."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

#: Colour of each member state.
STATE_STYLE = {"alive": "green", "suspect": "yellow", "failed": "red", "left": "bright_black"}


def members_table(members: list[dict[str, Any]], title: str | None = None) -> Table:
    """A rich table of members in the ``MemberInfo.to_json()`` shape."""
    table = Table(title=title, header_style="bold")
    for col in ("name", "address", "state", "incarnation", "tags", "id"):
        table.add_column(col, justify="right" if col == "incarnation" else "left")
    for m in sorted(members, key=lambda m: (str(m["name"]), str(m["id"]))):
        state = str(m["state"])
        tags = ", ".join(f"{k}={v}" for k, v in sorted(m.get("tags", {}).items()))
        table.add_row(
            str(m["name"]),
            str(m["address"]),
            f"[{STATE_STYLE.get(state, 'white')}]{state}[/]",
            str(m["incarnation"]),
            tags,
            str(m["id"])[:12],
        )
    return table


def info_table(result: dict[str, Any]) -> Table:
    """A two-column table of an ``info`` answer."""
    me = result["self"]
    stats = result["stats"]
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("name", me["name"]),
        ("id", me["id"]),
        ("address", me["address"]),
        ("cluster", result["cluster"]),
        ("state", me["state"]),
        ("incarnation", str(me["incarnation"])),
        ("tags", ", ".join(f"{k}={v}" for k, v in sorted(me["tags"].items())) or "-"),
        ("encrypted", "yes" if result["encrypted"] else "NO (plain text)"),
        ("discovery", discovery_text(result["discovery"])),
        ("members", ", ".join(f"{k} {v}" for k, v in sorted(stats["members"].items()))),
        ("health", str(stats["health"])),
        ("datagrams", f"{stats['datagrams_sent']} sent, {stats['datagrams_received']} received"),
        ("streams", f"{stats['streams_opened']} opened, {stats['streams_served']} served"),
        ("drops", ", ".join(f"{k} {v}" for k, v in sorted(result["drops"].items())) or "none"),
        ("runtime", ", ".join(f"{k} {v}" for k, v in sorted(result["runtime"].items())) or "-"),
    ]
    rows += interface_rows(result.get("interfaces"))
    for k, v in rows:
        table.add_row(k, Text(v))  # plain text: a name or tag is never taken for markup
    return table


def interface_rows(net: dict[str, Any] | None, now: float | None = None) -> list[tuple[str, str]]:
    """One row per discovery interface and one for the unicast socket: status, beacons
    out and in, when last, from whom, drops by reason (bad_key first)."""
    if not net:
        return []
    t = time.time() if now is None else now

    def ago(when: float | None) -> str:
        return "never" if when is None else f"{max(0.0, t - when):.0f} s ago"

    def dropped(drops: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in drops.items())

    rows = []
    for i in net["interfaces"]:
        peers = ", ".join(
            f"{p['name'] or '?'} {p['address']}"
            + (f" ({p['dropped']} dropped)" if p["dropped"] else "")
            for p in i["peers"][:5]
        )
        more = len(i["peers"]) - 5
        rows.append(
            (
                f"{i['name']} {i['address']}",
                f"{i['status']}: beacons {i['beacons_out']} out (last {ago(i['last_out'])}), "
                f"{i['beacons_in']} in (last {ago(i['last_in'])}); "
                f"from {peers or 'nobody'}{f' and {more} more' if more > 0 else ''}; "
                f"drops {dropped(i['drops'])}",
            )
        )
    u = net["unicast"]
    rows.append(
        (
            f"unicast {u['address']}",
            f"{u['status']}: {u['datagrams_in']} in (last {ago(u['last_in'])}), "
            f"{u['datagrams_out']} out; drops {dropped(u['drops'])}",
        )
    )
    return rows


def discovery_text(d: dict[str, Any]) -> str:
    """The discovery part of an ``info`` answer, in words."""
    if not d["enabled"]:
        return "off"
    return f"{d['mode']} {d['group']} on {', '.join(d['interfaces'])}"


def event_line(e: dict[str, Any]) -> str:
    """One line of rich markup describing a ``monitor`` event."""
    t = datetime.datetime.fromtimestamp(float(e.get("time", 0))).strftime("%H:%M:%S.%f")[:-3]
    kind = str(e.get("event"))
    if "member" in e:
        m = e["member"]
        style = STATE_STYLE.get(str(m["state"]), "white")
        return f"{t} [{style}]{kind:<17}[/] {m['name']} {m['address']} inc {m['incarnation']}"
    if kind == "trace":
        return f"{t} [bright_black]trace {e['op']} {e['node']}: {e['detail']}[/]"
    # Escaped: a foreign peer's text (a ZRE SHOUT) must not be taken for markup.
    return f"{t} [magenta]{escape(kind)}[/] " + escape(
        json.dumps({k: v for k, v in e.items() if k not in ("event", "time")})
    )
