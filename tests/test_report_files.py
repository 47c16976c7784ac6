"""The files the reports are written to: no formula a spreadsheet would run, no secret readable by others."""

from __future__ import annotations

import csv
import io
import stat
from pathlib import Path
from typing import Any

import pytest

from reports.render import CSV_FIELDS, csv_cell, to_csv
from scanner.cli import main
from tests.conftest import FAST, FLEET_PORTS

HOSTILE = ["=cmd|'/C calc'!A0", "+1+cmd", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


def _report(value: str) -> dict[str, Any]:
    finding = {
        "id": "CIAJ-1.3-FIRMWARE-OUTDATED",
        "status": "fail",
        "severity": "high",
        "clause": "1.3",
        "service": value,
        "mode": "default",
        "title": {"en": "t", "ja": "t"},
        "evidence": {"firmware": value},
    }
    device = {"class": value, "profile": value, "firmware": value}
    return {"sweep": {"id": value}, "devices": [{"address": "198.18.0.9", "device": device, "findings": [finding]}]}


@pytest.mark.parametrize("value", HOSTILE)
def test_no_csv_cell_starts_a_formula(value: str) -> None:
    """OWASP CSV injection: every cell that begins with = + - @ tab or CR is made text."""
    rows = list(csv.reader(io.StringIO(to_csv(_report(value), "en"), newline="")))
    assert rows[0] == CSV_FIELDS
    for cell in rows[1]:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert rows[1][CSV_FIELDS.index("firmware")] == "'" + value  # neutralised, not lost


def test_plain_cells_are_left_alone() -> None:
    assert csv_cell("3.2.1") == "3.2.1" and csv_cell("") == "" and csv_cell("a=b") == "a=b"


def _device(**extra: object) -> dict[str, object]:
    return {
        "name": "d1",
        "address": "127.0.212.1",
        "persona": "router",
        "model": "EL-R100",
        "firmware": "2.4.1",
        "services": {"ssh": 2222, "http": 8080, "snmp": 1161, "ntp": 1123},
        "communities": ["public"],
        "http_mode": "redirect",
        **extra,
    }


def test_report_json_is_the_document_a_device_a_line() -> None:
    """report.json parses back to the very document, whatever its strings hold, with one device per line."""
    import json

    from reports.render import to_json

    report = {
        "schema_version": "2.2",
        "sweep": {"id": "x"},
        "devices": [_report(v)["devices"][0] for v in [*HOSTILE, '日本語\n\u2028"}]', ""]],
    }
    text = to_json(report)
    assert json.loads(text) == report
    lines = text.split("\n")  # U+2028 stays as it is inside a string (ensure_ascii off): only \n ends a line
    assert lines[:4] == ["{", ' "schema_version": "2.2",', ' "sweep": {"id": "x"},', ' "devices": [']
    assert lines[-3:] == [" ]", "}", ""]
    assert [json.loads(line.rstrip(",")) for line in lines[4:-3]] == report["devices"]
    assert json.loads(to_json({"devices": []})) == {"devices": []}


def test_files_with_unmasked_secrets_are_owner_only(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fleet([_device()])
    db = str(tmp_path / "h.db")
    masked, shown = tmp_path / "masked", tmp_path / "shown"
    shown.mkdir()
    (shown / "report.json").write_text("{}")  # an older world-readable file of the same name
    (shown / "report.json").chmod(0o644)
    main(["scan", "127.0.212.1", "--db", db, "--out", str(masked), *FLEET_PORTS, *FAST])
    main(["scan", "127.0.212.1", "--db", db, "--out", str(shown), "--show-secrets", *FLEET_PORTS, *FAST])
    assert '"community": "public"' in (shown / "report.json").read_text()  # the working community, in clear
    for name in ("report.json", "report.html", "findings.csv", "report.sarif", "summary.md", "findings.jsonl"):
        assert stat.S_IMODE((shown / name).stat().st_mode) == 0o600, name
        assert stat.S_IMODE((masked / name).stat().st_mode) & 0o044, name  # masked: the umask's usual mode
    assert '"community": "public"' not in (masked / "report.json").read_text()
    exported = tmp_path / "export.csv"
    assert main(["report", "-1", "--db", db, "--format", "csv", "--show-secrets", "--output", str(exported)]) == 0
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
