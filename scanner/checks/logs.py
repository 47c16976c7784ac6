"""CIAJ 1.4.1 (1) and 1.4.2: the device records logs and sends them to a log server.

Judged from the read-only configuration (authenticated mode), and confirmed
when the sweep's own syslog listener (--syslog-listen) receives the device's
messages: the sweep's login attempts are events a logging device reports.
"""

from __future__ import annotations

from probes.observations import JSON, SyslogSeen
from scanner.checks import HostView, check
from scanner.checks.timesync import config_facts
from scanner.findings import Finding, Status

DISABLED = "CIAJ-1.4-LOGGING-DISABLED"
NO_REMOTE = "CIAJ-1.4-NO-REMOTE-LOG"
UNREAD = "its configuration was not read (authenticated mode: --auth-file)"


def _seen(view: HostView) -> SyslogSeen | None:
    seen = [s for s in view.of(SyslogSeen) if s.messages]
    return seen[0] if seen else None


def _seen_evidence(seen: SyslogSeen) -> dict[str, JSON]:
    out: dict[str, JSON] = {"listener": seen.listener, "messages_received": seen.messages, "sample": seen.sample}
    if seen.unreadable:
        out["unreadable_received"] = seen.unreadable
    return out


def _not_seen(view: HostView) -> str:
    """Why nothing could be judged: no message, or only what was no syslog message (credited nothing)."""
    junk = sum(s.unreadable for s in view.of(SyslogSeen))
    arrived = f" ({junk} datagram(s)/frame(s) arrived that were no RFC 5424/3164 syslog message)" if junk else ""
    return f"no log message seen{arrived} and {UNREAD}"


@check(DISABLED)
def logging_disabled(view: HostView) -> list[Finding]:
    """Fail when the config shows logging off; pass when on, or when its messages reached the listener."""
    facts = config_facts(view)
    seen = _seen(view)
    if facts is not None and facts.logging_enabled is not None:
        evidence: dict[str, JSON] = {"source": "read-only configuration", "commands": list(facts.commands)}
        if seen:
            evidence.update(_seen_evidence(seen))
        status = Status.PASS if facts.logging_enabled else Status.FAIL
        return [view.finding(DISABLED, status, service=facts.service, evidence=evidence)]
    if seen:
        return [view.finding(DISABLED, Status.PASS, evidence={"source": "syslog listener", **_seen_evidence(seen)})]
    return [view.finding(DISABLED, Status.INCONCLUSIVE, evidence={"reason": _not_seen(view)})]


@check(NO_REMOTE)
def no_remote_log(view: HostView) -> list[Finding]:
    """Fail when the config names no log server (or logging is off); pass when it names one or logs arrived."""
    facts = config_facts(view)
    seen = _seen(view)
    if seen:
        evidence = {"source": "syslog listener", **_seen_evidence(seen)}
        if facts is not None and facts.log_hosts is not None:
            evidence["log_hosts"] = list(facts.log_hosts)
        return [view.finding(NO_REMOTE, Status.PASS, evidence=evidence)]
    if facts is not None and (facts.log_hosts is not None or facts.logging_enabled is False):
        evidence = {"source": "read-only configuration", "commands": list(facts.commands)}
        hosts = list(facts.log_hosts or ())
        evidence["log_hosts"] = hosts
        if facts.logging_enabled is False:
            evidence["reason"] = "logging is disabled, so nothing is sent to a log server"
            return [view.finding(NO_REMOTE, Status.FAIL, service=facts.service, evidence=evidence)]
        if not hosts:
            evidence["reason"] = "no remote syslog server configured"
            return [view.finding(NO_REMOTE, Status.FAIL, service=facts.service, evidence=evidence)]
        return [view.finding(NO_REMOTE, Status.PASS, service=facts.service, evidence=evidence)]
    return [view.finding(NO_REMOTE, Status.INCONCLUSIVE, evidence={"reason": _not_seen(view)})]
