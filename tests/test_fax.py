"""Fax safeguards (CIAJ 4.3/4.4): read from the MFP's own settings over SNMP, or a hand-off checklist item."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from probes.login import auth
from probes.observations import FaxSetting, Mode, Service
from profiles import FaxSafeguard, Match, load_all
from profiles.errors import UsageError
from scanner.checks import HostView
from scanner.checks.fax import CHECK_IDS, _judge
from scanner.device import DeviceRecord, Kind
from scanner.findings import Finding, Status
from scanner.orchestrator import Engine, HostResult
from tests.conftest import StartDevice, config_for, with_settings

WEAK = {"double_entry": False, "memory_reception": False, "direct_dial": True, "pc_fax": True, "forwarding": True}
STRONG = {"double_entry": True, "memory_reception": True, "direct_dial": False, "pc_fax": False, "forwarding": False}
COMMUNITY = "Test-Fax-Community-9a"


def _auth_file(tmp_path: Path, address: str) -> str:
    path = tmp_path / "auth.toml"
    path.write_text(f'[[device]]\nhost = "{address}"\nprotocol = "snmp"\ncommunity = "{COMMUNITY}"\n')
    path.chmod(0o600)
    return str(path)


async def _scan(device: object, mode: Mode = Mode.DEFAULT, auth_file: str | None = None) -> HostResult:
    config = config_for(device, mode)  # type: ignore[arg-type]
    config = dataclasses.replace(config, probe_config=with_settings(config.probe_config, auth_file=auth_file))
    return await Engine(config, load_all()).scan_host(device.spec.address)  # type: ignore[attr-defined]


def _fax(result: HostResult) -> dict[str, tuple[str, object]]:
    by = {f.check_id: f for f in result.findings}
    return {name: (by[cid].status.value, by[cid].evidence.get("value")) for name, cid in CHECK_IDS.items()}


async def test_weak_settings_fail_and_hardened_ones_pass(emulated: StartDevice, tmp_path: Path) -> None:
    weak = await emulated(
        persona="mfp", model="EL-M300", firmware="5.40", services=["http", "snmp"], communities=["public"], fax=WEAK
    )
    result = await _scan(weak)
    assert _fax(result) == {
        "destination-check": ("fail", "2"),
        "memory-reception": ("fail", "2"),
        "direct-dial": ("fail", "1"),
        "pc-fax": ("fail", "1"),
        "forwarding": ("fail", "1"),
    }
    first = next(f for f in result.findings if f.check_id == CHECK_IDS["destination-check"])
    assert first.evidence["community_from"] == "found in this sweep"
    assert COMMUNITY not in str(first.evidence) and "public" not in str(first.evidence)  # the community is not kept
    assert weak.snmp_sets == []
    # identification from the Printer-MIB (RFC 3805): the printer's name and serial number
    serial = result.device.fingerprint(f"udp/{weak.bound['snmp']}", Kind.PRINTER_SERIAL)
    assert serial is not None and serial.startswith("EL")
    assert (result.device.profile, result.device.model) == ("edgelab-mfp", "EL-M300")

    hardened = await emulated(
        persona="mfp", model="EL-M300", firmware="5.40", services=["http", "snmp"], communities=[COMMUNITY], fax=STRONG
    )
    result = await _scan(hardened, Mode.DEFAULT, _auth_file(tmp_path, hardened.spec.address))
    assert {s for s, _ in _fax(result).values()} == {"pass"}
    safe = await _scan(hardened, Mode.SAFE, _auth_file(tmp_path, hardened.spec.address))  # --safe sends no community
    assert {s for s, _ in _fax(safe).values()} == {"inconclusive"}
    assert hardened.snmp_sets == []


async def test_without_a_community_each_safeguard_is_a_checklist_item(emulated: StartDevice) -> None:
    hardened = await emulated(
        persona="mfp", model="EL-M300", firmware="5.40", services=["http", "snmp"], communities=[COMMUNITY], fax=STRONG
    )
    result = await _scan(hardened)
    found = [f for f in result.findings if f.check_id in CHECK_IDS.values()]
    assert len(found) == 5 and {f.status for f in found} == {Status.INCONCLUSIVE}
    assert all(f.evidence["checklist"] is True and "no SNMP community known" in f.evidence["reason"] for f in found)


def _view(profile_id: str, *observations: FaxSetting, **replace: object) -> HostView:
    profile = next(p for p in load_all() if p.id == profile_id)
    profile = dataclasses.replace(profile, **replace)  # type: ignore[arg-type]
    return HostView("192.0.2.20", Mode.DEFAULT, observations, Match(profile, 5, None, None, ()), dt.date(2026, 11, 22))


def test_a_model_with_no_readable_setting_gets_a_checklist_item_not_a_guess() -> None:
    plain = _judge(_view("ricoh"), "memory-reception")
    assert plain.status is Status.INCONCLUSIVE and "no OID declared" in plain.evidence["reason"]
    where = {"en": "Fax Features: Reception: Memory Lock", "ja": "ファクス初期設定: 受信設定: メモリーロック"}
    pointer = FaxSafeguard("memory-reception", source="x", checklist=where)
    pointed = _judge(_view("ricoh", fax_safeguards=(pointer,)), "memory-reception")
    assert pointed.status is Status.INCONCLUSIVE and pointed.evidence["where"] == where


def test_a_value_the_profile_does_not_know_is_inconclusive() -> None:
    snmp = Service(161, "udp", "snmp")
    odd = FaxSetting(snmp, safeguard="forwarding", read_from="snmp 1.3.6.1.4.1.99999.3.1.5.0", value="7")
    found = _judge(_view("edgelab-mfp", odd), "forwarding")
    assert found.status is Status.INCONCLUSIVE and "'7'" in found.evidence["reason"]
    missing = FaxSetting(snmp, safeguard="forwarding", read_from="snmp 1.3.6.1.4.1.99999.3.1.5.0", value=None)
    gone = _judge(_view("edgelab-mfp", missing), "forwarding")
    assert gone.status is Status.INCONCLUSIVE and "has no object 1.3.6.1.4.1.99999.3.1.5.0" in gone.evidence["reason"]


def test_auth_file_snmp_entries_are_kept_apart_from_logins(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text(
        '[[device]]\nhost = "192.0.2.5"\nusername = "h"\npassword = "4"\n'
        '[[device]]\nrange = "192.0.2.0/24"\nprotocol = "snmp"\ncommunity = "c24"\n'
    )
    path.chmod(0o600)
    entries = auth.load(str(path))
    assert auth.lookup(entries, "192.0.2.5", None).username == "h"  # type: ignore[union-attr]
    assert auth.lookup(entries, "192.0.2.5", None, protocol="snmp").community == "c24"  # type: ignore[union-attr]
    assert auth.lookup(entries, "192.0.2.6", None) is None  # an SNMP community is no SSH login
    for n, bad in enumerate(
        [
            '[[device]]\nhost = "192.0.2.1"\nprotocol = "snmp"\n',  # no community
            '[[device]]\nhost = "192.0.2.1"\nprotocol = "snmp"\ncommunity = "c"\nusername = "u"\n',  # a login too
            '[[device]]\nhost = "192.0.2.1"\nusername = "u"\npassword = "p"\ncommunity = "c"\n',  # ssh + community
            '[[device]]\nhost = "192.0.2.1"\nprotocol = "telnet"\nusername = "u"\npassword = "p"\n',
        ]
    ):
        p = tmp_path / f"bad{n}.toml"
        p.write_text(bad)
        with pytest.raises(UsageError):
            auth.load(str(p))


def test_the_report_lists_checklist_items_for_the_installer_in_both_languages() -> None:
    from reports.render import to_html
    from scanner.document import build
    from scanner.store import HostRecord, SweepRecord

    where = {"en": "Fax Features: Reception: Memory Lock", "ja": "ファクス初期設定: 受信設定: メモリーロック"}
    pointer = FaxSafeguard("memory-reception", source="x", checklist=where)
    item = _judge(_view("ricoh", fax_safeguards=(pointer,)), "memory-reception")
    judged = _judge(_view("edgelab-mfp", FaxSetting(None, safeguard="pc-fax", value="2")), "pc-fax")
    device = DeviceRecord()

    def report(*findings: Finding) -> dict[str, object]:
        host = HostRecord("192.0.2.20", "up", None, 0, 0, device, list(findings))
        return build(SweepRecord("s", "scan", "default", "complete", 0, 0, {}, {}, "lan", [host]))

    from scanner.checks import make_finding

    other = make_finding("CIAJ-4.1-RAW-PRINT-EXPOSED", "192.0.2.20", Status.INCONCLUSIVE, Mode.DEFAULT, None, {})
    en, ja = to_html(report(item, judged, other), "en"), to_html(report(item, judged, other), "ja")
    assert "Hand-off checklist" in en and where["en"] in en
    assert "引き渡し時チェックリスト" in ja and where["ja"] in ja
    checklist = en.split('id="handoff"')[1].split("</table>")[0]
    assert "no confidential memory reception" in checklist
    assert "PC-fax" not in checklist  # a safeguard that was read and passed is no checklist item
    assert "Raw print port" not in checklist  # an inconclusive finding is a checklist item only when it says so
    assert 'id="handoff"' not in to_html(report(judged), "en")


async def test_a_v1_agent_is_asked_one_object_at_a_time(emulated: StartDevice) -> None:
    """SNMPv1 fails a whole GET on one missing object: each OID alone, so the others are still read."""
    import asyncio

    from probes.base import HostSnapshot, ProbeContext, ProbeTarget, Timeouts
    from probes.fax import FaxSafeguards
    from probes.observations import SnmpInfo

    partial = {k: v for k, v in STRONG.items() if k != "forwarding"}  # the agent has no forwarding object
    mfp = await emulated(
        persona="mfp", model="EL-M300", firmware="5.40", services=["snmp"], communities=["public"], fax=partial
    )
    snmp = Service(mfp.bound["snmp"], "udp", "snmp")
    profile = next(p for p in load_all() if p.id == "edgelab-mfp")
    host = HostSnapshot(
        mfp.spec.address, frozenset({snmp}), (SnmpInfo(snmp, version="v1", community="public"),), profile
    )
    config = config_for(mfp).probe_config
    assert FaxSafeguards().targets(host, config) == [snmp]
    deadline = asyncio.get_running_loop().time() + 10
    ctx = ProbeContext(Timeouts(read=1.0), Mode.DEFAULT, config, deadline, profile=profile, host=host)
    got = await FaxSafeguards().run(ProbeTarget(mfp.spec.address, snmp), ctx)
    values = {o.safeguard: o.value for o in got if isinstance(o, FaxSetting)}
    assert values == {
        "destination-check": "1",
        "memory-reception": "1",
        "direct-dial": "2",
        "pc-fax": "2",
        "forwarding": None,
    }
    no_community = HostSnapshot(mfp.spec.address, frozenset({snmp}), (), profile)
    assert FaxSafeguards().targets(no_community, config) == []  # nothing is guessed
