"""CIAJ 1.2 (1)(2): default and guessable credentials, judged from the login probes' results.

Per login service: fail when a candidate of the check's kind logged in; pass
when the series ran to its end (no lockout signal, no network cut, the random
baseline refused) and nothing of that kind worked; inconclusive otherwise,
with the reason. Services that demand a login the probes cannot try (form
logins without a profile description) are inconclusive, never passed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from probes.observations import JSON, ConfigFacts, HttpInfo, LoginResult, Mode, Service
from scanner.checks import HostView, check
from scanner.findings import Finding, Severity, Status

DEFAULT = "CIAJ-1.2-DEFAULT-CREDENTIAL"
WEAK = "CIAJ-1.2-WEAK-CREDENTIAL"
LOGIN_PROBES = frozenset({"ssh-login", "telnet-login", "ftp-login", "http-login", "snmp-login"})


def _is_default(source: str | None) -> bool:
    return source is not None and (source.startswith("profile:") or source in ("anonymous", "snmp-default"))


def _labels(entries: Iterable[tuple[str, str]]) -> list[str]:
    """Candidates as evidence: "user (source)"."""
    return [f"{user or '(empty)'} ({source})" for user, source in entries]


def _is_generic(source: str | None) -> bool:
    return source in ("generic", "extended")


def _judge(
    view: HostView, check_id: str, matches: Callable[[str | None], bool], none_known: str | None
) -> list[Finding]:
    """Findings per login service. ``none_known``: the reason to give when no candidate of this
    kind exists for a service (None: say nothing for that service)."""
    out: list[Finding] = []
    if view.mode == Mode.SAFE:
        return [view.finding(check_id, Status.INCONCLUSIVE, evidence={"reason": "no credential is sent in safe mode"})]
    judged: set[Service] = set()
    for res in view.of(LoginResult):
        if res.service is not None:
            judged.add(res.service)
        evidence: dict[str, JSON] = {
            "protocol": res.protocol,
            "attempts": res.attempts,
            "tried": list[JSON](_labels(res.tried)),
            "refused_on_another_service": list[JSON](_labels(res.refused_elsewhere)),
            "skipped_by_cap": list[JSON](_labels(res.skipped)),
        }
        if res.refused_before:
            evidence["refused_in_an_earlier_sweep"] = list[JSON](_labels(res.refused_before))
        if res.extended_progress is not None:
            done, total, goes_on = res.extended_progress
            if goes_on:
                more = "; the walk goes on in later sweeps"
            elif done < total:
                more = "; no more: this family never forgets a failed login (its profile), so spent caps stay spent"
            else:
                more = ""
            evidence["extended_list"] = f"{done} of {total} pairs refused on this host so far{more}"
        untried = [c for c in res.skipped if matches(c[1])]
        unreached = [c for c in res.not_reached if matches(c[1])]
        involved = [c for c in (*res.tried, *res.refused_elsewhere, *res.refused_before) if matches(c[1])]
        if not (involved or untried or unreached or res.accepts_anything or matches(res.source)):
            if none_known is not None:  # no candidate of this kind exists for this device and protocol
                evidence["reason"] = none_known
                out.append(view.finding(check_id, Status.INCONCLUSIVE, service=res.service, evidence=evidence))
            continue
        if res.accepts_anything:
            evidence["reason"] = "the service accepted a random user and password: no login result can be trusted"
            out.append(view.finding(check_id, Status.INCONCLUSIVE, service=res.service, evidence=evidence))
        elif res.username is not None and matches(res.source):
            evidence.update(username=res.username, password=res.password or "", source=res.source or "")
            severity = None
            if res.protocol == "snmp":
                # Critical only when the agent's own access tables show the community can write.
                evidence.update(community=res.password or "", access=res.access or "unknown")
                del evidence["password"]
                severity = None if res.access == "read-write" else Severity.HIGH
            out.append(view.finding(check_id, Status.FAIL, service=res.service, evidence=evidence, severity=severity))
        elif res.username is not None and unreached:
            # another kind of credential logged in first, so these were never asked
            first = f"a {res.source} credential logged in first"
            evidence["reason"] = f"{first}; not tried: {', '.join(_labels(unreached))}"
            out.append(view.finding(check_id, Status.INCONCLUSIVE, service=res.service, evidence=evidence))
        elif res.username is not None or (res.complete and not untried):
            out.append(view.finding(check_id, Status.PASS, service=res.service, evidence=evidence))
        elif res.complete:
            capped = ", ".join(_labels(untried))
            evidence["reason"] = f"the per-account cap was reached before these were tried: {capped}"
            out.append(view.finding(check_id, Status.INCONCLUSIVE, service=res.service, evidence=evidence))
        else:
            evidence["reason"] = res.stopped or "the series was cut short"
            out.append(view.finding(check_id, Status.INCONCLUSIVE, service=res.service, evidence=evidence))
    for failure in view.failures():
        if failure.probe in LOGIN_PROBES and failure.service not in judged:
            if failure.service is not None:
                judged.add(failure.service)
            evidence = {"reason": failure.reason}
            out.append(view.finding(check_id, Status.INCONCLUSIVE, service=failure.service, evidence=evidence))
    for http in view.of(HttpInfo):
        if http.login_form and http.service is not None and http.service not in judged:
            reason = "a login form answered; form logins need a profile login description and were not tried"
            out.append(view.finding(check_id, Status.INCONCLUSIVE, service=http.service, evidence={"reason": reason}))
    if not out and not view.of(LoginResult):
        reason = "no login service (SSH, Telnet, FTP, HTTP Basic/Digest, SNMP) answered; nothing to try"
        out.append(view.finding(check_id, Status.INCONCLUSIVE, evidence={"reason": reason}))
    return out


@check(DEFAULT)
def default_credential(view: HostView) -> list[Finding]:
    """A documented factory default (or anonymous FTP) logged in."""
    reason = "no documented default credential is known for this device and protocol (see its profile)"
    return _judge(view, DEFAULT, _is_default, reason)


@check(WEAK)
def weak_credential(view: HostView) -> list[Finding]:
    """A pair from the generic guessable list, or the extended list's walk, logged in.

    The judgement rests on the generic list, asked to its end in every sweep; the
    extended list (``--extended-credentials``) is walked a few pairs per account per
    window, so its pairs not yet asked are counted in the evidence, never a reason
    for inconclusive.
    """
    return _judge(view, WEAK, _is_generic, None)


STRENGTH = "CIAJ-1.2-ADMIN-PASSWORD-STRENGTH"
MIN_LENGTH = 8
MIN_BITS = 47.6  # 8 characters of digits, lower and upper case: the NISC handbook's example, about 2.2 x 10^14
GOOD_LENGTH = 12  # the handbook's advice: longer is safer


@check(STRENGTH)
def admin_password_strength(view: HostView) -> list[Finding]:
    """The operator's own admin password (--auth-file) against the NISC handbook's brute-force measure.

    Judged only where that password logged in (authenticated mode); the
    password itself is never recorded, only its length, classes and bits.
    """
    out: list[Finding] = []
    for facts in view.of(ConfigFacts):
        if facts.password_length is None or facts.password_bits is None:
            continue
        evidence: dict[str, JSON] = {
            "username": facts.username,
            "length": facts.password_length,
            "classes": list(facts.password_classes),
            "bits": facts.password_bits,
            "minimum": f"{MIN_LENGTH} characters and {MIN_BITS} bits (8 of digits, lower and upper case)",
        }
        problems = []
        if facts.password_weakness:
            problems.append(facts.password_weakness)
        if facts.password_length < MIN_LENGTH:
            problems.append(f"shorter than {MIN_LENGTH} characters")
        if facts.password_bits < MIN_BITS:
            problems.append(f"a search space of {facts.password_bits} bits, under {MIN_BITS}")
        if problems:
            evidence["problems"] = problems
            out.append(view.finding(STRENGTH, Status.FAIL, service=facts.service, evidence=evidence))
            continue
        if facts.password_length < GOOD_LENGTH:
            evidence["advice"] = f"{GOOD_LENGTH} or more characters are much harder to brute-force"
        out.append(view.finding(STRENGTH, Status.PASS, service=facts.service, evidence=evidence))
    return out
