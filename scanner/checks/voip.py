"""CIAJ part 2: the PBX as a stepping stone for international calls, and registration without authentication."""

from __future__ import annotations

from probes.observations import JSON, SipCallTest, SipInfo, SipRegisterTest, SipSecretTest
from profiles import SIP_SERVER_CLASSES
from scanner.checks import HostView, check
from scanner.findings import Finding, Status


def _untested(view: HostView, check_id: str, probe: str, servers_only: bool, sends: str) -> list[Finding]:
    """The inconclusive finding that stands for a SIP test that left no result (none when SIP is absent)."""
    sip = view.of(SipInfo)
    if not sip:
        return []  # no SIP service answered: nothing to judge
    failures = [f.reason for f in view.failures(probe=probe)]
    registers = view.of(SipRegisterTest)
    server = any(t.registrar for t in registers) or (
        view.match is not None and view.match.profile.device_class in SIP_SERVER_CLASSES
    )
    if failures:
        reason = failures[0]
    elif servers_only and not server:
        why = "not identified as a PBX or gateway"
        if registers:
            why = f"a user agent, not a registrar (REGISTER answered {registers[0].status})"
        reason = f"{why}: no {sends} sent" + (" (an INVITE could ring a phone)" if sends == "INVITE" else "")
    else:
        reason = f"the test did not run (safe mode sends no {sends})"
    return [view.finding(check_id, Status.INCONCLUSIVE, service=sip[0].service, evidence={"reason": reason})]


RELAY = "CIAJ-2.3-OPEN-RELAY"
REGISTER = "CIAJ-2.3-REGISTER-NO-AUTH"
ENUMERATION = "CIAJ-2.3-EXTENSION-ENUMERATION"
WEAK_SECRET = "CIAJ-2.3-WEAK-SIP-SECRET"


def _call_evidence(test: SipCallTest) -> dict[str, JSON]:
    return {
        "number": test.number,
        "purpose": test.purpose,
        "outcome": test.outcome,
        "statuses": list(test.statuses),
        "ended_by": test.ended,
        "dialog": list(test.transcript),
    }


@check(RELAY)
def open_relay(view: HostView) -> list[Finding]:
    """Fail when an unauthenticated INVITE to an unassigned international number is routed or answered."""
    out: list[Finding] = []
    for service, mine in view.by_service(SipCallTest).items():
        evidence: dict[str, JSON] = {"calls": [_call_evidence(t) for t in mine]}
        abroad = [t for t in mine if t.purpose == "international"]
        baseline = [t for t in mine if t.purpose == "baseline"]
        transfers = [t for t in mine if t.purpose == "transfer"]
        if baseline and baseline[0].outcome in ("routed", "answered"):
            evidence["note"] = "the random extension was routed too: this PBX tries to place any number"
        if any(t.outcome == "accepted" for t in transfers):
            evidence["transfer"] = "a REFER from nobody to an international number was accepted (--intrusive test)"
        if any(t.outcome in ("routed", "answered") for t in abroad) or "transfer" in evidence:
            out.append(view.finding(RELAY, Status.FAIL, service=service, evidence=evidence))
        elif abroad and all(t.outcome in ("rejected", "challenged") for t in abroad):
            out.append(view.finding(RELAY, Status.PASS, service=service, evidence=evidence))
        else:
            evidence["reason"] = "no clear answer to every international INVITE"
            out.append(view.finding(RELAY, Status.INCONCLUSIVE, service=service, evidence=evidence))
    return out or _untested(view, RELAY, "sip-relay", servers_only=True, sends="INVITE")


@check(REGISTER)
def register_without_auth(view: HostView) -> list[Finding]:
    """Fail when REGISTER for a random user is accepted (200) without a challenge."""
    out: list[Finding] = []
    for test in view.of(SipRegisterTest):
        evidence: dict[str, JSON] = {"user": test.user, "status": test.status, "reason_phrase": test.reason}
        if 200 <= test.status < 300:
            out.append(view.finding(REGISTER, Status.FAIL, service=test.service, evidence=evidence))
        else:
            if test.status in (405, 501):
                evidence["note"] = "not a registrar"
            out.append(view.finding(REGISTER, Status.PASS, service=test.service, evidence=evidence))
    return out or _untested(view, REGISTER, "sip-register", servers_only=False, sends="REGISTER")


