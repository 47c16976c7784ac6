"""Readable reports: evidence as a sentence from the catalog, raw evidence folded, devices collapsible, worst first."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from probes.observations import Mode
from reports import render
from scanner.checks import catalog, make_finding, sentences, settle
from scanner.findings import Severity, Status
from scanner.store import HostRecord
from tests.test_metrics import FINISHED, STARTED, _host, _report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _say(check: str, status: str, evidence: dict[str, object]) -> dict[str, str]:
    return sentences.sentence(catalog()[check].evidence, status, evidence)


def test_a_credential_finding_reads_as_a_sentence_in_both_languages() -> None:
    ev = {"protocol": "http", "attempts": 2, "username": "admin", "password": "a*** (5)", "source": "profile:x"}
    said = _say("CIAJ-1.2-DEFAULT-CREDENTIAL", "fail", ev)
    assert said["en"] == "admin / a*** (5) logged in over http after 2 attempt(s) (profile:x)"
    assert said["ja"] == "http で admin / a*** (5) によるログインに成功（2 回目、profile:x）"
    snmp = _say("CIAJ-1.2-DEFAULT-CREDENTIAL", "fail", {"protocol": "snmp", "attempts": 1, "community": "p*** (6)"})
    assert snmp["en"] == "the community p*** (6) answered over snmp after 1 attempt(s)"  # the next template fits
    passed = _say("CIAJ-1.2-DEFAULT-CREDENTIAL", "pass", {"protocol": "ssh", "attempts": 4})
    assert passed["en"] == "every one of 4 login attempt(s) over ssh was refused"


def test_without_a_template_the_reason_or_the_plain_values_are_the_sentence() -> None:
    reason = "no log message seen and its configuration was not read (authenticated mode: --auth-file)"
    assert _say("CIAJ-1.4-LOGGING-DISABLED", "inconclusive", {"reason": reason}) == {"en": reason, "ja": reason}
    plain = sentences.sentence({}, "fail", {"port": "open", "nested": {"x": 1}, "ok": True})
    assert plain["en"] == "port: open; ok: yes"


def test_device_text_in_a_sentence_is_one_bounded_line() -> None:
    banner = "Welcome\r\n<script>alert(1)</script>\n" + "A" * 500
    said = _say("CIAJ-1.2-CLEARTEXT-ADMIN", "fail", {"protocol": "telnet", "banner": banner, "login_prompt": True})
    assert "\n" not in said["en"] and "\r" not in said["en"]
    assert said["en"].startswith("telnet answers with a login prompt: Welcome / <script>alert(1)</script> / AAA")
    assert len(said["en"]) < 40 + sentences.MAX_VALUE


def test_the_catalog_refuses_templates_whose_languages_disagree() -> None:
    with pytest.raises(ValueError, match="en and ja use different fields"):
        sentences.check("X", {"fail": [{"en": "{username} in", "ja": "{user} ログイン"}]})
    with pytest.raises(ValueError, match="exactly 'en' and 'ja'"):
        sentences.check("X", {"fail": [{"en": "x"}]})
    for entry in catalog().values():  # every template of the catalog names fields en and ja alike
        for templates in entry.evidence.values():
            assert all(sentences.fields(t["en"]) == sentences.fields(t["ja"]) for t in templates)


def _many() -> list[HostRecord]:
    hosts = [_host(f"192.0.2.{i}", ("CIAJ-1.4-NO-REMOTE-LOG", Status.PASS)) for i in range(10, 40)]
    worst = make_finding("CIAJ-1.2-DEFAULT-CREDENTIAL", "192.0.2.77", Status.FAIL, Mode.DEFAULT, "tcp/80",
                         {"protocol": "http", "attempts": 1, "username": "admin", "password": "secret1"})  # fmt: skip
    hosts.insert(5, HostRecord("192.0.2.77", "up", None, STARTED, FINISHED, hosts[0].device, [worst]))
    hosts.insert(9, _host("192.0.2.60", ("CIAJ-1.3-FIRMWARE-OUTDATED", Status.FAIL, Severity.MEDIUM)))
    return hosts


def test_devices_are_collapsible_worst_first_with_the_sentence_and_the_raw_evidence_folded() -> None:
    report = _report(_many())
    html = render.to_html(report, "en")
    sections = re.findall(r'<details class="device" id="dev-([0-9.]+)"( open)?>', html)
    assert len(sections) == 32 and not any(opened for _a, opened in sections)  # many devices: closed
    assert [a for a, _ in sections[:2]] == ["192.0.2.77", "192.0.2.60"]  # a critical failure, then a medium one
    assert "admin / s*** (7) logged in over http after 1 attempt(s)" in html  # the masked password, in a sentence
    assert "secret1" not in html
    assert html.count('<details class="raw">') == 32
    few = render.to_html(_report(_many()[:3]), "ja")
    assert few.count('<details class="device" id=') == 3 and few.count("open>") == 3  # a few devices: open


@pytest.mark.browser
def test_a_large_report_is_navigable_in_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.geteuid() == 0:
            pytest.fail("chromium must be installed when running as root (make sysdeps)")
        pytest.skip("chromium is not installed (make sysdeps, as root)")
    page = tmp_path / "report.html"
    page.write_text(render.to_html(_report(_many()), "ja"), encoding="utf-8")
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    sections = re.findall(r'<details class="device" id="dev-([0-9.]+)"', dom)
    assert len(sections) == 32 and sections[0] == "192.0.2.77"
    assert "<summary>192.0.2.77" in dom and "http で admin / s*** (7) によるログインに成功" in dom


REASONS = {  # reasons the checks give (as the lab's sweeps record them), and the class that settles each
    "no log message seen and its configuration was not read (authenticated mode: --auth-file)": "auth",
    "reachability from outside is judged from the WAN vantage: sweep its outside (WAN) address with "
    "`--vantage wan`, then `edgeaudit merge LAN-SWEEP WAN-SWEEP`": "wan",
    "no credential is sent in safe mode": "safe",
    "the test did not run (safe mode sends no REGISTER)": "safe",
    "the imported NVD data has no entry for these products: silence there is not a pass": "feeds",
    "openwrt: no baseline for version 23.05.5": "profile",
    "device not identified: no baseline to judge against": "profile",
    "a profile:edgelab-router credential logged in first; not tried: admin (generic)": "first-success",
    "the registrar asks no secret at all (see CIAJ-2.3-REGISTER-NO-AUTH)": "related",
    "no earlier complete sweep from this vantage saw this address: this sweep is its baseline": "baseline-sweep",
    "GET http://198.18.0.5:80/: timed out": "timeout",
    "no login service (SSH, Telnet, FTP, HTTP Basic/Digest, SNMP) answered; nothing to try": "nothing-answered",
    "no protocol showed the device clock (NTP, HTTP Date, SIP Date, hrSystemDate)": "nothing-answered",
    "a user agent, not a registrar (REGISTER answered 405): no INVITE sent (an INVITE could ring a phone)": "by-design",
    "something no class knows": "other",
}


@pytest.mark.parametrize(("text", "expected"), list(REASONS.items()))
def test_an_inconclusive_reason_falls_in_the_class_that_settles_it(text: str, expected: str) -> None:
    assert settle.classify({"reason": text}).id == expected


def test_inconclusives_are_grouped_biggest_first_with_their_action() -> None:
    failures = {"failures": [{"probe": "http", "error": "Timeout", "reason": "GET /: timed out"}]}
    assert settle.classify(failures).id == "timeout"  # a probe's failures carry the reason
    assert settle.classify({"checklist": True, "reason": "safe mode"}).id == "checklist"  # the installer's item
    auth = "its configuration was not read (authenticated mode: --auth-file)"
    hosts = [_host(f"192.0.2.{i}", ("CIAJ-1.4-NO-REMOTE-LOG", Status.INCONCLUSIVE)) for i in range(1, 4)]
    for h in hosts:
        h.findings[0].evidence["reason"] = auth
    hosts[0].findings.append(make_finding("CIAJ-2.3-VOIP-EXPOSED", "192.0.2.1", Status.INCONCLUSIVE, Mode.DEFAULT,
                                          "udp/5060", {"reason": "judged from the WAN vantage"}))  # fmt: skip
    report = _report(hosts)
    groups = report["summary"]["inconclusive_groups"]
    assert [(g["class"], g["count"]) for g in groups] == [("auth", 3), ("wan", 1)]
    assert groups[0]["checks"] == [{"id": "CIAJ-1.4-NO-REMOTE-LOG", "count": 3}]
    html = render.to_html(report, "ja")
    assert "判定不能の検出事項（判定に必要な対応別）" in html
    assert "--auth-file で読み取り専用のログイン情報を渡して" in html
    assert settle.classes()[-1].id == "other"


def _fresh_env(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """render's environment built anew, its bytecode cache under ``tmp`` (as the system's temporary directory)."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    render._env.cache_clear()  # and again when the test ends (env_cache_cleared)


