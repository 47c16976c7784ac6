"""CIAJ 1.3: the device's version is hit by a vulnerability CISA KEV lists as exploited in the wild.

Matched offline against the feeds `edgeaudit feeds import` loaded: NVD CVE
ranges by the profile's CPEs and version scheme, KEV for "exploited". Without
both feeds, a version, or CPEs in the profile, the check is inconclusive. A
pass on feeds older than the limit is inconclusive too (stale knowledge).
"""

from __future__ import annotations

import datetime as dt

from probes.observations import JSON
from scanner.checks import HostView, check
from scanner.findings import Finding, Status

CHECK = "CIAJ-1.3-KNOWN-EXPLOITED"
MAX_LISTED = 20


def _unknown(view: HostView, reason: str) -> list[Finding]:
    return [view.finding(CHECK, Status.INCONCLUSIVE, evidence={"reason": reason})]


@check(CHECK)
def known_exploited(view: HostView) -> list[Finding]:
    """Fail when a KEV-listed CVE's NVD range holds the device's version."""
    status = view.feeds.status() if view.feeds is not None else {}
    missing = [k for k in ("kev", "nvd") if k not in status]
    if missing:
        return _unknown(
            view, f"no {' and no '.join(m.upper() for m in missing)} feed imported (edgeaudit feeds import)"
        )
    if view.match is None:
        return _unknown(view, "device not identified: no product to look up")
    profile, version = view.match.profile, view.match.version
    cpes = profile.cpes_for(view.match.model)
    if not cpes:
        return _unknown(view, f"{profile.id}: the profile names no CPE (or its model was not seen)")
    if not version:
        return _unknown(view, f"{profile.id}: firmware version not visible to the probes that ran")
    assert view.feeds is not None
    result = view.feeds.match(cpes, version, profile.version_scheme)
    exploited = [m for m in result.matches if m.exploited]
    evidence: dict[str, JSON] = {
        "profile": profile.id,
        "version": version,
        "cpe": [":".join(c) for c in cpes],
        "kev_released": result.kev_released,
        "nvd_released": result.nvd_released,
        "known_exploited": [
            {"cve": m.cve, "name": m.kev_name, "kev_added": m.kev_added, "due": m.kev_due, "range": m.criteria}
            | ({"note": "NVD also requires a platform CPE, not checked"} if m.anded else {})
            for m in exploited[:MAX_LISTED]
        ],
        "other_cves": [m.cve for m in result.matches if not m.exploited][:MAX_LISTED],
    }
    if result.unparsed:
        evidence["unreadable_ranges"] = result.unparsed
    if exploited:
        return [view.finding(CHECK, Status.FAIL, evidence=evidence)]
    if not result.product_entries:
        reason = "the imported NVD data has no entry for these products: silence there is not a pass"
        return [view.finding(CHECK, Status.INCONCLUSIVE, evidence={**evidence, "reason": reason})]
    dates = [d for d in (result.kev_released, result.nvd_released) if d]
    try:
        oldest = min(dt.date.fromisoformat(d) for d in dates) if dates else None
    except ValueError:
        oldest = None
    if oldest is None:
        return [view.finding(CHECK, Status.INCONCLUSIVE, evidence={**evidence, "reason": "feed dates unknown"})]
    age = (view.today - oldest).days
    if age > view.max_feed_age_days:
        reason = f"feeds are {age} days old (limit {view.max_feed_age_days}): stale knowledge, not trusted for a pass"
        return [view.finding(CHECK, Status.INCONCLUSIVE, evidence={**evidence, "reason": reason})]
    return [view.finding(CHECK, Status.PASS, evidence=evidence)]
