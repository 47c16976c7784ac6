"""Build the report document from a stored sweep and render it as JSON, CSV or HTML."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import locale
import os
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import yaml

from scanner import __version__
from scanner.checks import catalog
from scanner.model import Finding, Severity, Status, mask_evidence
from scanner.store import SweepRecord

SCHEMA_VERSION = "2.0"  # 2: the device record's fingerprints are typed entries (service, kind, value, path)
LANGS = ("en", "ja")
SEVERITIES = [s.value for s in sorted(Severity, key=lambda s: -s.rank)]
STATUSES = [s.value for s in (Status.FAIL, Status.INCONCLUSIVE, Status.PASS, Status.INFO)]


def default_lang() -> str:
    """'ja' when the locale is Japanese, else 'en'."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    loc = locale.getlocale()[0] or ""
    return "ja" if loc.lower().startswith("ja") else "en"


@cache
def strings() -> dict[str, dict[str, Any]]:
    """UI strings per language."""
    data: dict[str, dict[str, Any]] = yaml.safe_load(
        resources.files("reports").joinpath("i18n.yaml").read_text(encoding="utf-8")
    )
    return data


def _iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds") if ts else None


def _finding(f: Finding, show_secrets: bool) -> dict[str, Any]:
    entry = catalog().get(f.check_id)
    data = f.to_json()
    data["evidence"] = f.evidence if show_secrets else mask_evidence(f.evidence)
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
    for host in sweep.hosts:
        if host.state == "down" and not host.findings:
            continue
        findings = sorted((_finding(f, show_secrets) for f in host.findings), key=_order)
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
                "targets": sweep.scope.get("targets", []),
                "excludes": sweep.scope.get("excludes", []),
                "resolved": sweep.scope.get("resolved", {}),
                "address_count": sum(b - a + 1 for _, a, b in sweep.scope.get("intervals", [])),
            },
        },
        "summary": {
            "hosts_reported": len(devices),
            "failures_by_severity": by_severity,
            "by_status": by_status,
            "devices_by_class": dict(sorted(by_class.items())),
            "clauses": clauses,
            "clause_matrix": matrix,
        },
        "devices": devices,
    }


def to_json(report: dict[str, Any]) -> str:
    """JSON text of the report."""
    return json.dumps(report, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


CSV_FIELDS = [
    "sweep",
    "address",
    "class",
    "profile",
    "firmware",
    "finding",
    "status",
    "severity",
    "clause",
    "service",
    "mode",
    "title",
    "evidence",
]


# OWASP "CSV Injection": a spreadsheet runs a cell that starts with one of these as a formula, and a
# device's banner or firmware string is hostile input. A leading apostrophe makes it text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never evaluates."""
    return "'" + value if value.startswith(FORMULA_START) else value


def to_csv(report: dict[str, Any], lang: str) -> str:
    """One row per finding; every cell neutralised against formula injection."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")  # RFC 4180; a CR inside a cell is then quoted too
    writer.writerow(CSV_FIELDS)
    for dev in report["devices"]:
        for f in dev["findings"]:
            writer.writerow(
                csv_cell(str(cell))
                for cell in [
                    report["sweep"]["id"],
                    dev["address"],
                    dev["device"].get("class") or "",
                    dev["device"].get("profile") or "",
                    dev["device"].get("firmware") or "",
                    f["id"],
                    f["status"],
                    f["severity"],
                    f["clause"],
                    f["service"] or "",
                    f["mode"],
                    f["title"][lang],
                    json.dumps(f["evidence"], ensure_ascii=False, sort_keys=True),
                ]
            )
    return buf.getvalue()


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,  # device banners are hostile input
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, ensure_ascii=False, indent=1, sort_keys=True)
    return env


def to_html(report: dict[str, Any], lang: str) -> str:
    """A single self-contained HTML file (inline CSS and SVG, no external URL)."""
    if lang not in LANGS:
        raise ValueError(f"language must be one of {LANGS}")
    t = strings()[lang]
    sev = report["summary"]["failures_by_severity"]
    peak = max([1, *sev.values()])
    bars = [{"name": s, "count": sev[s], "width": round(300 * sev[s] / peak)} for s in SEVERITIES]
    return _env().get_template("report.html.j2").render(r=report, t=t, lang=lang, bars=bars)


def render(report: dict[str, Any], fmt: str, lang: str) -> str:
    """Render in one format: html, json or csv."""
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report, lang)
    if fmt == "html":
        return to_html(report, lang)
    raise ValueError(f"unknown format {fmt!r}")