@pytest.fixture
def env_cache_cleared() -> object:
    yield None
    render._env.cache_clear()


def test_the_compiled_template_is_cached_between_runs_and_renders_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_cache_cleared: object
) -> None:
    report = _report(_many()[:3])
    _fresh_env(monkeypatch, tmp_path)
    first = render.to_html(report, "en")
    cache = tmp_path / f"_jinja2-cache-{os.getuid()}"
    files = list(cache.iterdir())
    assert len(files) == 1 and oct(cache.stat().st_mode & 0o777) == "0o700"
    # A new process's first render (the environment built again) loads it instead of compiling.
    _fresh_env(monkeypatch, tmp_path)
    compiled: list[str] = []
    real = render._env().compile
    monkeypatch.setattr(render._env(), "compile", lambda *a, **k: compiled.append("x") or real(*a, **k))
    assert render.to_html(report, "en") == first and compiled == []
    # A damaged cache file is compiled again, with the same page.
    files[0].write_bytes(files[0].read_bytes()[:100])
    _fresh_env(monkeypatch, tmp_path)
    assert render.to_html(report, "en") == first


def test_an_unsafe_cache_directory_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_cache_cleared: object
) -> None:
    report = _report(_many()[:3])
    shared = tmp_path / f"_jinja2-cache-{os.getuid()}"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)  # another user could have planted compiled code here
    monkeypatch.setattr("os.chmod", lambda *a, **k: None)  # as when the directory is someone else's: not ours to fix
    _fresh_env(monkeypatch, tmp_path)
    assert render._bytecode_cache() is None
    assert "<html" in render.to_html(report, "en") and list(shared.iterdir()) == []
