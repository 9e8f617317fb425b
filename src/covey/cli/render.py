"""Rich renderings shared by the CLI and the demo: member tables, info, event lines."""

from __future__ import annotations

import datetime
import json
from typing import Any

from rich.table import Table

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
    for k, v in rows:
        table.add_row(k, v)
    return table


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
    return f"{t} [magenta]{kind}[/] " + json.dumps(
        {k: v for k, v in e.items() if k not in ("event", "time")}
    )
