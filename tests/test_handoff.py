"""`edgeaudit check`: the installer's checklist on the terminal, and the hand-off sheet (HTML, PDF in Chromium)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from reports import checklist, pdf, render
from scanner.cli import main
from tests.conftest import FAST, FLEET_PORTS

ROUTER = {"name": "r", "address": "127.0.218.1", "persona": "router", "model": "EL-R100", "firmware": "2.4.1",
          "services": {"ssh": 2222, "http": 8080, "telnet": 2323}, "http_mode": "basic",
          "users": {"admin": "admin"}}  # fmt: skip
NOT_OK = r"^  not ok\s+"


def _check(tmp_path: Path, *extra: str) -> int:
    return main(["check", "127.0.218.1", "--db", str(tmp_path / "h.db"), "--out", str(tmp_path / "out"),
                 *FLEET_PORTS, *FAST, *extra])  # fmt: skip


def test_check_prints_each_item_by_clause_plain_when_piped(  # type: ignore[no-untyped-def]
    fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet([ROUTER])
    assert _check(tmp_path, "--lang", "en") == 1
    out = capsys.readouterr().out
    assert "\033[" not in out  # piped (not a terminal): no colour
    lines = out.splitlines()
    assert lines[0].startswith("127.0.218.1 — EdgeLab EL-R100, Firmware 2.4.1")
    headings = [x for x in lines if x and not x.startswith(" ") and x[0].isdigit() and x[1] == "."]
    assert headings[:2] == ["1.2 Password management", "1.3 Firmware updates"]  # clause by clause, in order
    assert re.search(NOT_OK + r"Factory-default credential accepted \[.*tcp/8080.*\]: admin / a\*\*\* \(5\) logged in",
                     out, re.M), out  # fmt: skip
    assert re.search(NOT_OK + r"Management access over a cleartext protocol \[tcp/2323.*\]: telnet answers", out, re.M)
    assert re.search(NOT_OK + r"Firmware branch at end of life .*: firmware 2.4.1 reached its end of life", out, re.M)
    assert re.search(r"^  to check\s+Logging is disabled: .*--auth-file", out, re.M)  # to check, with why
    assert re.match(r"not ok \d+, to check \d+, ok \d+", lines[-1])


def test_colour_on_a_terminal_and_device_text_cannot_drive_it() -> None:
    t = render.strings()["en"]
    evil = "EL\033[2J\033]0;owned\007-R100"
    device = {"address": "192.0.2.1", "device": {"vendor": "EdgeLab", "model": evil, "firmware": "1\r\n2"},
              "findings": [{"id": "CIAJ-1.3-FIRMWARE-EOL", "status": "fail", "severity": "high", "clause": "1.3",
                            "service": None, "title": {"en": "Firmware EOL", "ja": "x"},
                            "summary": {"en": "banner\033[31m said", "ja": "x"}}]}  # fmt: skip
    text = checklist.to_terminal(device, t, "en", colour=True)
    assert "\033[1;31mnot ok" in text  # the verdict is coloured
    assert "\033[2J" not in text and "\007" not in text and "\r" not in text
    assert "EL\\x1b[2J\\x1b]0;owned\\x07-R100" in text and "banner\\x1b[31m said" in text


def _pages(pdf_bytes: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf_bytes))


@pytest.mark.browser
def test_the_hand_off_sheet_prints_on_one_or_two_a4_pages(  # type: ignore[no-untyped-def]
    fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if pdf.chromium() is None:
        if os.geteuid() == 0:
            pytest.fail("chromium must be installed when running as root (make sysdeps)")
        pytest.skip("chromium is not installed (make sysdeps, as root)")
    fleet([ROUTER])
    for lang in ("ja", "en"):
        assert _check(tmp_path, "--handoff", "--lang", lang) == 1
        err = capsys.readouterr().err
        sheet, printed = tmp_path / "out" / "handoff.html", tmp_path / "out" / "handoff.pdf"
        assert f"hand-off sheet: {sheet} and handoff.pdf" in err, err
        html = sheet.read_text(encoding="utf-8")
        words = {"ja": ["引き渡し確認書", "不適合", "設置担当者", "お客様"],
                 "en": ["Hand-off sheet", "not ok", "Installer"]}  # fmt: skip
        assert all(w in html for w in words[lang]) and "EL-R100" in html and "2.4.1" in html
        data = printed.read_bytes()
        assert data.startswith(b"%PDF-") and 1 <= _pages(data) <= 2, _pages(data)
        assert re.search(rb"/MediaBox\s*\[\s*0\s+0\s+594\.\d+\s+841\.\d+", data)  # A4 (595 x 842 points)
        if lang == "ja":  # the Japanese text printed in a Japanese font (make sysdeps installs IPA Gothic), not boxes
            assert re.search(rb"/BaseFont\s*/[A-Z]{6}\+(IPA|Noto(Sans|Serif)CJK|Takao|VL)", data), "no Japanese font"
        printed.unlink()
