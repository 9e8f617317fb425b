"""Checks of the DNS SRV discovery settings (``srv``, ``srv_resolver``, ``srv_interval``).

Kept apart from :mod:`covey.runtime.config.model` (which raises the error) and free of
dnspython: validating a configuration must not load the resolver.
"""

from __future__ import annotations

import ipaddress
import math
import re

from covey.core import Address

#: One DNS label: letters, digits, hyphens, and the leading underscore of SRV labels.
_LABEL = re.compile(r"^_?[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")
#: Bounds of ``srv_interval`` in seconds: faster would hammer a DNS server, slower is
#: no discovery at all.
MIN_INTERVAL = 0.1
MAX_INTERVAL = 86_400.0


def check_srv(
    name: str | None, resolver: Address | None, interval: float
) -> tuple[str, str] | None:
    """``(field, what is wrong)`` for the first bad SRV setting, or None when all are good.

    ``name`` must be a DNS name (labels of 1..63 characters, 253 in all; a final dot is
    allowed); ``resolver`` an IP address with a port (the resolver library asks IPs, not
    names), and only together with ``name``; ``interval`` a number of seconds between
    :data:`MIN_INTERVAL` and :data:`MAX_INTERVAL`.
    """
    if not (isinstance(interval, int | float) and math.isfinite(interval)):
        return "srv-interval", "must be a number of seconds"
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        return "srv-interval", f"must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds"
    if name is None:
        if resolver is not None:
            return "srv-resolver", "needs srv (the name to resolve)"
        return None
    text = name.removesuffix(".")
    if not isinstance(name, str) or not text or len(text) > 253:
        return "srv", "must be a DNS name of 1 to 253 characters"
    for label in text.split("."):
        if not _LABEL.match(label):
            return "srv", f"{name!r} is not a DNS name (bad label {label!r})"
    if resolver is not None:
        try:
            ipaddress.ip_address(resolver[0])
        except ValueError:
            return "srv-resolver", f"{resolver[0]!r} must be an IP address"
        if not 1 <= resolver[1] <= 65535:
            return "srv-resolver", "port must be 1..65535"
    return None
