"""The control protocol's line codecs: plain JSON lines and Fernet-sealed ones.

:class:`LineCodec` is the unix socket's (the file mode is the access control);
:class:`SealedCodec` the ``--rpc`` endpoint's: every line a Fernet token made with the
cluster keys, refused when forged, older than :data:`RPC_TTL` or seen before. Both refuse
JSON nested deeper than :data:`MAX_DEPTH` before the parser could recurse into it.
"""

from __future__ import annotations

import json
import time
from typing import Any

#: Seconds a sealed RPC line stays acceptable.
RPC_TTL = 60

#: Deepest nesting of arrays and objects a control request may have.
MAX_DEPTH = 32


def _nesting(line: bytes) -> int:
    """The deepest bracket nesting of a JSON text (brackets inside strings ignored)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


class ControlError(Exception):
    """A request was refused; the message goes back to the client."""


class LineCodec:
    """Plain JSON lines (the unix socket: the file mode is the access control).

    One codec per endpoint: it also counts the endpoint's open connections.
    """

    def __init__(self) -> None:
        self.open = 0
        #: open connections per peer host (TCP endpoints)
        self.per_peer: dict[str, int] = {}
        #: when a refusal was last logged, and how many were not logged since
        self.refusal_logged = -1e9
        self.refusals_quiet = 0

    def encode(self, obj: object) -> bytes:
        """One JSON object as a line."""
        return json.dumps(obj, separators=(",", ":")).encode() + b"\n"

    def decode(self, line: bytes) -> Any:
        """Parse one line; raises ControlError (also for JSON nested deeper than
        :data:`MAX_DEPTH`, refused before the parser could recurse into it)."""
        brackets = line.count(b"[") + line.count(b"{")  # C speed: most lines stop here
        if brackets > MAX_DEPTH and _nesting(line) > MAX_DEPTH:
            raise ControlError(f"request nested deeper than {MAX_DEPTH} levels")
        try:
            return json.loads(line)
        except (ValueError, RecursionError):
            raise ControlError("request is not JSON") from None


class SealedCodec(LineCodec):
    """JSON lines sealed as Fernet tokens with the cluster keys (the RPC endpoint)."""

    def __init__(self, keys: list[bytes], *, ttl: int = RPC_TTL) -> None:
        # Imported here: the CLI's plain unix-socket client never loads the cipher (nor,
        # through covey.core, the protocol core).
        from covey.core.crypto.fernet import MultiKey

        super().__init__()
        self._fernet = MultiKey(keys)
        self._ttl = ttl
        self._seen: dict[bytes, float] = {}

    def encode(self, obj: object) -> bytes:
        """Seal one JSON object into a token line."""
        line = super().encode(obj).rstrip(b"\n")
        return self._fernet.encrypt_at_time(line, int(time.time())) + b"\n"

    def decode(self, line: bytes) -> Any:
        """Open one token line; raises ControlError when it is forged, old or replayed."""
        from covey.core.crypto.fernet import InvalidToken

        token = line.strip()
        try:
            plain = self._fernet.decrypt_at_time(token, self._ttl, int(time.time()))
        except InvalidToken:
            raise ControlError("unauthenticated") from None
        now = time.monotonic()
        # Tokens are remembered in arrival order (a dict keeps insertion order, the clock
        # is monotonic): forget from the oldest until one is still in the window. Constant
        # time per line, where scanning them all was quadratic under load.
        while self._seen:
            oldest = next(iter(self._seen))
            if self._seen[oldest] + 2 * self._ttl >= now:
                break
            del self._seen[oldest]
        if token in self._seen:
            raise ControlError("replayed request")
        self._seen[token] = now
        return super().decode(plain)
