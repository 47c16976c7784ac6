"""The installer's checklist of one device: each CIAJ item ok / not ok / to check, with its one-line reason.

Rendered on the terminal by ``edgeaudit check`` (``to_terminal``: grouped by clause, coloured
on a terminal, plain when piped or with NO_COLOR) and on the hand-off sheet
(reports/templates/handoff.html.j2). One row per check: a check judged on several services
takes its worst verdict, and the reason of that finding (the evidence sentence of
scanner/checks/sentences.py, which the report document carries as ``summary``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WORST = ("fail", "inconclusive", "pass")  # worst first; info findings are not checklist items
VERDICT = {"fail": "not_ok", "inconclusive": "to_check", "pass": "ok"}
COLOUR = {"not_ok": "\033[1;31m", "to_check": "\033[33m", "ok": "\033[32m"}
RESET = "\033[0m"


@dataclass(frozen=True)
class Row:
    """One checklist item."""

    check: str
    title: str
    verdict: str  # ok | not_ok | to_check
    reason: str
    services: tuple[str, ...]
    severity: str


@dataclass(frozen=True)
class Clause:
    """The items of one clause of the guideline."""

    clause: str
    title: str
    rows: tuple[Row, ...]


def _clause_key(clause: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in clause.split("."))
    except ValueError:
        return (float("inf"),)  # edgeaudit's own items ("-") last


def items(device: dict[str, Any], t: dict[str, Any], lang: str) -> list[Clause]:
    """A device of the report document as its checklist, clause by clause."""
    by_check: dict[str, list[dict[str, Any]]] = {}
    for f in device["findings"]:
        if f["status"] in WORST:
            by_check.setdefault(f["id"], []).append(f)
    clauses: dict[str, list[Row]] = {}
    for check, found in by_check.items():
        found.sort(key=lambda f: WORST.index(f["status"]))
        worst = found[0]
        reason = (worst.get("summary") or {}).get(lang) or ""
        services = tuple(sorted({f["service"] for f in found if f["status"] == worst["status"] and f["service"]}))
        clauses.setdefault(worst["clause"], []).append(
            Row(check, worst["title"][lang], VERDICT[worst["status"]], reason, services, worst["severity"])
        )
    order = {v: i for i, v in enumerate(("not_ok", "to_check", "ok"))}
    return [
        Clause(c, t["clauses"].get(c, t["engine_items"] if c == "-" else c),
               tuple(sorted(rows, key=lambda r: (order[r.verdict], r.check))))
        for c, rows in sorted(clauses.items(), key=lambda kv: _clause_key(kv[0]))
    ]  # fmt: skip


def to_terminal(device: dict[str, Any], t: dict[str, Any], lang: str, *, colour: bool) -> str:
    """The checklist as terminal text: a heading per clause, a line per item."""
    d = device["device"]
    head = " ".join(x for x in (d.get("vendor"), d.get("model")) if x) or t["unidentified"]
    firmware = f", {t['firmware']} {d['firmware']}" if d.get("firmware") else ""
    lines = [printable(f"{device['address']} — {head}{firmware}")]
    width = max(len(t[v]) for v in COLOUR)
    counts = dict.fromkeys(COLOUR, 0)
    for clause in items(device, t, lang):
        lines.append("")
        lines.append(printable(clause.title))
        for row in clause.rows:
            counts[row.verdict] += 1
            word = t[row.verdict].ljust(width)
            if colour:
                word = COLOUR[row.verdict] + word + RESET
            where = f" [{', '.join(row.services)}]" if row.services else ""
            text = f"{row.title}{where}" + (f": {row.reason}" if row.reason else "")
            lines.append(f"  {word}  {printable(text)}")
    lines.append("")
    lines.append(", ".join(f"{t[v]} {n}" for v, n in counts.items()))
    return "\n".join(lines) + "\n"


def printable(text: str) -> str:
    """Device (or server) text never moves the cursor or clears the screen: control characters are shown, not sent."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
