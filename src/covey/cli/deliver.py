"""``covey deliver``: acknowledged deliveries (seed 002) on a running agent.

    covey deliver create [--stage K:SEL[@30s]]... [--deadline 30s] [--expire 10m] [--wait] PAYLOAD|-
    covey deliver show ID [--json]
    covey deliver list [--state S] [--json]
    covey deliver cancel ID

They reach a running agent like ``covey members`` (``--control``, ``--name``, ``--rpc``).
Stages and payloads the agent would refuse are refused here first, with exit status 2;
so is what the agent refuses (K larger than the cluster, a store that waits).
"""

import base64
import sys
import time
from typing import Annotated, Any

import typer

from covey.cli.options import (
    EXIT_CONFIG,
    JsonOpt,
    Target,
    _fail,
    _plain,
    _print_json,
    agent_command,
    app,
)

deliver_app = typer.Typer(
    help="Acknowledged deliveries: payloads that collect receipts, stage by stage.",
    no_args_is_help=True,
)
app.add_typer(deliver_app, name="deliver")

#: Exit status of ``create --wait`` for a delivery that failed or was cancelled, and of
#: ``cancel`` for one that had already ended: 1, an operation that failed, as everywhere.
EXIT_FAILED = 1


def parse_seconds(text: str, what: str) -> float:
    """``30``, ``30s``, ``500ms``, ``2m``, ``1h`` → seconds (exit 2 with the field named)."""
    from covey.core.deliveries.selectors import SelectorError, parse_duration

    try:
        return parse_duration(text, what)
    except SelectorError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None


def _refusal(target: Target, op: str, **args: object) -> Any:
    """One request; a refusal by the agent exits 2 (bad input), no agent exits 1."""
    from covey.runtime.control.client import ClientError

    client = target.client()
    wait = args.get("wait") or args.get("timeout")
    if isinstance(wait, int | float):
        client.timeout = float(wait) + 5.0
    try:
        return client.request(op, **args)
    except ClientError as exc:
        text = str(exc)
        unreachable = text.startswith(("cannot reach", "the agent closed", "the agent did not"))
        raise _fail(text, 1 if unreachable else EXIT_CONFIG) from None


def _state_line(d: dict[str, Any]) -> str:
    stages = " ".join(
        f"{len(s['receipts']) if isinstance(s['receipts'], list) else s['receipts']}"
        f"/{s['required']}"
        for s in d["stages"]
    )
    why = f"  {d['reason']}" if d.get("reason") else ""
    return f"{d['id']}  {d['state']:<9} stage {d['stage']}  [{stages}]{why}"


@agent_command(deliver_app, "create")
def create(
    payload: Annotated[str, typer.Argument(help="The payload text, or - to read it from stdin.")],
    stage: Annotated[
        list[str] | None,
        typer.Option(
            "--stage",
            help="K:SELECTOR[@DEADLINE], repeatable, in order: 3:any, 2:role=db@10s, "
            "1:node-a,node-b; K!: excludes members that answered an earlier stage. "
            "Default: 1:any.",
            show_default=False,
        ),
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(
            help="How long an asked member has to answer before it is replaced, for "
            "stages without @DEADLINE (30, 30s, 500ms; default: the agent's, 30s).",
            show_default=False,
        ),
    ] = None,
    expire: Annotated[
        str | None,
        typer.Option(help="Fail the delivery if not complete by then (10m).", show_default=False),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it ended; show it.")] = False,
    timeout: Annotated[str, typer.Option(help="Longest --wait (default 5m).")] = "5m",
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Create a delivery on the agent (it owns it); print its id.

    With --wait: wait until it is complete (exit 0), failed or cancelled (exit 1).
    """
    from covey.core.deliveries import SelectorError, StageSpec
    from covey.core.deliveries.config import DeliveriesConfig

    stages = stage or ["1:any"]
    for text in stages:
        try:
            StageSpec.parse(text)
        except SelectorError as exc:
            raise _fail(f"stage: {exc}", EXIT_CONFIG) from None
    data = sys.stdin.buffer.read() if payload == "-" else payload.encode()
    limit = DeliveriesConfig().payload_limit
    if len(data) > limit:
        raise _fail(f"payload: {len(data)} octets is over the limit of {limit}", EXIT_CONFIG)
    args: dict[str, object] = {
        "payload_b64": base64.b64encode(data).decode(),
        "stages": stages,
    }
    if deadline is not None:
        args["deadline"] = parse_seconds(deadline, "deadline")
    if expire is not None:
        args["expire"] = parse_seconds(expire, "expire")
    if wait:
        args["wait"] = parse_seconds(timeout, "timeout")
    result = _refusal(target, "deliver_create", **args)
    if not wait:
        _print_json({"id": result["id"]}) if json_ else _plain(result["id"])
        return
    _print_json(result) if json_ else _plain(_state_line(result))
    raise typer.Exit(0 if result["state"] == "complete" else EXIT_FAILED)


def _show_text(d: dict[str, Any]) -> None:
    _plain(f"id        {d['id']}")
    _plain(f"state     {d['state']}" + (f"  ({d['reason']})" if d.get("reason") else ""))
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["created"]))
    _plain(f"created   {created}   owner {d['owner'][:12]}   {d['size']} octets")
    for i, s in enumerate(d["stages"]):
        mark = ">" if i == d["stage"] and d["state"] in ("pending", "stage") else " "
        _plain(
            f"{mark} stage {i}: {len(s['receipts'])}/{s['required']} of {s['selector']}"
            f"  asked {len(s['asked'])}  waiting {len(s['waiting'])}  refused {s['refused']}"
        )
        for r in s["receipts"]:
            _plain(f"      receipt {r['node'][:12]}  {r['result'][:60]!r}")
        for r in s["refusals"]:
            _plain(f"      refusal {r['node'][:12]}  {r['reason']}")
    for n in d.get("notifications", []):
        _plain(f"  notify {n['event']:<8} {n['url']}  {n['state']} ({n['attempts']} tries)")


@agent_command(deliver_app, "show")
def show(
    item: Annotated[str, typer.Argument(metavar="ID", help="The delivery's id.")],
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Show one delivery: its state, and per stage who was asked and who answered."""
    d = _refusal(target, "deliver_show", id=item)
    _print_json(d) if json_ else _show_text(d)


@agent_command(deliver_app, "list")
def list_(
    state: Annotated[
        str | None,
        typer.Option(help="Only: pending, stage, complete, failed, cancelled.", show_default=False),
    ] = None,
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """List the deliveries this agent owns, oldest first."""
    args = {} if state is None else {"state": state}
    items = _refusal(target, "deliver_list", **args)
    if json_:
        _print_json(items)
    else:
        for d in items:
            _plain(_state_line(d))


@agent_command(deliver_app, "cancel")
def cancel(
    item: Annotated[str, typer.Argument(metavar="ID", help="The delivery's id.")],
    json_: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Cancel a delivery this agent owns (exit 1 if it had already ended)."""
    r = _refusal(target, "deliver_cancel", id=item)
    _print_json(r) if json_ else _plain("cancelled" if r["cancelled"] else "already ended")
    raise typer.Exit(0 if r["cancelled"] else EXIT_FAILED)
