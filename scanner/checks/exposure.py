"""What answers from outside the network: judged by a sweep with ``--vantage wan`` (CIAJ 2.3 (1), 3.3, 3.4).

Every check here is registered ``outside=True``. From the WAN vantage a
service of its kind that answers fails, and silence or a closed port on every
one of its ports passes (an attacker outside sees the same). A probe failure
(a network error of the scanner's own) is inconclusive, and so is an on-link
address the probes never reached. From the LAN, an edge device that runs such
a service gets an inconclusive finding that says how to judge it: sweep its
outside address with ``--vantage wan`` and ``edgeaudit merge`` the two sweeps.
"""

from __future__ import annotations

from collections.abc import Callable

from probes.observations import JSON, DnsAnswer, Observation, Service, SipInfo
from profiles import SIP_SERVER_CLASSES
from scanner.checks import HostView, check
from scanner.findings import Finding, Status

VOIP = "CIAJ-2.3-VOIP-EXPOSED"
ADMIN = "CIAJ-3.3-ADMIN-EXPOSED-WAN"
RESOLVER = "CIAJ-3.4-OPEN-RESOLVER"
EDGE_CLASSES = frozenset({"router", *SIP_SERVER_CLASSES})  # devices with an outside leg of their own
ADMIN_SERVICES = frozenset({"ssh", "telnet", "http", "https", "snmp"})
MERGE_HINT = (
    "reachability from outside is judged from the WAN vantage: sweep its outside (WAN) address with "
    "`--vantage wan`, then `edgeaudit merge LAN-SWEEP WAN-SWEEP`"
)


def judge_exposure(
    view: HostView,
    check_id: str,
    names: frozenset[str],
    answered: Callable[[HostView], list[tuple[Service, dict[str, JSON]]]],
    inside: bool,
) -> list[Finding]:
    """One exposure check: ``answered`` lists the services of its kind that answered, with their evidence.

    ``inside``: whether a LAN sweep of this device gets the "judge it from outside" finding.
    """
    found = answered(view)
    if view.vantage != "wan":
        if not (found and inside):
            return []
        return [view.finding(check_id, Status.INCONCLUSIVE, service=found[0][0], evidence={"reason": MERGE_HINT})]
    if found:
        return [
            view.finding(check_id, Status.FAIL, service=svc, evidence={"vantage": "wan", **ev}) for svc, ev in found
        ]
    ports = view.port_states(names)  # open: answered, but not in this way
    evidence: dict[str, JSON] = {
        "vantage": "wan",
        "ports": {s.key: ("no answer" if v == "filtered" else v) for s, v in ports.items()},
    }
    failures = [f for f in view.failures() if f.service is not None and f.service.name in names]
    if failures:
        evidence["reason"] = failures[0].reason
        return [view.finding(check_id, Status.INCONCLUSIVE, evidence=evidence)]
    if not ports:
        evidence["reason"] = "no probe reached these ports (an on-link address that answers no ARP is not there)"
        return [view.finding(check_id, Status.INCONCLUSIVE, evidence=evidence)]
    return [view.finding(check_id, Status.PASS, evidence=evidence)]


def _sip_answers(view: HostView) -> list[tuple[Service, dict[str, JSON]]]:
    return [
        (
            info.service,
            {"status": info.status, "reason_phrase": info.reason, "agent": info.server or info.user_agent or ""},
        )
        for info in view.of(SipInfo)
        if info.service is not None
    ]


def _said(view: HostView, service: Service) -> str:
    """A short line of what the service showed (banner, server, sysDescr), for evidence."""
    for obs in view.observations:
        if obs.service == service:
            text = _text(obs)
            if text:
                return text[:120]
    return ""


def _text(obs: Observation) -> str:
    for attr in ("text", "server", "sys_descr", "fingerprint", "title"):
        value = getattr(obs, attr, None)
        if isinstance(value, str) and value:
            return value
    return ""


def _admin_answers(view: HostView) -> list[tuple[Service, dict[str, JSON]]]:
    open_admin = sorted(s for s in view.open_services if s.name in ADMIN_SERVICES)
    return [(s, {"name": s.name, "said": _said(view, s)}) for s in open_admin]


def is_edge(view: HostView) -> bool:
    return view.match is not None and view.match.profile.device_class in EDGE_CLASSES


@check(VOIP, outside=True)
def voip_exposed(view: HostView) -> list[Finding]:
    """A SIP service answering OPTIONS from outside (udp/5060, tcp/5060, TLS 5061)."""
    return judge_exposure(view, VOIP, frozenset({"sip", "sips"}), _sip_answers, inside=True)


@check(ADMIN, outside=True)
def admin_exposed(view: HostView) -> list[Finding]:
    """SSH, Telnet, HTTP(S) or SNMP answering from outside: the way in for changing a router's settings."""
    return judge_exposure(view, ADMIN, ADMIN_SERVICES, _admin_answers, inside=is_edge(view))


def _recursion(view: HostView) -> list[tuple[Service, dict[str, JSON]]]:
    out: list[tuple[Service, dict[str, JSON]]] = []
    for service, answers in view.by_service(DnsAnswer).items():
        recursing = [a for a in answers if a.recursion_available and a.rcode != "REFUSED"]
        if recursing:
            out.append((service, {"name": recursing[0].name, "rcode": recursing[0].rcode}))
    return out


def _resolving(view: HostView) -> list[tuple[Service, dict[str, JSON]]]:
    """From the LAN: any DNS answer (a router's forwarder is meant to recurse there)."""
    return [(a.service, {}) for a in view.of(DnsAnswer)[:1] if a.service is not None]


@check(RESOLVER, outside=True)
def open_resolver(view: HostView) -> list[Finding]:
    """A resolver that answers recursive queries from outside (amplification, cache poisoning)."""
    if view.vantage != "wan":
        return judge_exposure(view, RESOLVER, frozenset({"dns"}), _resolving, inside=is_edge(view))
    return judge_exposure(view, RESOLVER, frozenset({"dns"}), _recursion, inside=False)
