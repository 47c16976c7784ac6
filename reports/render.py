"""Render the report document (reports/schema.json, built by scanner.document) as JSON, CSV or HTML.

Everything here reads the document alone, never engine objects: the schema is the contract
between the engine and every format."""

from __future__ import annotations

import csv
import functools
import io
import json
import locale
import os
from typing import Any

import jinja2

from reports import checklist
from reports.i18n import LANGS, strings
from reports.markdown import to_markdown
from reports.sarif import to_sarif

__all__ = ["LANGS", "SCHEMA_VERSION", "default_lang", "render", "strings"]

SCHEMA_VERSION = "2.2"  # 2: typed fingerprint entries (service, kind, value, path); 2.1: summary.hosts_down;
# 2.2: findings[].summary (the evidence as a sentence), summary.inconclusive_groups


def default_lang() -> str:
    """'ja' when the locale is Japanese, else 'en'."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    loc = locale.getlocale()[0] or ""
    return "ja" if loc.lower().startswith("ja") else "en"


_JSON = json.JSONEncoder(ensure_ascii=False)


def to_json(report: dict[str, Any]) -> str:
    """JSON text of the report: a top-level key a line, and in ``devices`` a device a line.

    Written by the json module's C encoder (``indent`` makes it use the pure-Python one: 30 ms
    against 12 ms for the report of a /24's discovery). A device a line reads with grep, diff and jq."""
    lines = []
    for key, value in report.items():
        if key == "devices" and isinstance(value, list) and value:
            devices = ",\n".join("  " + _JSON.encode(device) for device in value)
            lines.append(f" {_JSON.encode(key)}: [\n{devices}\n ]")
        else:
            lines.append(f" {_JSON.encode(key)}: {_JSON.encode(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


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


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Jinja's own cache of compiled templates (a directory of the user's, 0700, in the temporary
    directory; keyed by the template's source and Python's version): compiling report.html.j2 takes
    about 70 ms of every run, loading it 1 ms. None (compile each run) where that directory is unsafe
    or cannot be made."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):  # RuntimeError: the directory exists and is not ours alone
        return None


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,  # device banners are hostile input
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=_bytecode_cache(),
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
    # the document lists the severities worst first
    bars = [{"name": s, "count": sev[s], "width": round(300 * sev[s] / peak)} for s in sev]
    devices = sorted(report["devices"], key=worst_first)
    return (
        _env()
        .get_template("report.html.j2")
        .render(r=report, t=t, lang=lang, bars=bars, devices=devices, open_all=len(devices) <= OPEN_ALL)
    )


OPEN_ALL = 8  # devices: up to this many, every device section is open; beyond, each opens on a click
_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}


def worst_first(device: dict[str, Any]) -> tuple[int, ...]:
    """Sort key of a device: its failures by severity, worst first, then its inconclusive count."""
    fails = [_RANK[f["severity"]] for f in device["findings"] if f["status"] == "fail"]
    by_rank = [-sum(1 for r in fails if r == rank) for rank in (4, 3, 2, 1, 0)]
    unsure = sum(1 for f in device["findings"] if f["status"] == "inconclusive")
    return (*by_rank, -unsure)


def to_handoff(report: dict[str, Any], lang: str) -> str:
    """The one-page hand-off sheet of a `check` (A4 print CSS): each CIAJ item ok / not ok / to check."""
    if lang not in LANGS:
        raise ValueError(f"language must be one of {LANGS}")
    t = strings()[lang]
    device = report["devices"][0] if report["devices"] else None
    clauses = checklist.items(device, t, lang) if device else []
    counts = dict.fromkeys(("not_ok", "to_check", "ok"), 0)
    for c in clauses:
        for row in c.rows:
            counts[row.verdict] += 1
    address = device["address"] if device else ", ".join(report["sweep"]["scope"]["targets"])
    return (
        _env()
        .get_template("handoff.html.j2")
        .render(r=report, t=t, lang=lang, device=device, address=address, clauses=clauses, counts=counts)
    )


def jsonl_line(finding: dict[str, Any], sweep_id: str) -> str:
    """One JSONL line: a finding of report.json's schema, with the sweep it belongs to."""
    return json.dumps({**finding, "sweep": sweep_id}, ensure_ascii=False, separators=(",", ":")) + "\n"


def to_jsonl(report: dict[str, Any]) -> str:
    """One finding per line (JSON Lines), device by device, for a SIEM or jq."""
    return "".join(jsonl_line(f, report["sweep"]["id"]) for dev in report["devices"] for f in dev["findings"])


def render(report: dict[str, Any], fmt: str, lang: str) -> str:
    """Render in one format: html, json, jsonl, csv, sarif (SARIF 2.1.0) or markdown."""
    if fmt == "json":
        return to_json(report)
    if fmt == "jsonl":
        return to_jsonl(report)
    if fmt == "csv":
        return to_csv(report, lang)
    if fmt == "html":
        return to_html(report, lang)
    if fmt == "sarif":
        return to_sarif(report, lang)
    if fmt == "markdown":
        return to_markdown(report, lang)
    raise ValueError(f"unknown format {fmt!r}")
