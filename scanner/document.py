"""The report document of a stored sweep: what every format renders (reports/schema.json).

Language-neutral: both languages' titles and remediation from the check catalog are included, and
secrets are masked unless asked. The renderers (reports.render) read this document and nothing else.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from reports.render import SCHEMA_VERSION
from scanner import __version__
from scanner.checks import catalog, sentences, settle
from scanner.findings import Finding, Severity, Status, mask_evidence
from scanner.store import SweepRecord

SEVERITIES = [s.value for s in sorted(Severity, key=lambda s: -s.rank)]  # worst first
STATUSES = [s.value for s in (Status.FAIL, Status.INCONCLUSIVE, Status.PASS, Status.INFO)]


def _iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds") if ts else None


def finding_json(f: Finding, show_secrets: bool) -> dict[str, Any]:
    """One finding as report.json's schema has it (evidence masked unless ``show_secrets``)."""
    entry = catalog().get(f.check_id)
    data = f.to_json()
    data["evidence"] = f.evidence if show_secrets else mask_evidence(f.evidence)
    data["summary"] = sentences.sentence(entry.evidence if entry else {}, str(f.status), data["evidence"])
    data["title"] = entry.title if entry else {"en": f.check_id, "ja": f.check_id}
    data["remediation"] = entry.remediation if entry else {"en": "", "ja": ""}
    data["references"] = list(entry.references) if entry else []
    return data


def _order(f: dict[str, Any]) -> tuple[int, int, str]:
    return (STATUSES.index(f["status"]), SEVERITIES.index(f["severity"]), f["id"])


def build(sweep: SweepRecord, *, show_secrets: bool = False) -> dict[str, Any]:
    """The report document (language-neutral; both languages' texts included)."""
    devices = []
    by_severity = dict.fromkeys(SEVERITIES, 0)
    by_status = dict.fromkeys(STATUSES, 0)
    by_class: dict[str, int] = {}
    clauses = sorted({e.clause for e in catalog().values() if not e.engine and e.clause != "-"})
    matrix: dict[str, dict[str, str]] = {}
    listed: list[list[dict[str, Any]]] = []  # each device's findings, as reported
    for host in sweep.hosts:
        if host.state == "down" and not host.findings:
            continue
        findings = sorted((finding_json(f, show_secrets) for f in host.findings), key=_order)
        listed.append(findings)
        for f in findings:
            by_status[f["status"]] += 1
            if f["status"] == "fail":
                by_severity[f["severity"]] += 1
        cls = host.device.device_class or "unidentified"
        by_class[cls] = by_class.get(cls, 0) + 1
        row: dict[str, str] = {}
        for clause in clauses:
            statuses = {f["status"] for f in findings if f["clause"] == clause}
            row[clause] = next((s for s in ("fail", "inconclusive", "pass") if s in statuses), "na")
        matrix[host.address] = row
        device = host.device.to_json()
        devices.append(
            {
                "address": host.address,
                "hostname": host.hostname,
                "state": host.state,
                "device": device if show_secrets else mask_evidence(device),
                "findings": findings,
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "edgeaudit", "version": __version__},
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "secrets_masked": not show_secrets,
        "sweep": {
            "id": sweep.id,
            "command": sweep.command,
            "mode": sweep.mode,
            "state": sweep.state,
            "vantage": sweep.vantage,
            "started_at": _iso(sweep.started_at),
            "finished_at": _iso(sweep.finished_at),
            "scope": {
                "targets": sweep.scope.get("targets", []) + sweep.scope.get("wan_targets", []),
                "excludes": sweep.scope.get("excludes", []),
                "resolved": sweep.scope.get("resolved", {}),
                "address_count": sum(b - a + 1 for _, a, b in sweep.scope.get("intervals", [])),
            },
        },
        "summary": {
            "hosts_reported": len(devices),
            "hosts_down": sweep.down + sum(1 for h in sweep.hosts if h.state == "down" and not h.findings),
            "failures_by_severity": by_severity,
            "by_status": by_status,
            "devices_by_class": dict(sorted(by_class.items())),
            "clauses": clauses,
            "clause_matrix": matrix,
            "inconclusive_groups": settle.groups(f for found in listed for f in found),
        },
        "devices": devices,
    }
