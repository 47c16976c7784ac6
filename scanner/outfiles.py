"""Writing the report files: those that hold unmasked secrets are readable by their owner only."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from reports import render
from scanner import document
from scanner.store import SweepRecord


def write_text(path: Path, text: str, secret: bool) -> None:
    """Write ``text`` to ``path``; with ``secret`` the file is 0600 before a byte is written, even if it existed."""
    if not secret:
        path.write_text(text, encoding="utf-8")
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older 0644 file of the same name keeps its mode through O_CREAT
    except OSError:
        os.close(fd)
        raise
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_reports(record: SweepRecord, args: argparse.Namespace, interrupted: bool = False) -> None:
    """report.html, report.json and findings.csv into --out, and the one-line summary on stderr."""
    report = document.build(record, show_secrets=args.show_secrets)
    lang = args.lang or render.default_lang()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    secret = bool(args.show_secrets)  # working passwords and communities in clear: owner-only files
    write_text(out / "report.json", render.to_json(report), secret)
    write_text(out / "findings.csv", render.to_csv(report, lang), secret)
    write_text(out / "report.html", render.to_html(report, lang), secret)
    summary = report["summary"]
    fails = ", ".join(f"{n} {s}" for s, n in summary["failures_by_severity"].items() if n) or "none"
    print(
        f"edgeaudit: {summary['hosts_reported']} device(s) answered; failures: {fails}; "
        f"inconclusive: {summary['by_status']['inconclusive']}",
        file=sys.stderr,
    )
    print(
        f"edgeaudit: wrote {out / 'report.html'}, report.json, findings.csv"
        + (" (interrupted: resume with --resume)" if interrupted else ""),
        file=sys.stderr,
    )
