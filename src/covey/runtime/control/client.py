"""Blocking clients for a running agent: the unix control socket, the sealed RPC endpoint
and the HTTP status API. Used by the CLI, the demo and the tests.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only what a plain unix-socket request needs is imported here, so that the CLI's common
# commands start fast: not the server (asyncio), the configuration model or the cipher
# (both load the protocol core); those come with --rpc, --config or a key file.
from covey.runtime.config.errors import ConfigError
from covey.runtime.control.codec import ControlError, LineCodec

if TYPE_CHECKING:
    from covey.core import Address


class ClientError(Exception):
    """The agent could not be reached, or it refused the request (message says which)."""


class ControlClient:
    """Talks the newline-delimited JSON control protocol to one agent.

    Args:
        path: the agent's unix control socket, or
        rpc: the (host, port) of its ``--rpc`` endpoint, together with
        keys: the cluster's Fernet keys (required for ``rpc``).
        timeout: seconds to wait for connect and for each answer.
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        rpc: Address | None = None,
        keys: list[bytes] | None = None,
        timeout: float = 5.0,
    ) -> None:
        if (path is None) == (rpc is None):
            raise ValueError("give exactly one of path and rpc")
        if rpc is not None and not keys:
            raise ValueError("the rpc endpoint needs the cluster keys")
        self.path = None if path is None else Path(path)
        self.rpc = rpc
        self.timeout = timeout
        self._codec: LineCodec = LineCodec()
        if rpc is not None and keys:
            from covey.runtime.control.codec import SealedCodec

            self._codec = SealedCodec(keys)

    def _connect(self) -> socket.socket:
        try:
            if self.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(str(self.path))
                except BaseException:
                    sock.close()
                    raise
                return sock
            assert self.rpc is not None
            return socket.create_connection(self.rpc, timeout=self.timeout)
        except OSError as exc:
            # Written out rather than covey.core.format_address: importing anything in
            # covey.core loads the core package, which a plain `covey members` must not pay.
            if self.rpc is None:
                where = str(self.path)
            else:
                host, port = self.rpc
                where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise ClientError(f"cannot reach the agent at {where}: {exc.strerror or exc}") from None

    def _decode(self, line: bytes) -> Any:
        if not line:
            raise ClientError("the agent closed the connection without answering")
        return open_answer(self._codec, line, "the agent")

    def _challenge(self, fh: Any) -> dict[str, object]:
        """On the sealed endpoint: the connection's challenge, to seal into each request
        (runtime/control/server.py's serve_connection)."""
        if self.rpc is None:
            return {}
        try:
            hello = json.loads(fh.readline())
        except (ValueError, TimeoutError):
            raise ClientError("the agent sent no challenge (not a covey rpc endpoint?)") from None
        if not isinstance(hello, dict) or not isinstance(hello.get("challenge"), str):
            raise ClientError("the agent sent no challenge (not a covey rpc endpoint?)")
        return {"challenge": hello["challenge"]}

    def request(self, op: str, **args: object) -> Any:
        """Send one request and return its ``result``; raises :class:`ClientError`."""
        with self._connect() as sock, sock.makefile("rb") as fh:
            bound = self._challenge(fh)
            sock.sendall(self._codec.encode({"op": op, **args, **bound}))
            try:
                answer = self._decode(fh.readline())
            except TimeoutError:
                raise ClientError("the agent did not answer in time") from None
        if not isinstance(answer, dict) or "ok" not in answer:
            raise ClientError("malformed answer from the agent")
        if not answer["ok"]:
            raise ClientError(str(answer.get("error", "request refused")))
        return answer.get("result")

    def monitor(self) -> Iterator[dict[str, Any]]:
        """Yield event objects until the agent stops (or the caller stops iterating)."""
        with self._connect() as sock, sock.makefile("rb") as fh:
            bound = self._challenge(fh)
            sock.sendall(self._codec.encode({"op": "monitor", **bound}))
            sock.settimeout(None)
            first = self._decode(fh.readline())
            if not isinstance(first, dict) or not first.get("ok"):
                raise ClientError(str(first.get("error") if isinstance(first, dict) else first))
            for line in fh:
                event = self._decode(line)
                if isinstance(event, dict):
                    yield event

    # Convenience wrappers.

    def members(self) -> list[dict[str, Any]]:
        """Every member the agent knows."""
        return list(self.request("members"))

    def info(self) -> dict[str, Any]:
        """Self, counters and drop reasons."""
        return dict(self.request("info"))

    def self_member(self) -> dict[str, Any]:
        """The agent's own record."""
        return dict(self.request("self"))


