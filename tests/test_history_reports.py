"""CLI end to end against emulated devices: reports, history, diff, resume after a kill, HTML in Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from scanner.cli import main
from tests.conftest import FAST, FLEET_PORTS

ROOT = Path(__file__).resolve().parent.parent
PORTS = FLEET_PORTS


def _device(i: int, **extra: object) -> dict[str, object]:
    return {
        "name": f"d{i}",
        "address": f"127.0.{210}.{i}",
        "persona": "router",
        "model": "EL-R100",
        "firmware": "3.2.1",
        "services": {"ssh": 2222, "http": 8080, "snmp": 1161, "ntp": 1123},
        "communities": ["public"],
        "http_mode": "redirect",
        **extra,
    }


def _scan(tmp_path: Path, *args: str) -> int:
    return main(["scan", *args, "--db", str(tmp_path / "h.db"), *PORTS, *FAST])


def test_scan_writes_three_reports_that_match_the_schema(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fleet([_device(1, firmware="2.4.1", http_mode="basic"), _device(2)])
    out = tmp_path / "out"
    # Without a KEV/NVD feed, clause 1.3 cannot pass (CIAJ-1.3-KNOWN-EXPLOITED is inconclusive): import the
    # lab's frozen fixtures, and let their age not matter.
    feed_files = [str(ROOT / "lab" / "feeds" / f) for f in ("kev-edgelab.json", "nvd-edgelab.json")]
    assert main(["feeds", "import", *feed_files, "--db", str(tmp_path / "h.db")]) == 0
    rc = _scan(tmp_path, "127.0.210.1-2", "--out", str(out), "--lang", "en", "--max-feed-age", "3650")
    assert rc == 1  # the EOL router fails at high
    report = json.loads((out / "report.json").read_text())
    schema = json.loads((ROOT / "reports" / "schema.json").read_text())
    jsonschema.validate(report, schema)
    assert {d["address"] for d in report["devices"]} == {"127.0.210.1", "127.0.210.2"}
    assert report["summary"]["clause_matrix"]["127.0.210.1"]["1.3"] == "fail"
    assert report["summary"]["clause_matrix"]["127.0.210.2"]["1.3"] == "pass"
    csv_rows = (out / "findings.csv").read_text().splitlines()
    assert csv_rows[0].startswith("sweep,address") and len(csv_rows) > 5
    html = (out / "report.html").read_text()
    assert "CIAJ-1.3-FIRMWARE-EOL" in html
    for external in ('src="http', 'href="http', "@import", "url(http"):
        assert external not in html
    # secrets masked by default: the SNMP community appears only as first char + length
    assert '"community": "p*** (6)"' in (out / "report.json").read_text()
    assert "public" not in (out / "findings.csv").read_text()


def test_exit_codes_and_usage_errors(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fleet([_device(3, communities=[])])  # (an accepted `public` is a high default-credential failure)
    assert _scan(tmp_path, "127.0.210.3", "--out", str(tmp_path / "o")) == 0  # hardened: nothing >= high
    assert _scan(tmp_path, "10.0.0.0/8", "--out", str(tmp_path / "o")) == 2  # refused scope
    assert main(["check", "127.0.210.0/30", "--db", str(tmp_path / "h.db")]) == 2


def test_a_crash_exits_3_never_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug (a template or code error) must not read as 'findings' (1) to a scheduler or the Makefile."""
    import scanner.cli

    def broken(args: object) -> int:
        raise RuntimeError("template bug")

    monkeypatch.setattr(scanner.cli, "_history", broken)
    assert main(["history", "--db", str(tmp_path / "h.db")]) == 3
    err = capsys.readouterr().err
    assert "RuntimeError: template bug" in err and "internal error" in err


