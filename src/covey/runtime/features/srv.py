"""Discovery by DNS SRV: the targets of one SRV name become join seeds.

Where multicast cannot reach (seed 004), an operator publishes one SRV record per agent
(``_covey._udp.prod.example. SRV 0 0 7946 node1.prod.example.``) and starts every agent
with ``--srv _covey._udp.prod.example``. :class:`SrvDiscoveryFeature` resolves the name at
start and every ``srv_interval`` seconds with dnspython's asyncio resolver (never
blocking the event loop, each resolution bounded in time), turns each record into a
``host:port`` address (an IP target as it is, a name through its A records — AAAA for
an agent bound to an IPv6 address —, taken from the answer's additional section when
the server sent them; targets of the other family are left out) and hands the addresses it
had not seen in the previous answer to the core as join seeds — the path of ``covey
join`` and ``--join``, so the core retries them until one answers.

A record that disappears only stops being contacted: who is a member stays SWIM's
business (a live member whose record was removed stays alive). A resolver that is down,
or answers NXDOMAIN, SERVFAIL or no record, is shown in ``covey info`` (``srv``:
``last_error``) and logged once per change, not once per attempt; attempts go on with a
back-off that doubles from :data:`FIRST_RETRY` up to ``srv_interval``, so discovery
resumes once the resolver is back.

dnspython is imported only when ``srv`` is set: other agents never load it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from covey.core import Address, format_address
from covey.runtime.config.model import AgentConfig
from covey.runtime.features.base import Feature

if TYPE_CHECKING:
    from covey.runtime.context import AgentContext

log = logging.getLogger("covey.srv")

#: Seconds before the first retry after a failed resolution (doubling, up to the interval).
FIRST_RETRY = 0.5
#: Most seconds one DNS query may take (shorter when the interval is).
MAX_LIFETIME = 5.0


class SrvDiscoveryFeature(Feature):
    """Resolves ``config.srv`` periodically and joins the targets it had not seen."""

    name = "srv"

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.resolver_text = _resolver_text(config.srv_resolver)
        #: Wall time of the last successful resolution, None before one.
        self.last_ok: float | None = None
        #: What went wrong in the last resolution (None when it succeeded).
        self.last_error: str | None = None
        #: The addresses of the last successful answer, in record order.
        self.targets: tuple[Address, ...] = ()
        #: Seeds handed to the core so far (new targets only, over the agent's life).
        self.contacted = 0
        self.resolutions = 0
        self.failures = 0
        self._logged: object = None  # what the log last said, to say each change once
        self._resolver: Any = None

    @property
    def enabled(self) -> bool:
        """True when an SRV name is configured."""
        return self.config.srv is not None

    def start(self, ctx: AgentContext) -> None:
        """Resolve at once, then every ``srv_interval`` seconds (sooner after errors)."""
        if self.enabled:
            ctx.spawn(self._loop(ctx))

    async def _loop(self, ctx: AgentContext) -> None:
        interval = self.config.srv_interval
        failed_in_a_row = 0
        while ctx.running:
            if await self.resolve_once(ctx):
                failed_in_a_row = 0
                delay = interval
            else:
                failed_in_a_row += 1
                delay = min(interval, FIRST_RETRY * 2 ** min(failed_in_a_row - 1, 16))
            await asyncio.sleep(delay)

    async def resolve_once(self, ctx: AgentContext) -> bool:
        """One resolution: update the state, join the new targets; True when it succeeded."""
        self.resolutions += 1
        lifetime = max(1.0, min(MAX_LIFETIME, self.config.srv_interval))
        try:
            async with asyncio.timeout(3 * lifetime):  # a bound even if the library hangs
                targets = await self._lookup(lifetime)
        except Exception as exc:  # every failure is reported, none ends discovery
            self.failures += 1
            what = _describe(exc, self.config.srv or "", lifetime)
            self.last_error = f"{what} (resolver {self.resolver_text})"
            self._say(("error", self.last_error), logging.WARNING, "srv: %s", self.last_error)
            return False
        self.last_ok = time.time()
        self.last_error = None
        before = set(self.targets)
        new = [t for t in targets if t not in before]
        self.targets = targets
        shown = ", ".join(f"{h}:{p}" for h, p in targets) or "none"
        self._say(("ok", targets), logging.INFO, "srv: %s gives %s", self.config.srv, shown)
        if new and ctx.running:
            try:
                ctx.join(new)
            except RuntimeError:  # stopped meanwhile
                return True
            self.contacted += len(new)
        return True

    async def _lookup(self, lifetime: float) -> tuple[Address, ...]:
        """The (host, port) targets of the SRV name, by priority then weight."""
        import dns.asyncresolver
        import dns.rdatatype

        if self._resolver is None:
            configure = self.config.srv_resolver is None
            resolver = dns.asyncresolver.Resolver(configure=configure)
            if self.config.srv_resolver is not None:
                resolver.nameservers = [self.config.srv_resolver[0]]
                resolver.port = self.config.srv_resolver[1]
            else:
                self.resolver_text = "system (" + ", ".join(map(str, resolver.nameservers)) + ")"
            self._resolver = resolver
        resolver = self._resolver
        resolver.timeout = resolver.lifetime = lifetime
        answer = await resolver.resolve(self.config.srv, "SRV", lifetime=lifetime)
        # Targets become addresses of the agent's own family: its one UDP socket speaks
        # nothing else (AAAA records for an agent bound to an IPv6 address).
        ipv6 = ":" in self.config.bind[0]
        rdtype = "AAAA" if ipv6 else "A"
        glue: dict[str, list[str]] = {}
        for rrset in answer.response.additional:
            if rrset.rdtype == dns.rdatatype.from_text(rdtype):
                name = rrset.name.to_text(omit_final_dot=True).lower()
                glue.setdefault(name, []).extend(r.address for r in rrset)
        records = sorted(answer, key=lambda r: (r.priority, -r.weight))
        out: list[Address] = []
        for rec in records:
            host = rec.target.to_text(omit_final_dot=True)
            if host == "":  # "." : the service is decidedly not available (RFC 2782)
                continue
            if _is_ip(host):
                ips = [host] if (":" in host) == ipv6 else []
            elif host.lower() in glue:
                ips = glue[host.lower()]
            else:
                a = await resolver.resolve(host, rdtype, lifetime=lifetime)
                ips = [r.address for r in a]
            for ip in ips:
                if (ip, rec.port) not in out:
                    out.append((ip, int(rec.port)))
        return tuple(out)

    def _say(self, key: object, level: int, fmt: str, *args: object) -> None:
        """Log once per change of ``key`` (a steady state is not repeated every interval)."""
        if key != self._logged:
            self._logged = key
            log.log(level, fmt, *args)

    def info(self) -> Mapping[str, object]:
        if not self.enabled:
            return {}
        return {
            "name": self.config.srv,
            "resolver": self.resolver_text,
            "interval": self.config.srv_interval,
            "last_ok": None if self.last_ok is None else round(self.last_ok, 3),
            "last_error": self.last_error,
            "targets": [format_address(t) for t in self.targets],
            "contacted": self.contacted,
            "resolutions": self.resolutions,
            "failures": self.failures,
        }


def _resolver_text(addr: Address | None) -> str:
    return "system" if addr is None else format_address(addr)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _describe(exc: BaseException, name: str, lifetime: float) -> str:
    """One line saying what went wrong, for ``covey info`` and the log."""
    import dns.resolver

    if isinstance(exc, dns.resolver.NXDOMAIN):
        return f"NXDOMAIN: {name} does not exist"
    if isinstance(exc, dns.resolver.NoAnswer):
        return f"no SRV record at {name}"
    if isinstance(exc, dns.resolver.LifetimeTimeout | TimeoutError):
        return f"no answer within {lifetime:g} s (resolver down or unreachable?)"
    if isinstance(exc, dns.resolver.NoNameservers):
        # SERVFAIL, REFUSED, or every server unreachable (connection refused).
        return "no server answered: " + " ".join(str(exc).split())
    if isinstance(exc, dns.resolver.NoResolverConfiguration):
        return "no system resolver configured (give --srv-resolver)"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
