"""CIAJ 1.2: management over cleartext protocols exposes the admin password."""

from __future__ import annotations

from probes.observations import JSON, Banner, HttpInfo, LoginResult, Mode, PortState, Service, SnmpInfo
from scanner.checks import HostView, check
from scanner.findings import Finding, Severity, Status

CHECK = "CIAJ-1.2-CLEARTEXT-ADMIN"
CLEARTEXT_TCP = ("telnet", "ftp", "http")


@check(CHECK)
def cleartext_admin(view: HostView) -> list[Finding]:
    """Fail per cleartext management service; inconclusive where it could not be judged; else pass."""
    out: list[Finding] = []
    judged: list[str] = []

    def flag(service: Service | None, severity: Severity, **evidence: JSON) -> None:
        out.append(view.finding(CHECK, Status.FAIL, service=service, severity=severity, evidence=evidence))

    def unknown(service: Service | None, reason: str) -> None:
        out.append(view.finding(CHECK, Status.INCONCLUSIVE, service=service, evidence={"reason": reason}))

    for banner in view.of(Banner):
        if banner.protocol == "telnet":
            flag(
                banner.service,
                Severity.HIGH,
                protocol="telnet",
                banner=banner.text[:200],
                login_prompt=banner.login_prompt,
            )
        elif banner.protocol == "ftp":
            flag(banner.service, Severity.MEDIUM, protocol="ftp", banner=banner.text[:200])
        elif banner.service is not None:
            judged.append(banner.service.key)
    for http in view.of(HttpInfo):
        if http.service is not None:
            judged.append(http.service.key)  # seen: flagged below, encrypted, or not an admin page
        if http.tls or http.redirects_to_https:
            continue
        if http.auth_scheme or http.login_form:
            flag(
                http.service,
                Severity.MEDIUM,
                protocol="http",
                status=http.status,
                auth=http.auth_scheme,
                login_form=http.login_form,
                title=http.title,
            )
    snmp = view.of(SnmpInfo)
    for info in snmp:
        if info.version in ("v1", "v2c"):
            flag(info.service, Severity.MEDIUM, protocol=f"snmp{info.version}", community=info.community or "")
    seen_v1v2 = {i.service for i in snmp if i.version in ("v1", "v2c")}
    for login in view.of(LoginResult):  # a community accepted by the credential probe (not public)
        accepted = login.protocol == "snmp" and login.username and not login.accepts_anything
        if accepted and login.service not in seen_v1v2:
            flag(login.service, Severity.MEDIUM, protocol="snmp", community=login.password or "")
    if view.mode == Mode.SAFE and snmp and not any(i.version in ("v1", "v2c") for i in snmp):
        # An agent answered v3 discovery, but safe mode sends no community: v1/v2c is untested.
        unknown(snmp[0].service, "SNMP agent present; v1/v2c not tested in safe mode (no community is sent)")
    flagged = {f.service for f in out}
    for port in view.of(PortState):
        svc = port.service
        # an SSH port is judged by its identification string: one that sent none may be anything
        if not port.is_open or svc is None or svc.name not in (*CLEARTEXT_TCP, "ssh") or svc.key in flagged:
            continue
        if svc.key in judged:
            continue
        failures = view.failures(service=svc)
        unknown(svc, "; ".join(f.reason for f in failures) or "port open but its protocol probe never answered")
    if not out and not view.open_services:
        # Nothing answered on the management ports we try: absence of evidence, not a pass.
        out.append(
            view.finding(
                CHECK,
                Status.INCONCLUSIVE,
                evidence={"reason": "no management service answered on the ports tried; nothing to judge"},
            )
        )
    elif not out:
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
