"""The textfile collector's metrics: counts that match the report, labels that survive hostile text, atomic files."""

from __future__ import annotations

import ipaddress
import os
import stat
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probes.observations import Mode
from profiles.errors import UsageError
from scanner import document, metrics
from scanner.checks import make_finding
from scanner.device import DeviceRecord
from scanner.findings import Severity, Status
from scanner.store import HostRecord, SweepRecord

STARTED, FINISHED = 1_700_000_000.0, 1_700_000_125.0
HOSTILE_SITE = 'Tokyo "HQ" \\\\nas\\share\nfloor 2'


def _host(address: str, *findings: tuple[str, Status] | tuple[str, Status, Severity], state: str = "up") -> HostRecord:
    made = [make_finding(f[0], address, f[1], Mode.DEFAULT, "tcp/22", severity=f[2] if len(f) > 2 else None)
            for f in findings]  # fmt: skip
    return HostRecord(address, state, None, STARTED, FINISHED, DeviceRecord(), made)


def _report(hosts: list[HostRecord], state: str = "complete", down: int = 0, vantage: str = "lan") -> dict[str, Any]:
    scope = {"targets": ["192.0.2.0/24"], "intervals": [[0, 0xC0000200, 0xC00002FF]]}
    sweep = SweepRecord("s1", "scan", "default", state, STARTED, FINISHED, scope, {}, vantage, hosts, down=down)
    return document.build(sweep)


def _fleet() -> list[HostRecord]:
    return [
        _host("192.0.2.1", ("CIAJ-1.2-DEFAULT-CREDENTIAL", Status.FAIL), ("CIAJ-1.3-FIRMWARE-OUTDATED", Status.FAIL),
              ("CIAJ-1.4-NO-REMOTE-LOG", Status.INCONCLUSIVE), ("EA-SERVICES-OPEN", Status.INFO)),
        _host("192.0.2.2", ("CIAJ-1.2-DEFAULT-CREDENTIAL", Status.PASS), ("CIAJ-1.3-FIRMWARE-OUTDATED", Status.FAIL),
              ("CIAJ-1.3-FIRMWARE-OUTDATED", Status.FAIL, Severity.CRITICAL)),  # a severity the catalog does not give
        _host("192.0.2.3", ("CIAJ-3.4-OPEN-RESOLVER", Status.FAIL), ("EA-PROBE-INCONCLUSIVE", Status.INCONCLUSIVE)),
        _host("192.0.2.4", ("EA-HOST-UNREACHABLE", Status.INFO), state="down"),  # down, with a finding: reported
        _host("192.0.2.5", state="down"),  # down, nothing to report: counted, not listed
    ]  # fmt: skip


def _families(text: str) -> dict[str, Any]:
    assert text.endswith("\n")
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: dict[str, Any], name: str) -> float:
    (sample,) = families[name].samples
    return float(sample.value)


def _counts(families: dict[str, Any], name: str, keys: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels[k] for k in keys): s.value for s in families[name].samples}


def test_finding_and_host_counts_are_the_reports() -> None:
    hosts = _fleet()
    report = _report(hosts, down=7)
    families = _families(metrics.to_prometheus(report, site="branch-1", last_complete=None))
    expected = Counter((str(f.status), str(f.severity), f.clause) for h in hosts for f in h.findings)
    assert expected[("fail", "medium", "1.3")] == 2 and expected[("fail", "critical", "1.3")] == 1
    found = _counts(families, "edgeaudit_findings", ("status", "severity", "clause"))
    assert {k: v for k, v in found.items() if v} == expected  # every count exact, none missing, none invented
    # the counts known in advance are written as 0, so a query sees 0 rather than no data
    assert found[("fail", "critical", "2.3")] == 0 and found[("pass", "high", "1.2")] == 0
    by_status = Counter[str]()
    for (status, _severity, _clause), n in found.items():
        by_status[status] += int(n)
    assert dict(by_status) == report["summary"]["by_status"]
    fails = {
        sev: sum(int(n) for (st, s, _), n in found.items() if st == "fail" and s == sev) for sev in document.SEVERITIES
    }
    assert fails == report["summary"]["failures_by_severity"]
    assert _value(families, "edgeaudit_hosts_reported") == 4 == report["summary"]["hosts_reported"]
    assert _value(families, "edgeaudit_hosts_down") == 8  # 7 counted by the store + the one with nothing to report
    assert _value(families, "edgeaudit_scope_addresses") == 256
    verdicts = _counts(families, "edgeaudit_clause_devices", ("clause", "verdict"))
    matrix = Counter((c, v) for row in report["summary"]["clause_matrix"].values() for c, v in row.items())
    assert {k: v for k, v in verdicts.items() if v} == matrix
    assert verdicts[("1.3", "fail")] == 2 and verdicts[("2.3", "na")] == 4 and verdicts[("4.4", "fail")] == 0
    for family in families.values():
        assert family.type == "gauge" and family.documentation and family.name.startswith("edgeaudit_")
        for sample in family.samples:
            assert sample.timestamp is None  # the textfile collector refuses client-side timestamps
            assert sample.labels["site"] == "branch-1" and sample.labels["vantage"] == "lan"
            assert not any(v.startswith("192.0.2.") for v in sample.labels.values())  # no per-address series


