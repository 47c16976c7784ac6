"""Multifunction printers on the network (CIAJ part 4; its 4.1 names MFPs on intranets and the internet).

An office MFP is a file server, a mail client and a fax line with a web
console. What anyone on the LAN can reach without a password is judged here:

- the raw print port (tcp/9100): takes print data and PJL commands from anyone
  (PJL can change settings, and on many models read and write the printer's
  file system), with no authentication at all;
- IPP job submission without authentication (``uri-authentication-supported``
  none or requesting-user-name, from Get-Printer-Attributes);
- file shares: anonymous FTP accepted, SMB (tcp/445) reachable;
- the web console (EWS) over plain HTTP with no HTTPS at all.

An SNMP community that can write is CIAJ-1.2-DEFAULT-CREDENTIAL (critical);
default EWS passwords go through the credential checks and the vendor profiles.
Raw print, file-share and EWS findings are for MFPs (profile class ``mfp``);
IPP findings for any device that answers IPP, as every one is a printer.
"""

from __future__ import annotations

from probes.observations import JSON, HttpInfo, IppInfo, LoginResult, Mode, Service
from scanner.checks import HostView, check
from scanner.findings import Finding, Severity, Status

RAW_PRINT = "CIAJ-4.1-RAW-PRINT-EXPOSED"
IPP_NO_AUTH = "CIAJ-4.1-IPP-NO-AUTH"
FILE_SHARE = "CIAJ-4.1-FILE-SHARE-EXPOSED"
EWS_HTTP = "CIAJ-4.1-EWS-HTTP-ONLY"


def is_mfp(view: HostView) -> bool:
    """Identified as a multifunction printer by its profile."""
    return view.match is not None and view.match.profile.device_class == "mfp"


def _states(states: dict[Service, str]) -> dict[str, JSON]:
    return {s.key: state for s, state in states.items()}


@check(RAW_PRINT)
def raw_print(view: HostView) -> list[Finding]:
    """Fail per open raw print port of an MFP; pass when every probed one is shut; inconclusive when none was probed."""
    if not is_mfp(view):
        return []
    states = view.port_states(frozenset({"jetdirect"}))
    open_ = sorted(s for s, state in states.items() if state == "open")
    if open_:
        return [view.finding(RAW_PRINT, Status.FAIL, service=s, evidence={"port": "open"}) for s in open_]
    if not states:
        reason = "no raw print port was probed: add 9100 to --ports (or PORT:jetdirect)"
        return [view.finding(RAW_PRINT, Status.INCONCLUSIVE, evidence={"reason": reason})]
    return [view.finding(RAW_PRINT, Status.PASS, evidence={"ports": _states(states)})]


def _queue(info: IppInfo) -> tuple[Status, dict[str, JSON]]:
    """One printer or print-server queue: fail when a job needs no password, pass when it does."""
    evidence: dict[str, JSON] = {
        "path": info.path,
        "http_status": info.http_status,
        "ipp_status": info.ipp_status,
        "printer_uris": list(info.printer_uris),
        "uri_security": list(info.uri_security),
        "uri_authentication": list(info.uri_authentication),
    }
    if info.asks_for_password:
        return Status.PASS, evidence
    if info.uri_authentication:
        evidence["accepting_jobs"] = info.accepting_jobs
        return Status.FAIL, evidence
    if info.ipp_status and not info.ipp_status.startswith("successful"):
        evidence["reason"] = f"no printer at {info.path}: {info.ipp_status}"
    else:
        evidence["reason"] = "the printer did not say what it asks of a client (uri-authentication-supported)"
    return Status.INCONCLUSIVE, evidence


@check(IPP_NO_AUTH)
def ipp_no_auth(view: HostView) -> list[Finding]:
    """Per IPP service that answered, every printer or queue on it judged: fail when any takes a job without a
    password, pass when all ask for one; the evidence lists each queue and every URI asked with its IPP status."""
    out: list[Finding] = []
    by_service: dict[Service, list[IppInfo]] = {}
    for info in view.of(IppInfo):
        if info.service is not None:
            by_service.setdefault(info.service, []).append(info)
    for service, infos in sorted(by_service.items()):
        judged = [(info, *_queue(info)) for info in infos]
        statuses = {status for _, status, _ in judged}
        status = next(s for s in (Status.FAIL, Status.INCONCLUSIVE, Status.PASS) if s in statuses)
        evidence: dict[str, JSON] = {
            "asked": list(infos[0].asked),
            "queues": [{"verdict": str(s), **ev} for _, s, ev in judged],
        }
        if status is Status.INCONCLUSIVE:
            reasons = [str(ev["reason"]) for _, s, ev in judged if s is Status.INCONCLUSIVE]
            evidence["reason"] = "; ".join(dict.fromkeys(reasons))
        out.append(view.finding(IPP_NO_AUTH, status, service=service, evidence=evidence))
    for service in sorted(s for s in view.open_services if s.name == "ipp" and s not in by_service):
        failures = view.failures(service=service, probe="ipp")
        reason = failures[0].reason if failures else "the IPP port is open but Get-Printer-Attributes got no answer"
        out.append(view.finding(IPP_NO_AUTH, Status.INCONCLUSIVE, service=service, evidence={"reason": reason}))
    if not out and is_mfp(view):
        states = view.port_states(frozenset({"ipp"}))
        if states and "open" not in states.values():  # nothing to submit a job to
            out.append(view.finding(IPP_NO_AUTH, Status.PASS, evidence={"ports": _states(states)}))
    return out


