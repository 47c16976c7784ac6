"""DNS on udp/53: what the device's resolver answers for canary names, and whether it recurses.

One A query per canary (``--dns-expect`` names, else ``DEFAULT_CANARY``), RD and
the DNSSEC OK bit set. Each answer records the rcode, the RA and AD flags and
the addresses, with what was expected: pinned addresses (``--dns-expect``) or
the answer of a resolver the operator trusts (``--trusted-resolver``, asked once
per name and sweep). Silence on the first query is a shut port, not an answer.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from probes.base import HostSnapshot, Phase, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.datagram import DatagramProbe, port_state
from probes.observations import DnsAnswer, Observation, PortState, Service
from probes.options import OptionSet, option, option_set
from probes.wire import udp
from profiles.errors import ProbeError, Refused, UsageError

DEFAULT_CANARY = "example.com"  # RFC 2606 reserved for documentation; any recursive resolver answers it
MAX_CANARIES = 16
_trusted: dict[tuple[str, str], tuple[str, ...]] = {}  # (resolver, name) -> addresses, for this process's sweep


def query_ask(name: str, ctx: ProbeContext) -> udp.Ask[dns.message.Message]:
    """One A query (RD, DO), matched by source and query id, resent once."""
    template, wire = _template(name)
    q = copy.copy(template)  # the template's sections, read only; its own id
    q.id = secrets.randbelow(0x10000)
    data = q.id.to_bytes(2, "big") + wire[2:]

    def parse(reply_data: bytes) -> dns.message.Message | None:
        if reply_data[:2] != data[:2]:  # another query's id: not worth parsing
            return None
        try:
            reply = dns.message.from_wire(reply_data, ignore_trailing=True)
        except dns.exception.DNSException:
            return None
        return reply if q.is_response(reply) else None

    return udp.Ask.resent(lambda _local: data, parse, ctx.timeouts.read, f"dns {name}")


async def query(address: str, port: int, name: str, ctx: ProbeContext) -> dns.message.Message:
    """One A query (RD, DO) and its answer (an ICMP refusal ends it at once)."""
    return await udp.ask(address, port, query_ask(name, ctx), ctx.deadline)


@functools.lru_cache(maxsize=2 * MAX_CANARIES)
def _template(name: str) -> tuple[dns.message.Message, bytes]:
    """The query for ``name`` and its wire form, built once: each query differs only in its id (dnspython
    takes about a third of a millisecond to build and encode one, on the event loop)."""
    q = dns.message.make_query(name, "A", want_dnssec=True)
    return q, q.to_wire()


def parse_address(text: str, flag: str) -> str:
    """An IP address given on the command line, normalised."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError as exc:
        raise UsageError(f"{flag}: {text!r} is not an IP address") from exc


NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")


def parse_expect(items: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """--dns-expect NAME=IP[,IP] items -> ((name, addresses), ...)."""
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        name, sep, addrs = item.partition("=")
        name = name.strip().rstrip(".").lower()
        if not sep or not NAME_RE.fullmatch(name):
            raise UsageError(f"--dns-expect takes NAME=IP[,IP], not {item!r}")
        out[name] = tuple(parse_address(a, "--dns-expect") for a in addrs.split(",") if a.strip())
        if not out[name]:
            raise UsageError(f"--dns-expect {item!r}: no address")
    return tuple(out.items())


@option_set
@dataclass(frozen=True)
class DnsOptions(OptionSet):
    """What a device's resolver's answers are compared with."""

    name: ClassVar[str] = "dns"
    title: ClassVar[str] = "DNS hijack canaries"

    dns_expect: tuple[tuple[str, tuple[str, ...]], ...] = option(
        (),
        flag="--dns-expect",
        kind="append",
        metavar="NAME=IP[,IP]",
        help="a canary name and the addresses it really has; each device's resolver is asked for it and "
        "a different answer fails CIAJ-3.4-DNS-HIJACK (repeatable)",
        parse=parse_expect,
        legacy="dns_expect",
    )
    trusted_resolver: str | None = option(
        None,
        flag="--trusted-resolver",
        metavar="IP",
        help="a resolver you trust: its answers for the canary names are what the devices' must match "
        "(queried once per name; pinned --dns-expect addresses take precedence)",
        parse=lambda text: parse_address(text, "--trusted-resolver"),
        legacy="trusted_resolver",
    )


def addresses(msg: dns.message.Message) -> tuple[str, ...]:
    """The A records of an answer, sorted."""
    out = {rd.to_text() for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset}
    return tuple(sorted(out))


async def expected_answer(name: str, ctx: ProbeContext) -> tuple[tuple[str, ...], str]:
    """What a canary's answer should be, and where that comes from ("": nothing to compare with)."""
    opts = ctx.config.options(DnsOptions)
    pinned = dict(opts.dns_expect).get(name)
    if pinned:
        return tuple(sorted(pinned)), "pinned (--dns-expect)"
    resolver = opts.trusted_resolver
    if resolver is None:
        return (), ""
    key = (resolver, name)
    if key not in _trusted:
        _trusted[key] = addresses(await query(resolver, 53, name, ctx))
    return _trusted[key], f"trusted resolver {resolver}"


def canaries(config: ProbeConfig) -> list[str]:
    """The names every resolver is asked: the --dns-expect names, else the default one."""
    return [n for n, _ in config.options(DnsOptions).dns_expect][:MAX_CANARIES] or [DEFAULT_CANARY]


async def ask_canary(
    address: str, port: int, name: str, service: Service, ctx: ProbeContext, resolver: str = ""
) -> DnsAnswer:
    """One canary asked of the resolver at address:port, with its expected answer; recorded under service."""
    return await judged(name, await query(address, port, name, ctx), service, ctx, resolver)


async def judged(
    name: str, msg: dns.message.Message, service: Service, ctx: ProbeContext, resolver: str = ""
) -> DnsAnswer:
    """A canary's answer, with the answer expected of it."""
    expected, source = await expected_answer(name, ctx)
    return DnsAnswer(
        service,
        name=name,
        rcode=dns.rcode.to_text(msg.rcode()),
        recursion_available=bool(msg.flags & dns.flags.RA),
        authenticated=bool(msg.flags & dns.flags.AD),
        addresses=addresses(msg),
        expected=expected,
        expected_from=source,
        resolver=resolver,
    )


@register
class DnsQuery(DatagramProbe[dns.message.Message]):
    """A queries for the canary names to the device's own resolver."""

    name = "dns"
    phase = Phase.DISCOVERY
    description = "DNS A queries for canary names (RD, DO): answers, recursion, DNSSEC AD flag"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """udp/53, always."""
        return [Service(53, "udp", "dns")]

    def ask(self, target: ProbeTarget, ctx: ProbeContext) -> udp.Ask[dns.message.Message]:
        """The first canary's query."""
        return query_ask(canaries(ctx.config)[0], ctx)

    def unanswered(self, target: ProbeTarget, ctx: ProbeContext, error: ProbeError) -> list[Observation]:
        """Silence or refusal on the first canary is a port state; garbage is not silence."""
        return port_state(target, error)

    async def answered(self, target: ProbeTarget, ctx: ProbeContext, answer: dns.message.Message) -> list[Observation]:
        """The first canary's answer, then each other canary in turn (silence on one of those is a failure)."""
        assert target.service is not None
        names = canaries(ctx.config)
        out: list[Observation] = [await judged(names[0], answer, target.service, ctx)]
        for name in names[1:]:
            try:
                out.append(await ask_canary(target.address, target.service.port, name, target.service, ctx))
            except Refused:
                return [PortState(target.service, state="closed")]
        return out
