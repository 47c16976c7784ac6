"""The typed device record: one JSON codec, the records earlier versions wrote, the report schema."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from probes.observations import Mode, Service
from profiles.errors import StoreError
from scanner import document
from scanner.checks import SweepHost
from scanner.checks.drift import judge
from scanner.device import AirNetwork, DeviceRecord, Fingerprint, Kind, Login, Settings
from scanner.findings import Status
from scanner.merge import identities
from scanner.orchestrator import HostResult
from scanner.store import HostRecord, Store, SweepRecord

ROOT = Path(__file__).resolve().parent.parent

# A device record exactly as the versions before typed fingerprints wrote it to device_json
# (scanner/device.py describe): every fingerprint kind, keyed "<service> <kind>".
LEGACY: dict[str, Any] = {
    "profile": "edgelab-mfp", "class": "mfp", "vendor": "EdgeLab", "product": "MFP", "model": "EL-M300",
    "firmware": "1.0", "mac": "02:00:00:00:00:20",
    "services": [{"port": 22, "transport": "tcp", "name": "ssh"}, {"port": 631, "transport": "tcp", "name": "ipp"}],
    "fingerprints": {
        "tcp/21 banner": "220 FTP",
        "tcp/22 auth methods": "password,publickey",
        "tcp/22 host key": "ssh-ed25519 SHA256:aaa",
        "tcp/443 certificate": "ab" * 32,
        "tcp/443 server": "",
        "tcp/443 title": "Login",
        "tcp/631 ipp /ipp/print firmware": "1.0, 2.0",
        "tcp/631 ipp /printers/front desk make-and-model": "EdgeLab MFP 9000",  # a queue name with a space
        "udp/123 ntp": "stratum 2 leap 0 ref 198.19.0.100",
        "udp/161 engine-id": "80001f8880aabbcc",
        "udp/161 printer serial": "EL123",
        "udp/161 sysDescr": "EdgeLab MFP",
        "udp/1900 upnp": "Linux UPnP/1.0 uuid:1",
        "udp/5060 sip": "Asterisk PBX 16.30.0",
    },
    "logins": [{"service": "tcp/22", "username": "admin", "password": "admin", "source": "profile:edgelab-mfp"}],
    "settings": {"config_sha256": "c0ffee", "dhcp_dns": ["192.0.2.1"], "dns_servers": ["198.51.100.53"]},
    "wan_address": None,  # written by merge on every LAN device
}  # fmt: skip


def _full() -> DeviceRecord:
    return DeviceRecord(
        profile="edgelab-router",
        device_class="router",
        mac="02:00:00:00:00:01",
        services=(Service(22, "tcp", "ssh"), Service(631, "tcp", "ipp")),
        fingerprints=(
            Fingerprint("tcp/22", Kind.HOST_KEY, "ssh-ed25519 SHA256:aaa"),
            Fingerprint("tcp/631", Kind.IPP_FIRMWARE, "2.0", "/ipp/print"),
        ),
        logins=(Login("tcp/22", "admin", "Sekret-42", "user"),),
        settings=Settings(config_sha256="abc", dns_servers=("192.0.2.53",), wifi=("Home: wpa2 CCMP",)),
        wan_address="203.0.113.1",
        joined_by="BSSID is its MAC (02:00:00:00:00:01)",
        wifi=(AirNetwork("02:00:00:00:00:01", "Home", 6, "wpa2"),),
    )


def test_the_codec_round_trips_every_field() -> None:
    record = _full()
    text = json.dumps(record.to_json())
    assert DeviceRecord.from_json(json.loads(text)) == record
    assert DeviceRecord.from_json(DeviceRecord().to_json()) == DeviceRecord()
    assert record.to_json()["fingerprints"][1] == {
        "service": "tcp/631", "kind": "ipp firmware", "value": "2.0", "path": "/ipp/print",
    }  # fmt: skip


def test_records_earlier_versions_wrote_are_read_as_typed_entries() -> None:
    record = DeviceRecord.from_json(LEGACY)
    assert len(record.fingerprints) == len(LEGACY["fingerprints"])
    assert {f.kind for f in record.fingerprints} == set(Kind)  # the fixture holds every kind
    assert record.fingerprint("tcp/22", Kind.HOST_KEY) == "ssh-ed25519 SHA256:aaa"
    assert record.fingerprint("tcp/631", Kind.IPP_MAKE_AND_MODEL, "/printers/front desk") == "EdgeLab MFP 9000"
    assert record.fingerprint("tcp/631", Kind.IPP_FIRMWARE, "/ipp/print") == "1.0, 2.0"
    assert record.fingerprint("tcp/443", Kind.SERVER) == ""  # an empty Server header is still a fingerprint
    # every old key is what its typed entry is called for people (drift and diff evidence keep their names)
    assert {f.label: f.value for f in record.fingerprints} == LEGACY["fingerprints"]
    assert record.logins == (Login("tcp/22", "admin", "admin", "profile:edgelab-mfp"),)
    assert record.settings == Settings("c0ffee", ("198.51.100.53",), ("192.0.2.1",), None)
    assert (record.device_class, record.mac, record.wan_address) == ("mfp", "02:00:00:00:00:20", None)
    assert record.services[1] == Service(631, "tcp", "ipp")
    # re-written, it is in the typed form, and reads back the same
    again = record.to_json()
    assert isinstance(again["fingerprints"], list)
    assert DeviceRecord.from_json(again) == record


def test_old_wifi_and_merge_records_and_missing_keys_are_read() -> None:
    wifi = {  # edgeaudit wifi, unjoined: no settings key at all
        "profile": None, "class": "wireless network", "vendor": None, "product": None, "model": None,
        "firmware": None, "mac": "02:00:00:00:01:08", "services": [], "fingerprints": {}, "logins": [],
        "joined_by": None, "wifi": [{"bssid": "02:00:00:00:01:08", "ssid": "x", "channel": None, "security": "wep"}],
    }  # fmt: skip
    record = DeviceRecord.from_json(wifi)
    assert record.wifi == (AirNetwork("02:00:00:00:01:08", "x", None, "wep"),) and record.settings == Settings()
    assert DeviceRecord.from_json({"profile": None, "fingerprints": {}, "vantage": "wan"}).vantage == "wan"
    assert DeviceRecord.from_json({}) == DeviceRecord()


@pytest.mark.parametrize(
    "data",
    [
        {"fingerprints": {"tcp/22 hostkey": "x"}},  # no such kind
        {"fingerprints": {"tcp/631 ipp make-and-model": "x"}},  # an IPP kind without its path
        {"fingerprints": [{"service": "tcp/22", "kind": "host key", "value": "x", "path": "/p"}]},
        {"fingerprints": [{"service": "tcp/22", "kind": "banner", "value": "a"}] * 2},  # one slot twice
        {"fingerprints": [{"service": "tcp/22", "kind": "banner", "value": 5}]},
        {"services": [{"port": "22", "transport": "tcp", "name": "ssh"}]},
        {"logins": [{"service": "tcp/22", "username": "a"}]},
        {"settings": {"dns_servers": "192.0.2.1"}},
        [],
    ],
)
def test_a_record_the_codec_cannot_read_is_a_store_error(data: object) -> None:
    with pytest.raises(StoreError, match="device record"):
        DeviceRecord.from_json(data)


def test_what_a_kind_means_is_a_property_of_the_kind() -> None:
    assert {k for k in Kind if k.identity} == {Kind.HOST_KEY, Kind.CERTIFICATE, Kind.ENGINE_ID}
    assert {k for k in Kind if k.private_key} == {Kind.HOST_KEY, Kind.CERTIFICATE}
    assert {k for k in Kind if k.per_path} == {Kind.IPP_MAKE_AND_MODEL, Kind.IPP_FIRMWARE}
    with pytest.raises(ValueError, match="path"):
        Fingerprint("tcp/631", Kind.IPP_FIRMWARE, "1.0")


def _legacy_history(path: Path) -> None:
    """A history database as the earlier versions left it: a LAN and a WAN sweep, keyed fingerprints."""
    Store(path).close()  # the tables (their schema did not change)
    wan = {"profile": None, "fingerprints": {"tcp/22 host key": "ssh-ed25519 SHA256:aaa", "tcp/22 banner": "SSH-2.0"}}
    then = {**LEGACY, "settings": {**LEGACY["settings"], "dns_servers": ["192.0.2.53"]}}
    with sqlite3.connect(path) as db:
        for sid, vantage, at in (("old-lan", "lan", 1.0), ("old-wan", "wan", 2.0)):
            db.execute(
                "INSERT INTO sweeps VALUES (?, 'scan', 'default', 'complete', ?, ?, '{}', '{}', ?)",
                (sid, at, at + 1, vantage),
            )
        db.execute("INSERT INTO hosts VALUES ('old-lan', '10.0.0.20', 'up', NULL, 1, 2, ?)", (json.dumps(then),))
        db.execute("INSERT INTO hosts VALUES ('old-wan', '203.0.113.20', 'up', NULL, 2, 3, ?)", (json.dumps(wan),))


def test_drift_and_merge_work_on_a_history_database_earlier_versions_wrote(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    _legacy_history(path)
    store = Store(path)
    lan, wan = store.load("old-lan"), store.load("old-wan")
    assert identities(lan.hosts[0]) & identities(wan.hosts[0]) == {"host key: ssh-ed25519 SHA256:aaa"}
    # this sweep's record, typed, against the old baseline: only the DNS server changed
    now = DeviceRecord.from_json(LEGACY)
    sid = store.begin("scan", "default", {}, {}, "lan")
    store.host_done(sid, HostResult("10.0.0.20", "up", 3.0, 4.0, [], now))
    baseline = store.baselines(sid)["10.0.0.20"]
    assert baseline.sweep_id == "old-lan"
    f = judge(SweepHost("10.0.0.20", now, baseline), Mode.DEFAULT)
    assert f.status == Status.FAIL
    assert [c["setting"] for c in f.evidence["changes"]] == ["DNS servers in the configuration"]
    assert {"tcp/22 host key", "tcp/443 certificate"} <= set(f.evidence["compared"])


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((ROOT / "reports" / "schema.json").read_text(encoding="utf-8"))
    return schema


def _report(device: DeviceRecord, *, show_secrets: bool) -> dict[str, Any]:
    host = HostRecord("192.0.2.1", "up", None, 0.0, 1.0, device, [])
    return document.build(
        SweepRecord("s", "wifi", "safe", "complete", 1.0, 2.0, {}, {}, "air", [host]), show_secrets=show_secrets
    )


def test_the_report_schema_describes_the_device_record() -> None:
    schema = _schema()
    kinds = schema["$defs"]["fingerprint"]["properties"]["kind"]["enum"]
    assert sorted(kinds) == sorted(str(k) for k in Kind)
    for device in (_full(), DeviceRecord(), DeviceRecord.from_json(LEGACY)):
        for show in (True, False):
            jsonschema.validate(_report(device, show_secrets=show), schema)
    masked = _report(_full(), show_secrets=False)
    assert masked["devices"][0]["device"]["logins"][0]["password"] == "S*** (9)"
    # precise: the keyed form of earlier versions, an IPP entry without its path, an unknown key are refused
    device_schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/device"}
    jsonschema.validate(_full().to_json(), device_schema)
    for bad in (
        {**_full().to_json(), "fingerprints": LEGACY["fingerprints"]},
        {**_full().to_json(), "fingerprints": [{"service": "tcp/631", "kind": "ipp firmware", "value": "1"}]},
        {**_full().to_json(), "banner": "x"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, device_schema)