def test_a_hostile_site_name_is_escaped_and_parses_back() -> None:
    text = metrics.to_prometheus(_report(_fleet()), site=HOSTILE_SITE, last_complete=None)
    assert '"HQ"' not in text and "\nfloor" not in text  # quotes and the line feed are escaped in the file
    families = _families(text)
    (info,) = families["edgeaudit_sweep_info"].samples
    assert info.labels == {"site": HOSTILE_SITE, "vantage": "lan", "mode": "default", "command": "scan"}
    assert info.value == 1
    samples = [s for f in families.values() for s in f.samples]
    assert len(samples) == sum(1 for line in text.splitlines() if not line.startswith("#"))  # one line each
    assert {s.labels["site"] for s in samples} == {HOSTILE_SITE}
    assert metrics.escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    # without a site there is no site label at all; the vantage, a merge's too, is still on every series
    bare = _families(metrics.to_prometheus(_report(_fleet(), vantage="lan+wan"), site=None, last_complete=None))
    assert all("site" not in s.labels and s.labels["vantage"] == "lan+wan" for f in bare.values() for s in f.samples)


def test_an_interrupted_sweep_keeps_the_last_complete_one() -> None:
    previous = STARTED - 86_400.5
    done = _families(metrics.to_prometheus(_report(_fleet()), site=None, last_complete=previous))
    assert _value(done, "edgeaudit_sweep_complete") == 1
    assert _value(done, "edgeaudit_last_complete_sweep_timestamp_seconds") == FINISHED  # this sweep is the last
    assert _value(done, "edgeaudit_sweep_start_timestamp_seconds") == STARTED
    assert _value(done, "edgeaudit_sweep_end_timestamp_seconds") == FINISHED
    assert _value(done, "edgeaudit_sweep_duration_seconds") == 125
    cut = _families(metrics.to_prometheus(_report(_fleet(), state="interrupted"), site=None, last_complete=previous))
    assert _value(cut, "edgeaudit_sweep_complete") == 0
    assert _value(cut, "edgeaudit_last_complete_sweep_timestamp_seconds") == previous
    assert _value(cut, "edgeaudit_sweep_duration_seconds") == 125  # how long it ran before it was cut
    first = _families(metrics.to_prometheus(_report(_fleet(), state="interrupted"), site=None, last_complete=None))
    assert _value(first, "edgeaudit_sweep_complete") == 0
    assert first["edgeaudit_last_complete_sweep_timestamp_seconds"].samples == []  # none yet: absent, not 0


def test_the_file_is_replaced_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "edgeaudit.prom"
    path.write_text("# an older file\nedgeaudit_sweep_complete 0\n", encoding="utf-8")
    path.chmod(0o600)
    reader = path.open(encoding="utf-8")  # the collector, mid-read of the old file
    before = path.stat().st_ino
    text = metrics.to_prometheus(_report(_fleet()), site=HOSTILE_SITE, last_complete=None)
    metrics.write(path, text)
    assert path.read_text(encoding="utf-8") == text
    assert path.stat().st_ino != before  # a new file renamed over the old one, not the old one rewritten
    assert reader.read().startswith("# an older file")  # the open reader still sees the whole old file
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgeaudit.prom"]  # no temporary file left
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # node_exporter runs as another user
    # a failed write leaves nothing behind and says which file
    taken = tmp_path / "taken.prom"
    taken.mkdir()
    with pytest.raises(UsageError, match=r"taken\.prom"):
        metrics.write(taken, text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgeaudit.prom", "taken.prom"]
    with pytest.raises(UsageError, match=r"\*\.prom"):
        metrics.write(tmp_path / "edgeaudit.txt", text)  # the collector would never read it
    assert not (tmp_path / "edgeaudit.txt").exists()
    # a temporary file must not match the collector's *.prom glob while it is being written
    seen: list[Path] = []
    real_replace = os.replace

    def spy(src: str, dst: Path) -> None:
        seen.append(Path(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    metrics.write(path, text)
    assert [p.parent for p in seen] == [tmp_path] and not seen[0].name.endswith(".prom")  # same filesystem


def test_a_65k_address_scope_stays_small_and_fast() -> None:
    hosts = []
    for n in range(65_536):
        address = str(ipaddress.IPv4Address(0x0A000000 + n))
        hosts.append(
            HostRecord(address, "up", None, STARTED, FINISHED, DeviceRecord(), [
                make_finding("CIAJ-1.2-DEFAULT-CREDENTIAL", address, Status.FAIL, Mode.DEFAULT, "tcp/22"),
            ])
        )  # fmt: skip
    big = _report(hosts)
    began = time.perf_counter()
    text = metrics.to_prometheus(big, site="hq", last_complete=None)
    assert time.perf_counter() - began < 5  # linear in the findings; a per-host quadratic loop takes hours
    small = metrics.to_prometheus(_report(hosts[:1]), site="hq", last_complete=None)
    assert len(text.splitlines()) == len(small.splitlines())  # series bounded by the catalog, not the scope
    found = _counts(_families(text), "edgeaudit_findings", ("status", "severity", "clause"))
    assert found[("fail", "critical", "1.2")] == 65_536