def open_answer(codec: Any, line: bytes, peer: str, error: type[ClientError] | None = None) -> Any:
    """Open one answer line of ``peer`` ("the agent", "the collector"), sealed or plain.

    A sealed endpoint answers what it could not open (a wrong key, a replay) with a plain
    JSON refusal, since the client could not open a sealed one: that becomes
    ``error`` (default :class:`ClientError`) with the peer's reason.
    """
    fail = error or ClientError
    try:
        return codec.decode(line)
    except ControlError:
        try:
            plain = json.loads(line)
        except ValueError:
            raise fail(f"cannot open the answer of {peer} (wrong key?)") from None
        if isinstance(plain, dict) and plain.get("ok") is False:
            reason = plain.get("error")
            hint = " (wrong key?)" if reason == "unauthenticated" else ""
            raise fail(f"{peer} refused: {reason}{hint}") from None
        raise fail(f"unexpected answer from {peer}") from None


def http_get(url: str, path: str, timeout: float = 5.0) -> Any:
    """GET ``url`` + ``path`` from an agent's HTTP API and decode the JSON body."""
    import urllib.error  # only the CLI needs it: keeps http/email out of the agent
    import urllib.request

    full = url.rstrip("/") + path
    if "://" not in full:
        full = "http://" + full
    try:
        with urllib.request.urlopen(full, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise ClientError(f"{full}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"cannot reach {full}: {reason}") from None


def control_path(
    control: Path | None,
    name: str | None,
    environ: Mapping[str, str],
    *,
    data_dir: Path | None = None,
    config: Path | None = None,
) -> Path:
    """Find a local agent's control socket, in this order: the explicit path,
    ``$COVEY_CONTROL``, the data directory (``data_dir``, ``$COVEY_DATA_DIR``), a config
    file (``config``, ``$COVEY_CONFIG``: its ``control``, ``data_dir``, or ``cluster`` and
    ``name``), the agent named ``name`` (``$COVEY_NAME``) in the runtime directory, or the
    only agent there (runtime/control/paths.py).

    Raises:
        ClientError: none or several match, or the config file cannot be read.
    """
    from covey.runtime.control.paths import DATA_DIR_SOCKET, candidates, runtime_dir

    if control is not None:
        return control
    if environ.get("COVEY_CONTROL"):
        return Path(environ["COVEY_CONTROL"])
    data_dir = data_dir or (
        Path(environ["COVEY_DATA_DIR"]) if environ.get("COVEY_DATA_DIR") else None
    )
    if data_dir is not None:
        return data_dir / DATA_DIR_SOCKET
    if config is None and environ.get("COVEY_CONFIG"):
        config = Path(environ["COVEY_CONFIG"])
    if config is not None:
        from covey.runtime.config.sources import build_config, read_toml

        try:
            settings = read_toml(config)
            if name is not None:
                settings["name"] = name
            return build_config({"plaintext": True, **settings, "key_file": None}).control_path
        except ConfigError as exc:
            raise ClientError(f"config error: {exc}") from None
    name = name or environ.get("COVEY_NAME")
    found = candidates(environ, name)
    if len(found) == 1:
        return found[0]
    where = runtime_dir(environ)
    if not found:
        who = f"agent {name!r}" if name else "agent"
        raise ClientError(
            f"no {who} found in {where}: give --control PATH, --data-dir DIR or --config FILE"
        )
    shown = ", ".join(p.name for p in found)
    raise ClientError(f"several agents found in {where} ({shown}): give --name or --control")


def connect(
    *,
    control: Path | None = None,
    name: str | None = None,
    rpc: str | None = None,
    key_file: Path | None = None,
    environ: Mapping[str, str],
    data_dir: Path | None = None,
    config: Path | None = None,
) -> ControlClient:
    """A client for the agent the CLI options designate (``--rpc`` needs a key file).

    Raises:
        ConfigError: ``rpc`` or the key file is wrong.
        ClientError: no local agent could be designated.
    """
    if rpc is not None:
        from covey.runtime.config.sources import load_keys, parse_address

        if key_file is None and environ.get("COVEY_KEY_FILE"):
            key_file = Path(environ["COVEY_KEY_FILE"])
        if key_file is None:
            raise ConfigError("key_file", "required with --rpc")
        return ControlClient(rpc=parse_address("rpc", rpc), keys=list(load_keys(key_file)))
    return ControlClient(control_path(control, name, environ, data_dir=data_dir, config=config))
