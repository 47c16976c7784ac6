"""findings.jsonl: one finding a line, each report.json's finding shape, written as each host finishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from probes.observations import Mode
from scanner import outfiles, runner
from scanner.checks import make_finding
from scanner.cli import main
from scanner.device import DeviceRecord
from scanner.findings import Status
from scanner.orchestrator import HostResult
from scanner.store import Store
from scanner.targets import build_scope
from tests.conftest import FAST, FLEET_PORTS, ROOT


def _finding_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((ROOT / "reports" / "schema.json").read_text(encoding="utf-8"))
    return {**schema["$defs"]["finding"], "$defs": schema["$defs"]}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_scan_streams_the_same_findings_as_its_report(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    device = {
        "name": "weak", "address": "127.0.216.1", "persona": "router", "model": "EL-R100", "firmware": "3.2.1",
        "services": {"ssh": 2222, "http": 8080, "snmp": 1161, "ntp": 1123}, "communities": ["public"],
        "users": {"admin": "admin"},
    }  # fmt: skip
    fleet([device, {**device, "name": "twin", "address": "127.0.216.2"}])
    out, db = tmp_path / "out", tmp_path / "h.db"
    main(["scan", "127.0.216.1-2", "--out", str(out), "--db", str(db), "--lang", "en", *FLEET_PORTS, *FAST])
    lines = _lines(out / "findings.jsonl")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    schema = _finding_schema()
    for line in lines:
        jsonschema.validate(line, schema)
        assert line["sweep"] == report["sweep"]["id"]
    sweep = report["sweep"]["id"]
    findings = [f for d in report["devices"] for f in d["findings"]]
    in_report = sorted(json.dumps({**f, "sweep": sweep}, sort_keys=True) for f in findings)
    assert sorted(json.dumps(line, sort_keys=True) for line in lines) == in_report  # evidence masked alike
    ids = {(line["address"], line["id"], line["status"]) for line in lines}
    assert ("127.0.216.1", "CIAJ-1.2-DEFAULT-CREDENTIAL", "fail") in ids
    # The two devices share admin/admin: the sweep-level reuse check is judged at the end and appended too.
    assert any(i == "CIAJ-1.2-REUSED-CREDENTIAL" for _, i, _ in ids), sorted({i for _, i, _ in ids})
    passwords = {line["evidence"]["password"] for line in lines if "password" in line["evidence"]}
    assert passwords and "admin" not in passwords  # masked ("a*** (5)"), never in clear
    # `report --format jsonl` gives the same lines from the history.
    again = tmp_path / "again.jsonl"
    assert main(["report", "--db", str(db), "--format", "jsonl", "-o", str(again)]) in (0, 1)
    assert sorted(_lines(again), key=lambda x: json.dumps(x, sort_keys=True)) == sorted(
        lines, key=lambda x: json.dumps(x, sort_keys=True)
    )


def test_each_host_is_on_disk_as_soon_as_it_is_recorded(tmp_path: Path) -> None:
    """A SIEM tailing the file sees a host's findings when the host is done, not when the sweep is."""
    store = Store(tmp_path / "h.db")
    scope = build_scope(["127.0.0.5"])
    sweep_id = store.begin("scan", "default", scope.to_json(), {}, "lan")
    path = tmp_path / "findings.jsonl"
    stream = outfiles.FindingStream(path, sweep_id, show_secrets=False)
    sink = runner._StoreSink(store, sweep_id, scope, stream)
    finding = make_finding(
        "CIAJ-1.2-DEFAULT-CREDENTIAL", "127.0.0.5", Status.FAIL, Mode.DEFAULT, "tcp/22",
        {"username": "admin", "password": "hunter2", "attempts": 2},
    )  # fmt: skip
    sink.host_done(HostResult("127.0.0.5", "up", 0.0, 1.0, [finding], DeviceRecord()))
    (line,) = _lines(path)  # flushed, the stream still open
    assert line["id"] == "CIAJ-1.2-DEFAULT-CREDENTIAL" and line["sweep"] == sweep_id
    assert "hunter2" not in path.read_text(encoding="utf-8")
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    stream.close()
    store.close()
    secret = tmp_path / "secret.jsonl"
    shown = outfiles.FindingStream(secret, sweep_id, show_secrets=True)
    shown.findings([finding])
    shown.close()
    assert "hunter2" in secret.read_text(encoding="utf-8") and oct(secret.stat().st_mode & 0o777) == "0o600"


def test_a_new_sweep_starts_the_file_anew_and_a_resumed_one_appends(tmp_path: Path) -> None:
    path = tmp_path / "findings.jsonl"
    finding = make_finding("CIAJ-1.3-FIRMWARE-EOL", "127.0.0.6", Status.FAIL, Mode.DEFAULT)
    for sweep, resumed in (("first", False), ("second", False), ("second", True)):
        stream = outfiles.FindingStream(path, sweep, show_secrets=False, resumed=resumed)
        stream.findings([finding])
        stream.close()
    assert [line["sweep"] for line in _lines(path)] == ["second", "second"]  # nothing left of the first sweep
