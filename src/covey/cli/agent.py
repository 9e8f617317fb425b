"""``covey agent``: run an agent until SIGTERM/SIGINT.

Settings come from flags, then ``COVEY_*`` environment variables, then the ``--config``
TOML file, then defaults. A bad value prints one line naming the field (``covey: config
error: bind: port must be 1..65535``) and exits with status 2; nothing is started.
"""

from pathlib import Path
from typing import Annotated

import typer

from covey.cli.options import app


@app.command(no_args_is_help=False)
def agent(
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML configuration file.", show_default=False)
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Node name (env COVEY_NAME; default: host name).", show_default=False),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(help="Cluster name (env COVEY_CLUSTER; default: covey).", show_default=False),
    ] = None,
    bind: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT for UDP and TCP, [IPV6]:PORT for IPv6, [::] for every IPv6 address "
            "(env COVEY_BIND; default: 0.0.0.0:7946).",
            show_default=False,
        ),
    ] = None,
    advertise: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT peers should use, if not the bind address (env COVEY_ADVERTISE).",
            show_default=False,
        ),
    ] = None,
    interface: Annotated[
        list[str] | None,
        typer.Option(
            "--interface",
            help="Interface name or address for discovery beacons; repeatable "
            "(default: every non-loopback interface that is up, by the group's IP family).",
            show_default=False,
        ),
    ] = None,
    multicast: Annotated[
        str | None,
        typer.Option(
            help="GROUP:PORT of discovery beacons; a broadcast address selects broadcast, "
            "[ff15::…]:PORT an IPv6 group "
            "(default: 239.192.77.1:7947, shared by every agent on a host).",
            show_default=False,
        ),
    ] = None,
    no_multicast: Annotated[
        bool, typer.Option("--no-multicast", help="No multicast/broadcast discovery; use --join.")
    ] = False,
    join: Annotated[
        list[str] | None,
        typer.Option(
            "--join", help="HOST:PORT of a member to join through; repeatable.", show_default=False
        ),
    ] = None,
    srv: Annotated[
        str | None,
        typer.Option(
            help="DNS SRV name whose targets are joined as seeds, e.g. _covey._udp.prod.example "
            "(env COVEY_SRV).",
            show_default=False,
        ),
    ] = None,
    srv_resolver: Annotated[
        str | None,
        typer.Option(
            help="IP[:PORT] of the DNS server asked for --srv (default: the system's resolver).",
            show_default=False,
        ),
    ] = None,
    srv_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between two SRV resolutions (default 30).", show_default=False),
    ] = None,
    zre: Annotated[
        bool, typer.Option("--zre", help="Also be a ZRE v2 node beside Zyre/pyre peers.")
    ] = False,
    zre_port: Annotated[
        int | None, typer.Option(help="UDP port of ZRE beacons (default 5670).", show_default=False)
    ] = None,
    zre_group: Annotated[
        list[str] | None,
        typer.Option("--zre-group", help="ZRE group to JOIN; repeatable.", show_default=False),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="File of Fernet keys, one per line; the first encrypts (env COVEY_KEY_FILE).",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Directory for the node identity and the control socket.", show_default=False
        ),
    ] = None,
    http: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of the HTTP status API (off by default).", show_default=False),
    ] = None,
    control: Annotated[
        Path | None,
        typer.Option(
            help=(
                "Unix control socket (default: DATA_DIR/covey.sock, else "
                "CLUSTER-NAME.sock in $XDG_RUNTIME_DIR/covey, /run/covey or /tmp/covey-UID)."
            ),
            show_default=False,
        ),
    ] = None,
    rpc: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT of the Fernet-authenticated remote control endpoint.",
            show_default=False,
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="KEY=VALUE tag; repeatable.", show_default=False),
    ] = None,
    plaintext: Annotated[
        bool, typer.Option("--plaintext", help="Send and accept unencrypted traffic (no key file).")
    ] = False,
    local_channel: Annotated[
        bool,
        typer.Option(
            "--local-channel",
            help="Talk to agents of this host over unix sockets, not loopback UDP/TCP.",
        ),
    ] = False,
    probe_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between probes (default: 1.0).", show_default=False),
    ] = None,
    probe_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds to wait for a probe ack (default: 0.5).", show_default=False),
    ] = None,
    gossip_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between gossip rounds (default: 0.2).", show_default=False),
    ] = None,
    reap_failed_after: Annotated[
        float | None,
        typer.Option(
            help="Seconds a failed member is kept before reaped (default: 3600); it is"
            " still re-contacted as lost afterwards.",
            show_default=False,
        ),
    ] = None,
    reconnect_max: Annotated[
        float | None,
        typer.Option(
            help="Longest back-off between re-contacts of failed or lost members and seeds"
            " (default: 30, at least 2).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info, warning or error (default: info).", show_default=False),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            help="text (default) or json: one JSON object per line, for a journal or a "
            "log shipper.",
            show_default=False,
        ),
    ] = None,
    local_version: Annotated[
        str | None,
        typer.Option(
            help="This node's version (integer or dotted), shared as a fact.", show_default=False
        ),
    ] = None,
    version_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding this node's version (re-read on change).", show_default=False
        ),
    ] = None,
    fact: Annotated[
        list[str] | None,
        typer.Option(
            "--fact", help="KEY=VALUE fact published at start; repeatable.", show_default=False
        ),
    ] = None,
    export_dir: Annotated[
        Path | None,
        typer.Option(
            help="Mirror the shared state into this directory, one file per key.",
            show_default=False,
        ),
    ] = None,
    export_command: Annotated[
        str | None,
        typer.Option(
            help="Shell command run per change of the shared state (env + stdin).",
            show_default=False,
        ),
    ] = None,
    event_handler: Annotated[
        list[str] | None,
        typer.Option(
            "--event-handler",
            help="Shell command run per event (COVEY_EVENT...); repeatable.",
            show_default=False,
        ),
    ] = None,
    action_handler: Annotated[
        str | None,
        typer.Option(help="Shell command that runs cluster-wide actions here.", show_default=False),
    ] = None,
    versions_count_failed: Annotated[
        bool,
        typer.Option(
            "--versions-count-failed", help="Count failed (not left) members in the lowest version."
        ),
    ] = False,
    no_election: Annotated[
        bool, typer.Option("--no-election", help="Switch the leader election off.")
    ] = False,
    expected_votes: Annotated[
        int | None,
        typer.Option(
            help="Cluster size for the election quorum (same on every node); without it "
            "the size is tracked (the largest membership seen alive).",
            show_default=False,
        ),
    ] = None,
    election_bootstrap: Annotated[
        float | None,
        typer.Option(
            help="Seconds a starting node collects peers before it stands, without "
            "--expected-votes (default: 4).",
            show_default=False,
        ),
    ] = None,
    two_node: Annotated[
        bool, typer.Option("--two-node", help="Two-node election mode (expected votes 2).")
    ] = False,
    election_heartbeat: Annotated[
        float | None,
        typer.Option(
            help="Leader heartbeat interval in seconds (default: 0.2).", show_default=False
        ),
    ] = None,
    fence_command: Annotated[
        str | None,
        typer.Option(
            help="Shell command the leader runs to fence a failed node.", show_default=False
        ),
    ] = None,
    heartbeat_disk: Annotated[
        Path | None,
        typer.Option(help="Shared heartbeat disk (see `covey disk format`).", show_default=False),
    ] = None,
    deliveries: Annotated[
        str | None,
        typer.Option(
            help="on (default) or off: off neither owns deliveries nor answers requests.",
            show_default=False,
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="redis://HOST:PORT/DB: share the delivery schedule between nodes "
            "(default: SQLite in --data-dir).",
            show_default=False,
        ),
    ] = None,
    delivery_handler: Annotated[
        str | None,
        typer.Option(
            help="Shell command run per delivery request: payload on stdin, "
            "COVEY_DELIVERY_ID/_STAGE/_DEADLINE in the environment, stdout the receipt; "
            "non-zero exit refuses.",
            show_default=False,
        ),
    ] = None,
    delivery_deadline: Annotated[
        float | None,
        typer.Option(
            help="Seconds an asked member has to answer before it is replaced (default: 30).",
            show_default=False,
        ),
    ] = None,
    notify: Annotated[
        list[str] | None,
        typer.Option(
            "--notify",
            help="URL POSTed a signed JSON body per receipt, stage and end of a delivery "
            "this node owns; repeatable.",
            show_default=False,
        ),
    ] = None,
    trace_buffer: Annotated[
        int | None,
        typer.Option(
            help="Trace records kept in the ring buffer (default 10000; 0: no tracing).",
            show_default=False,
        ),
    ] = None,
    collector: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT of a trace collector (`covey collector`) to stream records to.",
            show_default=False,
        ),
    ] = None,
    strict_permissions: Annotated[
        bool,
        typer.Option(
            "--strict-permissions",
            help="Refuse a key file that group or others may read (default: a warning).",
        ),
    ] = False,
    http_token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the bearer token that mutating HTTP calls need "
            "(Authorization: Bearer TOKEN); without it they are refused.",
            show_default=False,
        ),
    ] = None,
    notify_secret: Annotated[
        str | None,
        typer.Option(
            help="HMAC-SHA256 key of the X-Covey-Signature header (better: "
            "COVEY_NOTIFY_SECRET in the environment).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a covey agent until SIGTERM/SIGINT (graceful leave; a second Ctrl-C forces exit).

    Example (loopback only):
    covey agent --name a --cluster demo --bind 127.0.0.1:7946 --interface 127.0.0.1 --key-file key
    """
    options = dict(locals())  # every option is a setting of the same name, but switches
    from covey.cli.agent_start import start
    from covey.cli.target import CommandExit

    try:
        start(options, in_process=False)
    except CommandExit as exc:
        raise typer.Exit(exc.code) from None
