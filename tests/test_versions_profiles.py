from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import profiles
from probes.observations import field_values
from profiles import versions
from profiles.errors import ProfileError


@pytest.mark.parametrize(
    ("older", "newer", "scheme"),
    [
        ("Rev.15.02.29", "Rev.15.02.31", "yamaha-rev"),
        ("Rev.14.01.38", "Rev.15.02.01", "yamaha-rev"),
        ("15.2(4)M7", "15.2(4)M10", "cisco-ios"),
        ("15.2(4)M10", "15.4(3)M1", "cisco-ios"),
        ("7.9.2", "7.14.3", "routeros"),
        ("20.5.2", "20.11.1", "asterisk"),
        ("9.2p1 Debian-2+deb12u3", "9.6p1", "openssh"),
        ("9.2", "9.2p1", "openssh"),
    ],
)
def test_version_order(older: str, newer: str, scheme: str) -> None:
    assert versions.compare(older, newer, scheme) == -1
    assert versions.compare(newer, older, scheme) == 1
    assert versions.compare(older, older, scheme) == 0


def test_branch_membership() -> None:
    assert versions.branch_of("20.5.2", "20", "asterisk")
    assert not versions.branch_of("2.5.2", "20", "asterisk")


def test_all_builtin_profiles_validate_with_sources() -> None:
    ps = profiles.load_all()
    assert len(ps) >= 20
    real = [p for p in ps if not p.id.startswith("edgelab-")]
    assert len(real) >= 12
    for p in ps:
        for c in p.default_credentials:
            assert c.source in p.sources
        for b in p.baselines:
            assert b.source in p.sources
    mfp_with_creds = [p for p in real if p.device_class == "mfp" and p.default_credentials]
    assert len(mfp_with_creds) >= 7


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_broken_profile_names_file_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "broken",
        """
id: broken
class: router
vendor: X
sources: {s: {title: t}}
fingerprints:
  - {field: snmp.sys_descr, regex: "ok"}
  - {field: http.nonsense, regex: "x"}
""",
    )
    with pytest.raises(ProfileError) as err:
        profiles.load_file(path)
    assert err.value.file == str(path) and err.value.field == "fingerprints[1].field"


def test_profile_reference_and_regex_errors(tmp_path: Path) -> None:
    base = (
        "id: {id}\nclass: mfp\nvendor: X\nsources: {{s: {{title: t}}}}\n"
        "fingerprints:\n  - {{field: http.title, regex: '{rx}'}}\n"
    )
    bad_rx = _write(tmp_path, "badrx", base.format(id="badrx", rx="(unclosed"))
    with pytest.raises(ProfileError, match=r"fingerprints\[0\]\.regex"):
        profiles.load_file(bad_rx)
    bad_src = _write(
        tmp_path,
        "badsrc",
        base.format(id="badsrc", rx="x")
        + "default_credentials:\n  - {protocol: http, username: a, password: b, source: nope}\n",
    )
    with pytest.raises(ProfileError, match=r"default_credentials\[0\]\.source"):
        profiles.load_file(bad_src)
    misnamed = _write(tmp_path, "other", base.format(id="notother", rx="x"))
    with pytest.raises(ProfileError, match="file name"):
        profiles.load_file(misnamed)


def test_match_extracts_model_and_version() -> None:
    from probes.observations import Service, SnmpInfo

    obs = [
        SnmpInfo(
            Service(161, "udp", "snmp"),
            version="v2c",
            sys_descr="RTX1210 Rev.14.01.38 (Fri Jul 10 2020)",
            sys_object_id="1.3.6.1.4.1.1182.2.1.1",
        )
    ]
    m = profiles.match(profiles.load_all(), field_values(obs))
    assert m is not None and m.profile.id == "yamaha-rtx"
    assert (m.model, m.version) == ("RTX1210", "14.01.38")


def test_baseline_for_picks_branch() -> None:
    p = {x.id: x for x in profiles.load_all()}["asterisk"]
    b = p.baseline_for("18.20.0")
    assert b is not None and b.end_of_life == dt.date(2025, 10, 20)
    assert p.baseline_for("99.0.0") is None


@pytest.mark.parametrize(
    ("title", "profile", "users"),
    [
        ("Web Maintenance Console", "panasonic-kx-ns", {"INSTALLER"}),
        ("NEC WebPro", "nec-univerge-sl", {"tech", "ADMIN1", "ADMIN2"}),
    ],
)
def test_japanese_pbx_web_uis_are_pbxes_with_their_documented_defaults(
    title: str, profile: str, users: set[str]
) -> None:
    from probes.observations import HttpInfo, Service

    m = profiles.match(
        profiles.load_all(), field_values([HttpInfo(Service(80, "tcp", "http"), status=200, title=title)])
    )
    assert m is not None and (m.profile.id, m.profile.device_class) == (profile, "pbx")
    creds = m.profile.default_credentials
    assert {c.username for c in creds} == users and all(c.protocol == "http" for c in creds)
    assert all(c.source in m.profile.sources for c in creds)


# Each shipped MFP family recognised from printer-make-and-model alone, as real devices announce it
# (the strings and where they were seen are in each profile's ipp-* source).
@pytest.mark.parametrize(
    ("announced", "family", "model"),
    [
        ("HP LaserJet Pro MFP M428fdw", "hp", "LaserJet Pro MFP M428fdw"),
        ("HP PageWide MFP P57750", "hp", "PageWide MFP P57750"),
        ("Brother MFC-J5320DW", "brother", "MFC-J5320DW"),
        ("CNiR-ADV C3325/3330", "canon", "iR-ADV C3325/3330"),
        ("Canon MX490 series", "canon", "MX490 series"),
        ("RICOH IM C4510", "ricoh", "IM C4510"),
        ("ECOSYS M2540dn", "kyocera", "ECOSYS M2540dn"),
        ("SHARP MX-3071", "sharp", "MX-3071"),
        ("KONICA MINOLTA bizhub C253", "konica-minolta", "bizhub C253"),
        ("FUJIFILM ApeosPrint C325/328 dw", "fujifilm-bi", "ApeosPrint C325/328 dw"),
        ("FUJI XEROX DocuPrint CM305 df", "fujifilm-bi", "DocuPrint CM305 df"),
        ("Xerox B210 Printer", "xerox", "B210"),
        ("EPSON XP-6000 Series", "epson", "XP-6000"),
        ("EPSON L6460 Series", "epson", "L6460"),
    ],
)
def test_mfp_families_are_recognised_from_ipp_make_and_model(announced: str, family: str, model: str) -> None:
    from probes.observations import IppInfo, Service

    found = profiles.match(
        profiles.load_all(), field_values([IppInfo(Service(631, "tcp", "ipp"), make_and_model=announced)])
    )
    assert found is not None and (found.profile.id, found.profile.device_class, found.model) == (family, "mfp", model)