def test_history_lists_sweeps(fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    fleet([_device(4)])
    _scan(tmp_path, "127.0.210.4", "--out", str(tmp_path / "a"))
    capsys.readouterr()
    assert main(["history", "--db", str(tmp_path / "h.db")]) == 0
    out = capsys.readouterr().out
    assert "127.0.210.4" in out and "complete" in out


def test_diff_sees_changed_device(fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    fleet([_device(6, firmware="3.2.1")])
    _scan(tmp_path, "127.0.210.6", "--out", str(tmp_path / "a"))
    fleet([_device(7, firmware="2.4.1", services={"ssh": 2222, "telnet": 2323}, http_mode="basic")])
    _scan(tmp_path, "127.0.210.6-7", "--out", str(tmp_path / "b"))
    db = str(tmp_path / "h.db")
    capsys.readouterr()
    assert main(["diff", "--db", db, "--json"]) == 1  # the new device fails EOL (high)
    d = json.loads(capsys.readouterr().out)
    assert d["new_devices"] == ["127.0.210.7"] and d["vanished_devices"] == []
    assert main(["diff", "--db", db]) == 1
    assert "+ device 127.0.210.7" in capsys.readouterr().out
    assert main(["report", "-1", "--db", db, "--format", "csv", "--lang", "ja"]) == 0
    assert "127.0.210.7" in capsys.readouterr().out


def test_diff_reports_finding_and_fingerprint_changes(tmp_path: Path) -> None:
    from probes.observations import Mode
    from scanner.device import DeviceRecord, Fingerprint, Kind
    from scanner.diff import diff
    from scanner.findings import Finding, Severity, Status
    from scanner.store import HostRecord, SweepRecord

    def rec(sid: str, status: Status, fw: str) -> SweepRecord:
        f = Finding("CIAJ-1.3-FIRMWARE-EOL", "10.0.0.1", status, Severity.HIGH, "1.3", Mode.DEFAULT)
        device = DeviceRecord(firmware=fw, fingerprints=(Fingerprint("tcp/22", Kind.BANNER, fw),))
        host = HostRecord("10.0.0.1", "up", None, 0, 0, device, [f])
        return SweepRecord(sid, "scan", "default", "complete", 0, 0, {}, {}, "lan", [host])

    d = diff(rec("a", Status.PASS, "3.0"), rec("b", Status.FAIL, "2.0"))
    assert [(o.status, n.status) for o, n in d.changed] == [(Status.PASS, Status.FAIL)]
    assert {c["field"] for c in d.fingerprint_changes} == {"firmware", "tcp/22 banner"}
    assert d.worst_new() == Severity.HIGH
    back = diff(rec("b", Status.FAIL, "2.0"), rec("c", Status.PASS, "3.0"))
    assert back.worst_new() is None


def test_sweep_level_findings_are_replaced_not_added_when_judged_again(tmp_path: Path) -> None:
    """A resumed sweep judges the cross-host checks again: the earlier verdicts must go, the rest stay."""
    from probes.observations import Mode
    from scanner.device import DeviceRecord
    from scanner.findings import Finding, Severity, Status
    from scanner.orchestrator import HostResult
    from scanner.store import Store

    store = Store(tmp_path / "h.db")
    sid = store.begin("scan", "default", {}, {}, "lan")
    eol = Finding("CIAJ-1.3-FIRMWARE-EOL", "192.0.2.1", Status.PASS, Severity.HIGH, "1.3", Mode.DEFAULT)
    store.host_done(sid, HostResult("192.0.2.1", "up", 0.0, 1.0, [eol], DeviceRecord()))
    reuse = "CIAJ-1.2-REUSED-CREDENTIAL"
    for status in (Status.FAIL, Status.PASS):
        verdict = Finding(reuse, "192.0.2.1", status, Severity.HIGH, "1.2", Mode.DEFAULT)
        store.replace_findings(sid, {reuse}, {"192.0.2.1": [verdict]})
    found = [(f.check_id, f.status) for f in store.load(sid).findings]
    assert found == [("CIAJ-1.3-FIRMWARE-EOL", Status.PASS), (reuse, Status.PASS)]


def test_sweeps_begun_in_the_same_second_get_distinct_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids are the start second plus a 24-bit random tag: a tag already taken is drawn again (StoreError
    only after 8 draws).

    CI once failed with 200 sweeps begun within a second and a 16-bit tag (UNIQUE constraint failed)."""
    import datetime as dt
    import types

    import scanner.store as store_mod
    from profiles.errors import StoreError

    frozen = dt.datetime(2026, 12, 3, 8, 0, 0, tzinfo=dt.UTC)
    clock = types.SimpleNamespace(UTC=dt.UTC, datetime=types.SimpleNamespace(now=lambda tz: frozen))
    monkeypatch.setattr(store_mod, "dt", clock)
    store = store_mod.Store(tmp_path / "h.db")
    tags = iter(["aaaaaa", "aaaaaa", "aaaaaa", "bbbbbb"])
    sizes: list[int] = []

    def token_hex(n: int) -> str:
        sizes.append(n)
        return next(tags)

    monkeypatch.setattr("scanner.store.secrets.token_hex", token_hex)
    first = store.begin("scan", "default", {}, {}, "lan")
    second = store.begin("scan", "default", {}, {}, "lan")
    assert (first, second) == ("20261203T080000Z-aaaaaa", "20261203T080000Z-bbbbbb")
    assert {r["id"] for r in store.list()} == {first, second} and set(sizes) == {3}
    monkeypatch.setattr("scanner.store.secrets.token_hex", lambda n: "aaaaaa")  # every draw collides
    with pytest.raises(StoreError, match="no free sweep id"):
        store.begin("scan", "default", {}, {}, "lan")
    assert len(store.list()) == 2


def test_killed_sweep_resumes_without_losing_finished_hosts(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    quick = [_device(i) for i in range(20, 23)]
    slow = [_device(i, hang=["ssh", "http"]) for i in range(23, 26)]
    fleet(quick + slow)
    db = tmp_path / "h.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "scanner.cli",
        "scan",
        "127.0.210.20-25",
        "--db",
        str(db),
        "--concurrency",
        "1",
        "--host-budget",
        "3",
        "--out",
        str(tmp_path / "o"),
        *PORTS,
        *FAST,
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            time.sleep(0.1)
            if not db.exists():
                continue
            try:
                with sqlite3.connect(db) as con:
                    if con.execute("SELECT COUNT(*) FROM hosts").fetchone()[0] >= 3:
                        break
            except sqlite3.OperationalError:
                continue  # the file exists a moment before its tables do
        proc.send_signal(signal.SIGKILL)  # no chance to clean up
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with sqlite3.connect(db) as con:
        before = dict(con.execute("SELECT address, finished_at FROM hosts").fetchall())
        state = con.execute("SELECT state FROM sweeps").fetchone()[0]
    assert 3 <= len(before) < 6 and state == "running"
    rc = main(["scan", "--resume", "--db", str(db), "--out", str(tmp_path / "o"), "-q"])
    assert rc in (0, 1)
    with sqlite3.connect(db) as con:
        after = dict(con.execute("SELECT address, finished_at FROM hosts").fetchall())
        state = con.execute("SELECT state FROM sweeps").fetchone()[0]
    assert set(after) == {f"127.0.210.{i}" for i in range(20, 26)}
    assert all(after[a] == t for a, t in before.items())  # finished hosts kept, not re-scanned
    assert state == "complete"
    from scanner.store import Store

    record = Store(db).load(Store(db).resolve(None))
    reuse = [f.address for f in record.findings if f.check_id == "CIAJ-1.2-REUSED-CREDENTIAL"]
    up = [h.address for h in record.hosts if h.state in ("up", "budget")]
    assert sorted(reuse) == sorted(up)  # judged across all hosts, old and resumed, once each


def test_profiles_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list"]) == 0
    assert "yamaha-rtx" in capsys.readouterr().out
    assert main(["profiles", "validate"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nclass: toaster\nvendor: X\nsources: {s: {title: t}}\nfingerprints: []\n")
    assert main(["profiles", "validate", str(bad)]) == 2
    assert f"{bad}: class" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
@pytest.mark.skipif(
    CHROMIUM is None and os.geteuid() != 0, reason="chromium not installed (make test installs it as root)"
)
def test_html_report_renders_in_chromium_and_banner_script_is_text(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert CHROMIUM, "chromium must be installed when running as root (make sysdeps)"
    fleet([_device(30, firmware="3.2.1<script>document.title='pwned'</script>")])
    out = tmp_path / "out"
    _scan(tmp_path, "127.0.210.30", "--out", str(out), "--lang", "ja")
    html_path = out / "report.html"
    assert "&lt;script&gt;document.title" in html_path.read_text()
    profile = tmp_path / "chrome-profile"
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            html_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "<title>edgeaudit 診断レポート" in dom  # rendered, and the title was not rewritten
    assert "pwned</title>" not in dom
    assert "<script" not in dom.replace("&lt;script", "")  # no script element, only escaped text
    assert "CIAJ-1.3-FIRMWARE-OUTDATED" in dom and "ガイドライン項目別マトリクス" in dom
