"""Entry of the lean agent process: ``python -m covey.agentd --config-fd FD``.

It sits outside :mod:`covey.runtime` so that it runs before asyncio is imported: the
agent never speaks TLS (remote control is Fernet-sealed, the HTTP API is plain), so the
standard library's ``ssl`` module, which asyncio loads whenever it can, is kept out.
That is about 4 MiB of OpenSSL bindings per agent (kept when the configuration needs
them: the Redis client and ``prometheus_client`` — the HTTP API's ``/metrics`` — import
``ssl``, and https:// webhooks speak it); PyCryptodome is kept on ctypes rather than
cffi the same way. See :mod:`covey.runtime.lean_process`.
"""

from __future__ import annotations

import struct
import sys


def prepare_imports(*, ssl: bool) -> None:
    """Keep what the agent does not use out of this process, before asyncio and
    PyCryptodome are imported: ``ssl`` unless ``ssl`` is true, and cffi.

    asyncio and aiohttp import ssl inside try/except ImportError: None makes them go
    without it (it is needed only for a Redis scheduler, the HTTP API's /metrics or
    https webhooks). PyCryptodome likewise falls back from cffi (which parses C headers
    with pycparser at import) to ctypes: faster to start, to call, and smaller. Its
    ctypes loader asks ``platform.architecture()`` once, which imports ``platform`` and
    runs ``file -b`` on the interpreter in a subprocess (about 10 ms of a start); only
    the linkage's "Win" prefix is used from the answer, so on Linux it is given here.
    """
    if not ssl:
        sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
    sys.modules.setdefault("cffi", None)  # type: ignore[arg-type]
    if sys.platform.startswith("linux"):
        try:
            from Crypto.Util import _raw_api
        except ImportError:  # pragma: no cover - PyCryptodome is a dependency
            return
        cached = getattr(_raw_api, "cached_architecture", None)
        if isinstance(cached, list) and not cached:
            cached[:] = [f"{struct.calcsize('P') * 8}bit", "ELF"]


if __name__ == "__main__":
    prepare_imports(ssl="--ssl" in sys.argv)
    from covey.runtime.lean_process import main

    sys.exit(main(sys.argv))
