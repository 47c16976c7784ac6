"""CIAJ 1.2: management over cleartext protocols exposes the admin password."""

from __future__ import annotations

from scanner.checks import HostView, check
from scanner.model import Banner, Finding, HttpInfo, PortState, Severity, SnmpInfo, Status

CHECK = "CIAJ-1.2-CLEARTEXT-ADMIN"


@check(CHECK)
def cleartext_admin(view: HostView) -> list[Finding]:
    """Fail per cleartext management service; inconclusive where its probe failed; else pass."""
    out: list[Finding] = []
    judged: list[str] = []
    for banner in view.of(Banner):
        if banner.protocol == "telnet":
            out.append(
                view.finding(
                    CHECK,
                    Status.FAIL,
                    service=banner.service,
                    severity=Severity.HIGH,
                    evidence={"protocol": "telnet", "banner": banner.text[:200], "login_prompt": banner.login_prompt},
                )
            )
        elif banner.protocol == "ftp":
            out.append(
                view.finding(
                    CHECK,
                    Status.FAIL,
                    service=banner.service,
                    severity=Severity.MEDIUM,
                    evidence={"protocol": "ftp", "banner": banner.text[:200]},
                )
            )
        elif banner.service is not None:
            judged.append(banner.service.key)
    for http in view.of(HttpInfo):
        if http.tls or http.redirects_to_https:
            judged.append(http.service.key if http.service else "http")
            continue
        if http.service is not None:
            judged.append(http.service.key)  # seen: either flagged below or not an admin page
        if http.auth_scheme or http.login_form:
            out.append(
                view.finding(
                    CHECK,
                    Status.FAIL,
                    service=http.service,
                    severity=Severity.MEDIUM,
                    evidence={
                        "protocol": "http",
                        "status": http.status,
                        "auth": http.auth_scheme,
                        "login_form": http.login_form,
                        "title": http.title,
                    },
                )
            )
    for snmp in view.of(SnmpInfo):
        if snmp.version in ("v1", "v2c"):
            out.append(
                view.finding(
                    CHECK,
                    Status.FAIL,
                    service=snmp.service,
                    severity=Severity.MEDIUM,
                    evidence={"protocol": f"snmp{snmp.version}", "community": snmp.community or ""},
                )
            )
    # A cleartext-capable port that is open but whose probe failed cannot be judged.
    flagged = {f.service for f in out}
    for port in view.of(PortState):
        svc = port.service
        if not port.is_open or svc is None or svc.name not in ("telnet", "ftp", "http") or svc.key in flagged:
            continue
        if svc.key in judged:
            continue
        failures = view.failures(service=svc)
        reason = "; ".join(f.reason for f in failures) or "port open but its protocol probe never answered"
        out.append(view.finding(CHECK, Status.INCONCLUSIVE, service=svc, evidence={"reason": reason}))
    if not out:
        out.append(
            view.finding(
                CHECK,
                Status.PASS,
                evidence={
                    "checked": sorted({s.key for s in view.open_services}),
                    "judged": sorted(set(judged)),
                },
            )
        )
    return out
