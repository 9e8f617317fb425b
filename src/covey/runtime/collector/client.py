"""A blocking client of the collector: the CLI, the tests and the benchmark use it.

    client = CollectorClient("127.0.0.1:7450", keys)
    client.request("members")                      # one connection, one request
    with client.connect() as conn:                 # one connection, many requests
        conn.send_traces(node_id=..., node=..., cluster=..., boot=..., records=[...])

Every request is sealed with the first key; the answer is opened with any. A refusal
(``{"ok": false, ...}``, sealed or — when our key was not accepted — plain) raises
:class:`CollectorError` with the collector's reason. :func:`traces_request` and
:func:`split_records` build ``traces`` requests that respect both limits of the
protocol (1,000 records, a 1 MiB line once sealed), for any sender.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from covey.core import Address
from covey.runtime.collector.records import MAX_RECORDS, Record
from covey.runtime.config.sources import parse_address
from covey.runtime.control.client import ClientError, open_answer
from covey.runtime.control.server import SealedCodec

#: Most octets of records' JSON in one ``traces`` request: sealing adds a third (base64)
#: and the line limit is 1 MiB.
BATCH_OCTETS = 700_000


class CollectorError(ClientError):
    """The collector could not be reached, or it refused the request (message says why)."""


def traces_request(
    *,
    node_id: str,
    node: str,
    cluster: str,
    boot: float,
    records: Sequence[Record],
    lost: int = 0,
    sent: float | None = None,
) -> dict[str, Any]:
    """The ``traces`` request for ``records`` (``sent``: now, by default)."""
    return {
        "op": "traces",
        "node_id": node_id,
        "node": node,
        "cluster": cluster,
        "boot": boot,
        "sent": time.time() if sent is None else sent,
        "records": list(records),
        "lost": lost,
    }


def split_records(
    records: Sequence[Record], max_records: int = MAX_RECORDS, max_octets: int = BATCH_OCTETS
) -> Iterator[list[Record]]:
    """``records`` in order, cut into batches that fit one ``traces`` request."""
    batch: list[Record] = []
    size = 0
    for rec in records:
        octets = len(json.dumps(rec, separators=(",", ":"))) + 1
        if batch and (len(batch) >= max_records or size + octets > max_octets):
            yield batch
            batch, size = [], 0
        batch.append(rec)
        size += octets
    if batch:
        yield batch


class Connection:
    """One open connection to the collector; requests answered in turn."""

    def __init__(self, sock: socket.socket, codec: SealedCodec, where: str) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")
        self._codec = codec
        self._where = where

    def request(self, op: str, **args: object) -> Any:
        """Send one request and return its ``result``; raises :class:`CollectorError`."""
        try:
            self._sock.sendall(self._codec.encode({"op": op, **args}))
            line = self._file.readline()
        except TimeoutError:
            raise CollectorError(f"the collector at {self._where} did not answer in time") from None
        except OSError as exc:
            raise CollectorError(f"lost the collector at {self._where}: {exc}") from None
        answer = self._decode(line)
        if not isinstance(answer, dict) or "ok" not in answer:
            raise CollectorError("malformed answer from the collector")
        if not answer["ok"]:
            raise CollectorError(f"the collector refused: {answer.get('error')}")
        return answer.get("result")

    def _decode(self, line: bytes) -> Any:
        if not line:
            raise CollectorError(f"the collector at {self._where} closed the connection")
        return open_answer(self._codec, line, "the collector", CollectorError)

    def send_traces(self, **fields: Any) -> dict[str, int]:
        """One ``traces`` request (the fields of :func:`traces_request`); returns
        ``{"stored": k, "duplicates": d}``."""
        request = traces_request(**fields)
        del request["op"]
        return dict(self.request("traces", **request))

    def close(self) -> None:
        """Close the connection."""
        self._file.close()
        self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class CollectorClient:
    """Talks to the collector at ``address`` (``HOST:PORT`` or a pair) with ``keys``.

    Args:
        address: where it listens.
        keys: the cluster keys (the first seals).
        timeout: seconds to wait for connect and for each answer.

    Raises:
        ValueError: the address or a key is malformed (ConfigError for the address).
    """

    def __init__(
        self, address: Address | str, keys: Sequence[bytes], timeout: float = 10.0
    ) -> None:
        self.address = parse_address("address", address)
        self.keys = list(keys)
        self.timeout = timeout
        self._codec = SealedCodec(self.keys)  # checks keys now: ValueError if malformed
        host, port = self.address
        self.where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def connect(self) -> Connection:
        """Open a connection (close it, or use it in a ``with``); raises CollectorError."""
        try:
            sock = socket.create_connection(self.address, timeout=self.timeout)
        except OSError as exc:
            reason = exc.strerror or exc
            raise CollectorError(f"cannot reach the collector at {self.where}: {reason}") from None
        return Connection(sock, self._codec, self.where)

    def request(self, op: str, **args: object) -> Any:
        """One request on a connection of its own; its ``result``."""
        with self.connect() as conn:
            return conn.request(op, **args)
