"""``covey zre``: the ZRE side of an agent started with ``--zre``.

    covey zre peers [--json]             the ZRE peers (also in ``covey members``, kind zre)
    covey zre shout GROUP TEXT...        SHOUT to a ZRE group (one frame per TEXT)
    covey zre whisper PEER TEXT...       WHISPER to one ZRE peer (name or UUID)
    covey zre join GROUP / leave GROUP   JOIN or LEAVE a ZRE group

SHOUTs and WHISPERs received show in ``covey monitor`` (``zre-shout``, ``zre-whisper``).
They reach a running agent like ``covey members`` (``--control``, ``--name``, ``--rpc``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from covey.cli.options import JsonOpt, Target, _plain, _print_json, agent_command, app, console

zre_app = typer.Typer(help="ZRE mode: peers, SHOUT, WHISPER, JOIN, LEAVE.", no_args_is_help=True)
app.add_typer(zre_app, name="zre")

Group = Annotated[str, typer.Argument(help="The ZRE group.")]
Texts = Annotated[list[str], typer.Argument(help="The message, one frame per argument.")]


@agent_command(zre_app, "peers")
def peers(json_: JsonOpt = False, *, target: Target) -> None:
    """List the ZRE peers the agent knows."""
    result = target.request("zre_peers")
    if json_:
        _print_json(result)
    else:
        from covey.cli.render import members_table  # rich's tables only when one is shown

        console.print(members_table(result))


@agent_command(zre_app, "shout")
def shout(group: Group, text: Texts, *, target: Target) -> None:
    """SHOUT to the ZRE peers in GROUP."""
    result = target.request("zre_shout", group=group, content=text)
    _plain(f"shouted to {result['peers']} peer(s) in {group}")


@agent_command(zre_app, "whisper")
def whisper(
    peer: Annotated[str, typer.Argument(help="The peer's name or UUID.")],
    text: Texts,
    *,
    target: Target,
) -> None:
    """WHISPER to one ZRE peer."""
    result = target.request("zre_whisper", peer=peer, content=text)
    _plain(f"whispered to {result['peer']}")


@agent_command(zre_app, "join")
def join(group: Group, *, target: Target) -> None:
    """JOIN a ZRE group."""
    done = target.request("zre_join", group=group)["joined"]
    _plain(f"joined {group}" if done else f"already in {group}")


@agent_command(zre_app, "leave")
def leave(group: Group, *, target: Target) -> None:
    """LEAVE a ZRE group."""
    done = target.request("zre_leave", group=group)["left"]
    _plain(f"left {group}" if done else f"not in {group}")
