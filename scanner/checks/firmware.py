"""CIAJ 1.3: firmware against the profile's baselines (latest, minimum supported, end of life)."""

from __future__ import annotations

from profiles import versions
from scanner.checks import HostView, check
from scanner.findings import Finding, Status

OUTDATED = "CIAJ-1.3-FIRMWARE-OUTDATED"
EOL = "CIAJ-1.3-FIRMWARE-EOL"


def _unknown(view: HostView, reason: str) -> list[Finding]:
    return [view.finding(cid, Status.INCONCLUSIVE, evidence={"reason": reason}) for cid in (OUTDATED, EOL)]


@check(OUTDATED)
def firmware_outdated(view: HostView) -> list[Finding]:
    """Version < latest known -> fail; equal or newer -> pass; unknown -> inconclusive."""
    return _judge(view)[0]


@check(EOL)
def firmware_eol(view: HostView) -> list[Finding]:
    """Branch past end of life, or version below minimum supported -> fail."""
    return _judge(view)[1]


def _judge(view: HostView) -> tuple[list[Finding], list[Finding]]:
    if view.match is None:
        o, e = _unknown(view, "device not identified: no baseline to judge against")
        return [o], [e]
    profile = view.match.profile
    version = view.match.version
    if not version:
        o, e = _unknown(view, f"{profile.id}: firmware version not visible to the probes that ran")
        return [o], [e]
    baseline = profile.baseline_for(version)
    if baseline is None:
        o, e = _unknown(view, f"{profile.id}: no baseline for version {version}")
        return [o], [e]
    scheme = profile.version_scheme
    age = (view.today - baseline.as_of).days
    stale = age > view.max_baseline_age_days
    base_ev = {
        "profile": profile.id,
        "version": version,
        "branch": baseline.branch,
        "source": profile.sources.get(baseline.source, {}).get("title", baseline.source),
        "source_url": profile.sources.get(baseline.source, {}).get("url"),
        "as_of": baseline.as_of.isoformat(),
    }
    stale_reason = (
        f"baseline is {age} days old (limit {view.max_baseline_age_days}): stale knowledge, not trusted for a pass"
    )

    def settle(check_id: str, failed: bool | None, ev: dict[str, object], reason: str) -> Finding:
        evidence = {**base_ev, **ev}
        if failed is None:
            return view.finding(check_id, Status.INCONCLUSIVE, evidence={**evidence, "reason": reason})
        if failed:
            return view.finding(check_id, Status.FAIL, evidence=evidence)
        if stale:
            return view.finding(check_id, Status.INCONCLUSIVE, evidence={**evidence, "reason": stale_reason})
        return view.finding(check_id, Status.PASS, evidence=evidence)

    if baseline.latest:
        older = versions.compare(version, baseline.latest, scheme) < 0
        outdated = settle(OUTDATED, older, {"latest": baseline.latest}, "")
    else:
        outdated = settle(OUTDATED, None, {}, "baseline has no latest-known version")
    eol_failed: bool | None = None
    ev: dict[str, object] = {}
    if baseline.end_of_life is not None:
        ev["end_of_life"] = baseline.end_of_life.isoformat()
        eol_failed = view.today >= baseline.end_of_life
    if baseline.minimum_supported:
        ev["minimum_supported"] = baseline.minimum_supported
        below = versions.compare(version, baseline.minimum_supported, scheme) < 0
        eol_failed = bool(eol_failed) or below
    eol = settle(EOL, eol_failed, ev, "baseline has neither an end-of-life date nor a minimum supported version")
    return [outdated], [eol]
