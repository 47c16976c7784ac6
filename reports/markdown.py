"""The report document as a short Markdown summary for tickets and chat, in Japanese or English.

Device-supplied text (banners, titles, firmware strings in evidence) is hostile input. Every text that
comes from the document is put on one line (control characters, line and paragraph separators and
bidirectional overrides become spaces), cut to a bounded length, then has the characters that mean
something inline in CommonMark/GFM backslash-escaped: a ``|`` cannot end a table cell, a ``<`` cannot
open raw HTML, a backtick cannot open code. The backslash itself is escaped too, so that a backslash in
the text shows as one and never escapes what follows it. The table is bounded: at most ``MAX_ROWS`` rows, then a
line says how many more there are.

The UI strings come from reports.i18n, shared by every renderer.
"""

from __future__ import annotations

import re
from typing import Any

from reports.i18n import LANGS, strings

SEVERITIES = ("critical", "high", "medium", "low", "info")  # worst first (reports/schema.json)
MAX_ROWS = 50  # failing findings listed; the rest are counted
MAX_CELL = 120  # characters of one cell's text before escaping
MAX_SCOPE = 240  # characters of the scope line
_FLATTEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]+")
# Inline syntax only: a cell never starts a line, so block markers (# - + =) cannot act there; with
# [ and ] escaped no link or image can form. $ is GitHub's math, & an entity, ~ strikethrough.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~$&])")


def escape(text: object, limit: int = MAX_CELL) -> str:
    """Hostile text as inline Markdown that renders as the text itself, on one line, bounded."""
    flat = " ".join(_FLATTEN.sub(" ", str(text)).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return _SPECIAL.sub(r"\\\1", flat)


def evidence_line(evidence: dict[str, Any]) -> str:
    """A finding's evidence as one ``key=value; ...`` line (not yet escaped)."""
    parts = []
    for key, value in evidence.items():
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else value
        parts.append(f"{key}={shown}")
    return "; ".join(parts)


def _failing(report: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(device, finding) of every failing finding, worst first, then in the document's device order."""
    rows = [(n, d, f) for n, d in enumerate(report["devices"]) for f in d["findings"] if f["status"] == "fail"]
    rows.sort(key=lambda r: (SEVERITIES.index(r[2]["severity"]), r[0], r[2]["id"]))
    return [(d, f) for _, d, f in rows]


def _header(report: dict[str, Any], t: dict[str, Any]) -> list[str]:
    sweep, scope, summary = report["sweep"], report["sweep"]["scope"], report["summary"]
    vantages = {
        "lan": t["vantage_lan"],
        "wan": t["vantage_wan"],
        "lan+wan": t["vantage_merged"],
        "air": t["vantage_air"],
    }
    targets = ", ".join(scope["targets"]) + (" − " + ", ".join(scope["excludes"]) if scope["excludes"] else "")
    counts = f"{scope['address_count']} {t['addresses']}; {summary['hosts_reported']} {t['hosts_up']}"
    finished = sweep["finished_at"] or "-"
    return [
        f"## {escape(t['title'])} — {escape(sweep['id'])}",
        "",
        f"- **{t['scope']}**: {escape(targets, MAX_SCOPE)} ({escape(counts)})",
        f"- **{t['started']}**: {escape(sweep['started_at'])} / **{t['finished']}**: {escape(finished)}",
        f"- **{t['mode']}**: {escape(sweep['mode'])} / "
        f"**{t['vantage']}**: {escape(vantages.get(sweep['vantage'], sweep['vantage']))} / "
        f"**{t['state']}**: {escape(sweep['state'])}",
    ]


def _severity_table(report: dict[str, Any], t: dict[str, Any]) -> list[str]:
    counts = report["summary"]["failures_by_severity"]
    lines = [f"### {t['failures_by_severity']}", "", f"| {t['severity']} | {t['count']} |", "|---|---:|"]
    lines += [f"| {escape(s)} | {int(counts.get(s, 0))} |" for s in SEVERITIES if s in counts]
    return lines


def _findings_table(report: dict[str, Any], t: dict[str, Any], lang: str) -> list[str]:
    failing = _failing(report)
    lines = [f"### {t['failing_findings']}", ""]
    if not failing:
        return [*lines, t["no_failures"]]
    lines += [
        f"| {t['severity']} | {t['device']} | {t['finding']} | {t['clause']} | {t['check_title']} | {t['evidence']} |",
        "|---|---|---|---|---|---|",
    ]
    for device, f in failing[:MAX_ROWS]:
        where = device["address"] + (f" {f['service']}" if f["service"] else "")
        cells = [f["severity"], where, f["id"], f["clause"], f["title"][lang], evidence_line(f["evidence"])]
        lines.append("| " + " | ".join(escape(c) for c in cells) + " |")
    if len(failing) > MAX_ROWS:
        lines += ["", escape(t["and_more"].format(n=len(failing) - MAX_ROWS))]
    return lines


def to_markdown(report: dict[str, Any], lang: str) -> str:
    """A Markdown summary: sweep, scope, date and mode; failures by severity; failing findings worst first."""
    if lang not in LANGS:
        raise ValueError(f"language must be one of {LANGS}")
    t = strings()[lang]
    lines = [*_header(report, t), "", *_severity_table(report, t), "", *_findings_table(report, t, lang)]
    inconclusive = int(report["summary"]["by_status"].get("inconclusive", 0))
    if inconclusive:
        lines += ["", escape(t["inconclusive_count"].format(n=inconclusive), MAX_SCOPE)]
    return "\n".join(lines) + "\n"
