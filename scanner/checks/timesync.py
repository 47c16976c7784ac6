"""CIAJ 1.4.1 (3): the device keeps its clock synchronised, so its logs can be trusted and correlated.

Measured first: the device's own NTP answer (stratum, leap indicator) and its
clock as NTP, HTTP Date, SIP Date and SNMP hrSystemDate show it. The read-only
configuration (authenticated mode) fills in for devices that serve no NTP.
"""

from __future__ import annotations

from probes.observations import JSON, ClockReading, ConfigFacts, NtpControl, NtpInfo
from scanner.checks import HostView, check
from scanner.findings import Finding, Severity, Status

NOT_SYNCED = "CIAJ-1.4-NTP-NOT-SYNCED"
CLOCK_SKEW = "CIAJ-1.4-CLOCK-SKEW"
CONTROL = "CIAJ-1.4-NTP-CONTROL-EXPOSED"
AMPLIFIER = 10.0  # bytes answered per byte asked from which a reflector is a high-severity finding


def config_facts(view: HostView) -> ConfigFacts | None:
    """The first read-only configuration the sweep read from this host, if any."""
    facts = view.of(ConfigFacts)
    return facts[0] if facts else None


@check(NOT_SYNCED)
def ntp_not_synced(view: HostView) -> list[Finding]:
    """Fail: NTP answers unsynchronised, or the config shows no time source / an unsynced clock."""
    answers = view.of(NtpInfo)
    readings = [a for a in answers if a.kiss is None]
    if answers and not readings:
        reason = f"the NTP service answered only a Kiss-o'-Death ({answers[0].kiss}): no clock state (RFC 5905 7.4)"
        return [view.finding(NOT_SYNCED, Status.INCONCLUSIVE, service=answers[0].service, evidence={"reason": reason})]
    if readings:
        info = readings[0]
        evidence: dict[str, JSON] = {
            "source": "NTP mode 3 answer",
            "stratum": info.stratum,
            "leap_indicator": info.leap,
            "reference": info.ref_id,
        }
        if info.synchronized:
            return [view.finding(NOT_SYNCED, Status.PASS, service=info.service, evidence=evidence)]
        why = "stratum 16 (unsynchronised)" if info.stratum >= 16 else f"stratum {info.stratum}"
        if info.leap == 3:
            why = f"leap indicator 3 (alarm: clock not synchronised), {why}"
        return [view.finding(NOT_SYNCED, Status.FAIL, service=info.service, evidence={**evidence, "reason": why})]
    facts = config_facts(view)
    if facts is not None and (facts.ntp_synced is not None or facts.ntp_servers is not None):
        evidence = {"source": "read-only configuration", "commands": list(facts.commands)}
        if facts.ntp_servers is not None:
            evidence["ntp_servers"] = list(facts.ntp_servers)
        unsynced = None
        if facts.ntp_synced is False:
            unsynced = "the device reports its clock unsynchronised"
        elif facts.ntp_synced is None and not facts.ntp_servers:
            unsynced = "no NTP server configured"
        if unsynced is not None:
            evidence["reason"] = unsynced
            return [view.finding(NOT_SYNCED, Status.FAIL, service=facts.service, evidence=evidence)]
        if facts.ntp_synced is None:
            evidence["note"] = "servers configured; the device did not show whether it is synchronised"
        return [view.finding(NOT_SYNCED, Status.PASS, service=facts.service, evidence=evidence)]
    return [
        view.finding(
            NOT_SYNCED,
            Status.INCONCLUSIVE,
            evidence={
                "reason": "the device answered no NTP query and its configuration was not read "
                "(authenticated mode: --auth-file)"
            },
        )
    ]


@check(CLOCK_SKEW)
def clock_skew(view: HostView) -> list[Finding]:
    """Fail when any protocol shows the device clock off by more than the limit, beyond measurement error."""
    readings = view.of(ClockReading)
    limit = view.max_clock_skew_s
    if not readings:
        return [
            view.finding(
                CLOCK_SKEW,
                Status.INCONCLUSIVE,
                evidence={"reason": "no protocol showed the device clock (NTP, HTTP Date, SIP Date, hrSystemDate)"},
            )
        ]
    shown: list[JSON] = [
        {
            "source": r.source,
            "service": r.service.key if r.service else None,
            "offset_s": r.offset_s,
            "uncertainty_s": r.uncertainty_s,
        }
        for r in readings
    ]
    skewed = [r for r in readings if abs(r.offset_s) - r.uncertainty_s > limit]
    evidence: dict[str, JSON] = {"limit_s": limit, "readings": shown}
    if skewed:
        worst = max(skewed, key=lambda r: abs(r.offset_s))
        return [
            view.finding(  # one clock per device: the finding is the device's, the readings say where it showed
                CLOCK_SKEW,
                Status.FAIL,
                evidence={**evidence, "reason": f"{worst.source}: clock off by {worst.offset_s:+.0f} s"},
            )
        ]
    return [view.finding(CLOCK_SKEW, Status.PASS, evidence=evidence)]


@check(CONTROL)
def ntp_control(view: HostView) -> list[Finding]:
    """Per NTP service: a mode 7 answer or a large amplification -> high; a mode 6 answer -> medium;
    silence to both -> pass; anything else from the service (garbage) -> inconclusive."""
    out: list[Finding] = []
    probed = {c.service for c in view.of(NtpControl)}
    for c in view.of(NtpControl):
        evidence: dict[str, JSON] = {"mode6_readvar": c.mode6, "mode7_monlist": c.mode7}
        if c.variables:
            evidence["variables"] = dict(c.variables)
        ratios: list[float] = []
        for name, (asked, answered) in (("mode6", c.mode6_bytes), ("mode7", c.mode7_bytes)):
            ratio = NtpControl.amplification((asked, answered))
            if ratio is not None:
                evidence[f"{name}_bytes_asked"], evidence[f"{name}_bytes_answered"] = asked, answered
                evidence[f"{name}_amplification"] = ratio
                ratios.append(ratio)
        if c.monlist_records:
            evidence["monlist_records"] = c.monlist_records
        if c.mode7 or (ratios and max(ratios) >= AMPLIFIER):
            out.append(view.finding(CONTROL, Status.FAIL, service=c.service, severity=Severity.HIGH, evidence=evidence))
        elif c.mode6:
            out.append(view.finding(CONTROL, Status.FAIL, service=c.service, evidence=evidence))
        elif c.unreadable:
            evidence["reason"] = f"{c.unreadable} datagram(s) from the service were no NTP control response"
            out.append(view.finding(CONTROL, Status.INCONCLUSIVE, service=c.service, evidence=evidence))
        else:
            out.append(view.finding(CONTROL, Status.PASS, service=c.service, evidence=evidence))
    for info in view.of(NtpInfo):
        if info.service not in probed:
            reasons = [f.reason for f in view.failures(info.service, "ntp-control")] or ["mode 6/7 not queried"]
            out.append(
                view.finding(CONTROL, Status.INCONCLUSIVE, service=info.service, evidence={"reason": reasons[0]})
            )
    return out  # no NTP service answered: nothing to judge (not applicable)
