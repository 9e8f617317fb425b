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

import sys

if __name__ == "__main__":
    # asyncio and aiohttp import ssl inside try/except ImportError: None makes them go
    # without it (unless the agent needs it: --ssl, for a Redis scheduler, the HTTP
    # API's /metrics or https webhooks). PyCryptodome likewise falls back from cffi
    # (which parses C headers with pycparser at import) to ctypes: faster to start, to
    # call, and smaller.
    if "--ssl" not in sys.argv:
        sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
    sys.modules.setdefault("cffi", None)  # type: ignore[arg-type]
    from covey.runtime.lean_process import main

    sys.exit(main(sys.argv))
