"""Informational findings: what the device is and what answers on it."""

from __future__ import annotations

from probes.observations import Banner, HttpInfo, IppInfo, SipInfo, SnmpInfo
from scanner.checks import HostView, check
from scanner.findings import Finding, Status


@check("EA-DEVICE-IDENTIFIED")
def device_identified(view: HostView) -> list[Finding]:
    """Which profile matched, on what evidence; 'unidentified' is said too."""
    if view.match is None:
        return [
            view.finding(
                "EA-DEVICE-IDENTIFIED",
                Status.INFO,
                evidence={"profile": None, "reason": "no profile's fingerprints matched what the device showed"},
            )
        ]
    m = view.match
    return [
        view.finding(
            "EA-DEVICE-IDENTIFIED",
            Status.INFO,
            evidence={
                "profile": m.profile.id,
                "vendor": m.profile.vendor,
                "class": m.profile.device_class,
                "model": m.model,
                "firmware": m.version,
                "matched": list(m.matched),
            },
        )
    ]


@check("EA-SERVICES-OPEN")
def services_open(view: HostView) -> list[Finding]:
    """One line per answering service with what it said."""
    said: dict[str, str] = {}
    for obs in view.observations:
        if obs.service is None:
            continue
        if isinstance(obs, Banner):
            said[obs.service.key] = obs.text.splitlines()[0] if obs.text else ""
        elif isinstance(obs, HttpInfo):
            said[obs.service.key] = f"HTTP {obs.status} {obs.server or ''} {obs.title or ''}".strip()
        elif isinstance(obs, SipInfo):
            said[obs.service.key] = _joined(
                f"SIP {obs.status} {obs.server or obs.user_agent or ''}",
                f"allows {', '.join(obs.allow)}" if obs.allow else "",  # REFER, MESSAGE...: what a caller may ask
                f"supports {', '.join(obs.supported)}" if obs.supported else "",
            )
        elif isinstance(obs, SnmpInfo):
            said[obs.service.key] = _joined(
                f"SNMP {obs.version} {obs.sys_descr or obs.engine_id or ''}",
                f"sysName {obs.sys_name}" if obs.sys_name else "",
            )
        elif isinstance(obs, IppInfo) and obs.service.key not in said:  # the printer itself, before its queues
            said[obs.service.key] = _joined(
                f"IPP {obs.ipp_status or f'HTTP {obs.http_status}'} {obs.make_and_model}",
                f"printer-info {obs.info}" if obs.info else "",
            )
    services = [{"service": s.key, "name": s.name, "said": said.get(s.key, "")} for s in sorted(view.open_services)]
    if not services:
        return []
    return [view.finding("EA-SERVICES-OPEN", Status.INFO, evidence={"services": services})]


def _joined(*parts: str) -> str:
    """What a service said, its non-empty parts joined with '; '."""
    return "; ".join(p.strip() for p in parts if p.strip())
