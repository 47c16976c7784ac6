"""Writing the report files: those that hold unmasked secrets are readable by their owner only."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from profiles.errors import UsageError
from reports import render
from scanner import document
from scanner.findings import Finding
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


class FindingStream:
    """--out's findings.jsonl: one finding a line, appended and flushed as each host finishes.

    A SIEM can tail it during the sweep. A new sweep starts the file anew, a resumed sweep
    appends to it; the sweep-level checks (judged once every host is done) append their
    findings at the end. Written on the
    sweep's writer thread, never on the event loop; owner-only when secrets are shown."""

    def __init__(self, path: Path, sweep_id: str, show_secrets: bool, *, resumed: bool = False) -> None:
        self.sweep_id, self.show_secrets = sweep_id, show_secrets
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = os.O_APPEND if resumed else os.O_TRUNC  # a new sweep's file holds that sweep's findings only
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | keep, 0o600 if show_secrets else 0o644)
        if show_secrets:
            os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def findings(self, findings: Iterable[Finding]) -> None:
        """Append these findings and flush them to the file."""
        self._file.write("".join(render.jsonl_line(document.finding_json(f, self.show_secrets), self.sweep_id)
                                 for f in findings))  # fmt: skip
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def write_reports(
    record: SweepRecord, args: argparse.Namespace, interrupted: bool = False, last_complete: float | None = None
) -> dict[str, Any]:
    """report.html, report.json, findings.csv, report.sarif and summary.md into --out, --metrics-file, and the
    summary on stderr.

    ``last_complete``: when the site's newest complete sweep ended, for the metrics."""
    report = document.build(record, show_secrets=args.show_secrets)
    lang = args.lang or render.default_lang()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    secret = bool(args.show_secrets)  # working passwords and communities in clear: owner-only files
    write_text(out / "report.json", render.to_json(report), secret)
    write_text(out / "findings.csv", render.to_csv(report, lang), secret)
    write_text(out / "report.html", render.to_html(report, lang), secret)
    write_text(out / "report.sarif", render.render(report, "sarif", lang), secret)
    write_text(out / "summary.md", render.render(report, "markdown", lang), secret)
    metrics_file: Path | None = getattr(args, "metrics_file", None)
    if metrics_file is not None:
        from scanner import metrics

        site = (record.config.get("site") or {}).get("name")
        try:
            metrics.write(metrics_file, metrics.to_prometheus(report, site=site, last_complete=last_complete))
        except UsageError as exc:  # the sweep is recorded and its reports written: this costs it nothing more
            print(f"edgeaudit: metrics not written: {exc}", file=sys.stderr)
    summary = report["summary"]
    fails = ", ".join(f"{n} {s}" for s, n in summary["failures_by_severity"].items() if n) or "none"
    print(
        f"edgeaudit: {summary['hosts_reported']} device(s) answered; failures: {fails}; "
        f"inconclusive: {summary['by_status']['inconclusive']}",
        file=sys.stderr,
    )
    print(
        f"edgeaudit: wrote {out / 'report.html'}, report.json, findings.csv, report.sarif, summary.md"
        + (", findings.jsonl" if (out / "findings.jsonl").exists() else "")
        + (" (interrupted: resume with --resume)" if interrupted else ""),
        file=sys.stderr,
    )
    return report


def write_check(report: dict[str, Any], args: argparse.Namespace) -> None:
    """`check`: the installer's checklist on stdout and, with --handoff, the hand-off sheet (HTML, PDF)."""
    from reports import checklist, pdf

    lang = args.lang or render.default_lang()
    t = render.strings()[lang]
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    for device in report["devices"]:
        sys.stdout.write(checklist.to_terminal(device, t, lang, colour=colour))
    if not report["devices"]:
        print(t["sheet_unreachable"])
    sys.stdout.flush()
    if not getattr(args, "handoff", False):
        return
    out: Path = args.out
    sheet = out / "handoff.html"
    write_text(sheet, render.to_handoff(report, lang), bool(args.show_secrets))
    why = pdf.print_pdf(sheet, out / "handoff.pdf")
    done = f"{sheet} and handoff.pdf" if why is None else f"{sheet} (no PDF: {why})"
    print(f"edgeaudit: hand-off sheet: {done}", file=sys.stderr)