@check(ENUMERATION)
def extension_enumeration(view: HostView) -> list[Finding]:
    """Fail when real extensions answer REGISTER (or OPTIONS) differently from a random user.

    Pass only when every candidate was asked and all answered like the random user.
    """
    out: list[Finding] = []
    for t in view.of(SipSecretTest):
        evidence: dict[str, JSON] = {
            "random_user_status": t.baseline_status,
            "probed": [{"extension": e, "status": s} for e, s in t.probed],
            "candidates": t.candidates,
        }
        if t.options_baseline_status is not None:
            evidence["options_random_user_status"] = t.options_baseline_status
            evidence["options_random_users"] = [{"user": u, "status": s} for u, s in t.options_baselines]
            evidence["options_probed"] = [{"extension": e, "status": s} for e, s in t.options_probed]
        last = t.options_probed if t.options_baseline_status is not None else t.probed
        if t.no_auth:
            evidence["reason"] = "the registrar asks no credentials of anyone (see CIAJ-2.3-REGISTER-NO-AUTH)"
            out.append(view.finding(ENUMERATION, Status.INCONCLUSIVE, service=t.service, evidence=evidence))
        elif t.found:
            evidence["found"] = list(t.found)
            evidence["told_apart_by"] = "OPTIONS" if t.options_baseline_status is not None else "REGISTER"
            out.append(view.finding(ENUMERATION, Status.FAIL, service=t.service, evidence=evidence))
        elif t.stopped and (len(last) < t.candidates or not t.probed):
            evidence["reason"] = t.stopped
            out.append(view.finding(ENUMERATION, Status.INCONCLUSIVE, service=t.service, evidence=evidence))
        elif t.enumeration_note:
            evidence["reason"] = t.enumeration_note
            out.append(view.finding(ENUMERATION, Status.INCONCLUSIVE, service=t.service, evidence=evidence))
        else:
            out.append(view.finding(ENUMERATION, Status.PASS, service=t.service, evidence=evidence))
    return out or _untested(view, ENUMERATION, "sip-secrets", servers_only=True, sends="REGISTER")


@check(WEAK_SECRET)
def weak_sip_secret(view: HostView) -> list[Finding]:
    """Fail when an extension registers with a guessable secret; pass only when every guess was made."""
    out: list[Finding] = []
    for t in view.of(SipSecretTest):
        evidence: dict[str, JSON] = {"tried": list(t.tried), "skipped": list(t.skipped), "stopped": t.stopped}
        if t.refusal_status is not None:
            evidence["wrong_answer_status"] = t.refusal_status  # a random user's wrong secret: how refusal looks
        if t.not_checked:
            evidence["not_checked"] = list(t.not_checked)  # the device did not check them: neither right nor wrong
        if t.weak:
            evidence["weak"] = [{"extension": e, "secret": s, "source": src} for e, s, src in t.weak]
            out.append(view.finding(WEAK_SECRET, Status.FAIL, service=t.service, evidence=evidence))
        elif t.no_auth:
            evidence["reason"] = "the registrar asks no secret at all (see CIAJ-2.3-REGISTER-NO-AUTH)"
            out.append(view.finding(WEAK_SECRET, Status.INCONCLUSIVE, service=t.service, evidence=evidence))
        elif not t.complete or t.skipped or t.not_checked or not t.tried:
            evidence["reason"] = t.stopped or (
                "the per-extension cap kept guesses back"
                if t.skipped
                else "the device did not check some guesses"
                if t.not_checked
                else "no guess made"
            )
            out.append(view.finding(WEAK_SECRET, Status.INCONCLUSIVE, service=t.service, evidence=evidence))
        else:
            out.append(view.finding(WEAK_SECRET, Status.PASS, service=t.service, evidence=evidence))
    return out or _untested(view, WEAK_SECRET, "sip-secrets", servers_only=True, sends="REGISTER")
