"""CIAJ 3.4 case 1: a router whose DNS settings were changed sends its users to fake sites.

The device's own resolver is asked for canary names; its answers are compared
with addresses the operator pinned (``--dns-expect``) or with what a resolver
the operator trusts answers (``--trusted-resolver``). An answer that shares no
address with the expected ones is a hijack. A canary with nothing to compare
with, or that got no address, cannot pass. Whether the resolver validates
DNSSEC (the AD flag on its answers) is reported alongside.

With ``--dhcp`` the resolvers the device's DHCP server hands out are judged
the same way, as one finding on udp/67: the clients use those, whatever the
router's own forwarder answers. A handed-out resolver that is the device
itself is judged by the device's own answers; one that could not be asked
leaves the finding inconclusive.
"""

from __future__ import annotations

from collections.abc import Sequence

from probes.observations import JSON, DhcpOffer, DnsAnswer, Service
from scanner.checks import HostView, check
from scanner.findings import Finding, Status

HIJACK = "CIAJ-3.4-DNS-HIJACK"


def _canaries(answers: Sequence[DnsAnswer]) -> list[JSON]:
    return [
        {
            **({"resolver": a.resolver} if a.resolver else {}),
            "name": a.name,
            "rcode": a.rcode,
            "answer": list(a.addresses),
            "expected": list(a.expected),
            "expected_from": a.expected_from,
        }
        for a in answers
    ]


def judge(answers: Sequence[DnsAnswer]) -> tuple[Status, str]:
    """fail when an answer shares no address with the expected one; else what keeps it from passing, if anything."""
    compared = [a for a in answers if a.expected]
    if any(a.addresses and not set(a.addresses) & set(a.expected) for a in compared):
        return Status.FAIL, ""
    if not compared:
        return Status.INCONCLUSIVE, "nothing to compare with: pin answers with --dns-expect or name --trusted-resolver"
    unanswered = [a for a in compared if not a.addresses]
    if unanswered:
        return Status.INCONCLUSIVE, f"no address for {unanswered[0].name} ({unanswered[0].rcode})"
    return Status.PASS, ""


def _label(a: DnsAnswer) -> str:
    return f"{a.resolver} {a.name}" if a.resolver else a.name


def _finding(
    view: HostView, service: Service, answers: Sequence[DnsAnswer], evidence: dict[str, JSON], unknown: str = ""
) -> Finding:
    """The judgement of answers; ``unknown`` (a resolver not asked) keeps anything but a hijack from passing."""
    status, reason = judge(answers)
    if unknown and status is not Status.FAIL:
        status, reason = Status.INCONCLUSIVE, unknown
    evidence["canaries"] = _canaries(answers)
    evidence["dnssec_validated"] = [_label(a) for a in answers if a.authenticated]
    if status is Status.FAIL:
        evidence["hijacked"] = [
            _label(a) for a in answers if a.expected and a.addresses and not set(a.addresses) & set(a.expected)
        ]
    if reason:
        evidence["reason"] = reason
    return view.finding(HIJACK, status, service=service, evidence=evidence)


@check(HIJACK)
def dns_hijack(view: HostView) -> list[Finding]:
    """The device's own resolver (udp/53), and with --dhcp the resolvers its DHCP server hands out (udp/67)."""
    out: list[Finding] = []
    own: list[DnsAnswer] = []
    for service, mine in view.by_service(DnsAnswer).items():
        if service.port == 53:
            own += mine
            out.append(_finding(view, service, mine, {}))
    for service, offers in view.by_service(DhcpOffer).items():
        offer = offers[0]
        evidence: dict[str, JSON] = {
            "dhcp": offer.method,
            "dns_servers_handed_out": list(offer.dns_servers),
            "gateways_handed_out": list(offer.routers),  # what else a changed DHCP setting redirects
            "domain": offer.domain,
            "lease_s": offer.lease_s,
        }
        if not offer.dns_servers:
            evidence["reason"] = "the DHCP server hands out no DNS server"
            out.append(view.finding(HIJACK, Status.PASS, service=service, evidence=evidence))
            continue
        handed = [a for a in view.of(DnsAnswer) if a.service == service]
        unknown = ""
        if offer.unanswered:
            unknown = "handed-out resolver {} gave no answer: {}".format(*offer.unanswered[0])
        if view.address in offer.dns_servers:
            handed = own + handed  # the device hands out itself: its own answers are what clients get
            if not own:
                unknown = unknown or "the device hands out itself, and its own resolver gave no answer"
        out.append(_finding(view, service, handed, evidence, unknown))
    return out