ANONYMOUS = frozenset({"anonymous", "ftp"})  # the user names anonymous FTP is tried with (probes.login)


def _anonymous_unknown(view: HostView, service: Service, logins: list[LoginResult]) -> str | None:
    """Why anonymous FTP on a service is not known to be refused (None: it was tried, and refused)."""
    if any(r.accepts_anything for r in logins):
        return (
            f"{service.key}: the FTP server accepted a random user and password: its answer to anonymous says nothing"
        )
    tried = [(u, s) for r in logins for u, s in r.tried if s == "anonymous" and u in ANONYMOUS]
    if tried:
        return None  # tried and no anonymous success recorded: refused, whatever cut the rest of the series short
    if view.mode is Mode.SAFE:
        return f"{service.key}: anonymous login not tried (it runs outside --safe)"
    for r in logins:
        for attr, why in (
            ("not_reached", "a default account logged in before it"),
            ("skipped", "its account had reached its attempt cap"),
            ("refused_elsewhere", "it was refused on another service of this host, not tried here"),
            ("refused_before", "it was refused in an earlier sweep, not tried in this one"),
        ):
            if any(s == "anonymous" for _, s in getattr(r, attr)):
                return f"{service.key}: anonymous login not tried: {why}"
    failures = view.failures(service=service, probe="ftp-login")
    if failures:
        return f"{service.key}: anonymous login not tried: {failures[0].reason}"
    if not logins:
        return f"{service.key}: no FTP login was attempted on this service"
    return f"{service.key}: the FTP login series did not try anonymous"


@check(FILE_SHARE)
def file_share(view: HostView) -> list[Finding]:
    """An MFP's anonymous FTP (high) and reachable SMB (medium); pass when FTP refuses anonymous and SMB is shut."""
    if not is_mfp(view):
        return []
    out: list[Finding] = []
    unknown: list[str] = []
    ftp_open = [s for s in view.open_services if s.name == "ftp"]
    for service in ftp_open:
        logins = [r for r in view.of(LoginResult) if r.service == service]
        anonymous = [r for r in logins if r.source == "anonymous" and r.username is not None]
        if anonymous:
            evidence: dict[str, JSON] = {"login": f"{anonymous[0].username} (anonymous FTP)"}
            out.append(view.finding(FILE_SHARE, Status.FAIL, service=service, evidence=evidence))
        elif (why := _anonymous_unknown(view, service, logins)) is not None:
            unknown.append(why)
    smb = view.port_states(frozenset({"smb"}))
    note = "whether a share opens without a password is not tested (nothing is read)"
    for service in sorted(s for s, state in smb.items() if state == "open"):
        evidence = {"port": "open", "note": note}
        out.append(view.finding(FILE_SHARE, Status.FAIL, service=service, evidence=evidence, severity=Severity.MEDIUM))
    if out:
        return out
    if unknown or not smb:
        reason = "; ".join(unknown) if unknown else "SMB was not probed: add 445 to --ports"
        return [view.finding(FILE_SHARE, Status.INCONCLUSIVE, evidence={"reason": reason})]
    evidence = {"ftp_refuses_anonymous": [s.key for s in sorted(ftp_open)], "ports": _states(smb)}
    return [view.finding(FILE_SHARE, Status.PASS, evidence=evidence)]


@check(EWS_HTTP)
def ews_http_only(view: HostView) -> list[Finding]:
    """An MFP whose web console answers over HTTP and nowhere over HTTPS (no TLS service, no redirect to one)."""
    if not is_mfp(view):
        return []
    pages = view.of(HttpInfo)
    plain = [p for p in pages if not p.tls and p.service is not None]
    secure = [p.service.key for p in pages if p.tls and p.service is not None]
    redirects = [p.service.key for p in plain if p.redirects_to_https and p.service is not None]
    seen = {p.service for p in pages}
    unread = sorted(s.key for s in view.open_services if s.name in ("http", "https") and s not in seen)
    evidence: dict[str, JSON] = {"https": secure, "redirects_to_https": redirects}
    if secure or redirects:
        return [view.finding(EWS_HTTP, Status.PASS, evidence=evidence)]
    if unread:  # one of them may be the HTTPS console: not judged on what answered
        evidence["reason"] = f"web ports open but unanswered: {', '.join(unread)}"
        return [view.finding(EWS_HTTP, Status.INCONCLUSIVE, evidence=evidence)]
    return [view.finding(EWS_HTTP, Status.FAIL, service=p.service, evidence=evidence) for p in plain]
