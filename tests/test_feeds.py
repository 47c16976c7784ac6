"""Offline KEV/NVD feeds: import, CPE and version-range matching per scheme, and the KNOWN-EXPLOITED check."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

import profiles
from probes.observations import Mode
from profiles import Match
from profiles.errors import UsageError
from scanner import feeds
from scanner.checks import HostView
from scanner.checks.vulns import known_exploited
from scanner.findings import Status

ROOT = Path(__file__).resolve().parents[1]
LAB_FEEDS = [ROOT / "lab" / "feeds" / "kev-edgelab.json", ROOT / "lab" / "feeds" / "nvd-edgelab.json"]


def _nvd(*items: tuple[str, str, dict[str, str]], timestamp: str = "2026-11-20T00:00:00.000") -> dict[str, object]:
    return {
        "format": "NVD_CVE",
        "version": "2.0",
        "timestamp": timestamp,
        "vulnerabilities": [
            {
                "cve": {
                    "id": cve,
                    "configurations": [
                        {"nodes": [{"operator": "OR", "cpeMatch": [{"vulnerable": True, "criteria": crit, **rng}]}]}
                    ],
                }
            }
            for cve, crit, rng in items
        ],
    }


def _kev(*cves: str, released: str = "2026-11-20T00:00:00.000Z") -> dict[str, object]:
    return {
        "catalogVersion": "test",
        "dateReleased": released,
        "vulnerabilities": [{"cveID": c, "vendorProject": "v", "product": "p", "vulnerabilityName": c} for c in cves],
    }


def _write(tmp_path: Path, name: str, doc: dict[str, object]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _view(db: feeds.FeedDb, profile_id: str, version: str | None, model: str | None = None, **kw: object) -> HostView:
    profile = next(p for p in profiles.load_all() if p.id == profile_id)
    args: dict[str, object] = {"today": dt.date(2026, 11, 22), **kw}
    return HostView(
        address="192.0.2.1",
        mode=Mode.DEFAULT,
        observations=(),
        match=Match(profile, 5, version, model, ()),
        feeds=db,
        **args,  # type: ignore[arg-type]
    )


def test_lab_fixtures_import_and_flag_only_the_old_branch(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    lines = feeds.import_files(db, LAB_FEEDS)
    assert "CISA KEV" in lines[0] and "NVD CVE 2.0" in lines[1]
    fdb = feeds.FeedDb(db)
    assert fdb.status()["kev"]["released"] == "2026-11-20"
    old = known_exploited(_view(fdb, "edgelab-router", "2.4.1"))
    assert [f.status for f in old] == [Status.FAIL]
    assert [c["cve"] for c in old[0].evidence["known_exploited"]] == ["CVE-2099-10001"]
    mid = known_exploited(_view(fdb, "edgelab-router", "3.1.0"))  # in CVE-2099-10002's range, which KEV lacks
    assert [f.status for f in mid] == [Status.PASS] and mid[0].evidence["other_cves"] == ["CVE-2099-10002"]
    assert [f.status for f in known_exploited(_view(fdb, "edgelab-router", "3.2.1"))] == [Status.PASS]


@pytest.mark.parametrize(
    ("profile_id", "scheme_range", "hit", "miss", "model"),
    [
        ("cisco-ios", {"versionEndExcluding": "15.2(4)M10"}, "15.2(4)M7", "15.2(4)M10", None),
        (
            "mikrotik-routeros",
            {"versionStartIncluding": "7.0", "versionEndIncluding": "7.14.2"},
            "7.9.2",
            "7.14.3",
            None,
        ),
        ("asterisk", {"versionStartIncluding": "20.0.0", "versionEndExcluding": "20.5.2"}, "20.5.1", "20.5.2", None),
        ("yamaha-rtx", {"versionEndExcluding": "15.02.31"}, "Rev.15.02.29", "Rev.15.02.31", "RTX1210"),
    ],
)
def test_ranges_follow_each_vendor_scheme(
    tmp_path: Path, profile_id: str, scheme_range: dict[str, str], hit: str, miss: str, model: str | None
) -> None:
    profile = next(p for p in profiles.load_all() if p.id == profile_id)
    part, vendor, product = profile.cpes_for(model)[0]
    crit = f"cpe:2.3:{part}:{vendor}:{product}:*:*:*:*:*:*:*:*"
    db = tmp_path / "h.sqlite3"
    feeds.import_files(db, [_write(tmp_path, "n.json", _nvd(("CVE-2000-0001", crit, scheme_range))),
                            _write(tmp_path, "k.json", _kev("CVE-2000-0001"))])  # fmt: skip
    fdb = feeds.FeedDb(db)
    assert [f.status for f in known_exploited(_view(fdb, profile_id, hit, model))] == [Status.FAIL]
    assert [f.status for f in known_exploited(_view(fdb, profile_id, miss, model))] == [Status.PASS]


def test_unknowns_are_inconclusive_never_a_pass(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    none = feeds.FeedDb(db)
    assert "no KEV and no NVD" in known_exploited(_view(none, "edgelab-router", "3.2.1"))[0].evidence["reason"]
    feeds.import_files(db, LAB_FEEDS)
    fdb = feeds.FeedDb(db)
    cases = [
        (_view(fdb, "edgelab-router", None), "version"),
        (_view(fdb, "kamailio", "5.6.3"), "no entry for these products"),  # the feed is silent on Kamailio
        (_view(fdb, "yamaha-rtx", "Rev.15.02.29"), "no CPE"),  # {model} needs the model
        (_view(fdb, "edgelab-router", "3.2.1", today=dt.date(2027, 6, 1)), "stale"),
    ]
    for view, why in cases:
        found = known_exploited(view)
        assert [f.status for f in found] == [Status.INCONCLUSIVE], why
        assert why in found[0].evidence["reason"]
    # a stale feed still fails what it knows is exploited
    assert [f.status for f in known_exploited(_view(fdb, "edgelab-router", "2.4.1", today=dt.date(2027, 6, 1)))] == [
        Status.FAIL
    ]


def test_reimport_replaces_and_junk_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    feeds.import_files(db, LAB_FEEDS)
    feeds.import_files(db, [_write(tmp_path, "k2.json", _kev("CVE-2099-10002", released="2026-11-21T00:00:00Z"))])
    fdb = feeds.FeedDb(db)
    assert fdb.status()["kev"]["entries"] == 1
    found = known_exploited(_view(fdb, "edgelab-router", "2.4.1"))
    assert [f.status for f in found] == [Status.PASS]  # 10001 is no longer in KEV
    for n, doc in enumerate([{"hello": 1}, {"format": "NVD_CVE", "version": "1.1", "CVE_Items": []}]):
        with pytest.raises(UsageError, match="KEV"):
            feeds.import_files(db, [_write(tmp_path, f"bad{n}.json", doc)])
    bad = tmp_path / "trunc.json"
    bad.write_text(LAB_FEEDS[1].read_text()[:300])
    with pytest.raises(UsageError, match="not JSON"):
        feeds.import_files(db, [bad])
