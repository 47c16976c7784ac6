"""CIAJ 3.4 case 1: a router whose DNS settings were changed sends its users to fake sites.

The device's own resolver is asked for canary names; its answers are compared
with addresses the operator pinned (``--dns-expect``) or with what a resolver
the operator trusts answers (``--trusted-resolver``). An answer that shares no
address with the expected ones is a hijack. A canary with nothing to compare
with, or that got no address, cannot pass. Whether the resolver validates
DNSSEC (the AD flag on its answers) is reported alongside.
"""

from __future__ import annotations

from scanner.checks import HostView, check
from scanner.model import JSON, DnsAnswer, Finding, Status

HIJACK = "CIAJ-3.4-DNS-HIJACK"


@check(HIJACK)
def dns_hijack(view: HostView) -> list[Finding]:
    """Fail when a canary's answer shares no address with the expected answer."""
    out: list[Finding] = []
    for service, mine in view.by_service(DnsAnswer).items():
        evidence: dict[str, JSON] = {
            "canaries": [
                {
                    "name": a.name,
                    "rcode": a.rcode,
                    "answer": list(a.addresses),
                    "expected": list(a.expected),
                    "expected_from": a.expected_from,
                }
                for a in mine
            ],
            "dnssec_validated": [a.name for a in mine if a.authenticated],
        }
        compared = [a for a in mine if a.expected]
        hijacked = [a for a in compared if a.addresses and not set(a.addresses) & set(a.expected)]
        unanswered = [a for a in compared if not a.addresses]
        if hijacked:
            evidence["hijacked"] = [a.name for a in hijacked]
            out.append(view.finding(HIJACK, Status.FAIL, service=service, evidence=evidence))
        elif not compared:
            evidence["reason"] = "nothing to compare with: pin answers with --dns-expect or name --trusted-resolver"
            out.append(view.finding(HIJACK, Status.INCONCLUSIVE, service=service, evidence=evidence))
        elif unanswered:
            evidence["reason"] = f"no address for {unanswered[0].name} ({unanswered[0].rcode})"
            out.append(view.finding(HIJACK, Status.INCONCLUSIVE, service=service, evidence=evidence))
        else:
            out.append(view.finding(HIJACK, Status.PASS, service=service, evidence=evidence))
    return out
