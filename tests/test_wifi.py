"""Wi-Fi security from crafted captures: every cipher suite the MIC guidance names, WPS, and broken elements."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from scapy.layers.dot11 import Dot11, Dot11FCS, RadioTap
from scapy.packet import Raw
from scapy.utils import wrpcap, wrpcapng

from probes import wifi
from probes.observations import Mode
from scanner.checks import catalog
from scanner.cli import main
from scanner.device import DeviceRecord
from scanner.findings import Status
from scanner.orchestrator import HostResult
from scanner.store import Store

PRIVACY = 0x0011  # ESS + Privacy
ESS = 0x0001


def suite(oui: bytes, kind: int) -> bytes:
    return oui + bytes([kind])


def rsn(group: int, pairwise: list[int], akms: list[int], caps: int = 0) -> bytes:
    body = struct.pack("<H", 1) + suite(wifi.RSN_OUI, group)
    body += struct.pack("<H", len(pairwise)) + b"".join(suite(wifi.RSN_OUI, p) for p in pairwise)
    body += struct.pack("<H", len(akms)) + b"".join(suite(wifi.RSN_OUI, a) for a in akms)
    return body + struct.pack("<H", caps)


def wpa(group: int, pairwise: list[int], akms: list[int]) -> bytes:
    body = wifi.MS_OUI + b"\x01" + struct.pack("<H", 1) + suite(wifi.MS_OUI, group)
    body += struct.pack("<H", len(pairwise)) + b"".join(suite(wifi.MS_OUI, p) for p in pairwise)
    return body + struct.pack("<H", len(akms)) + b"".join(suite(wifi.MS_OUI, a) for a in akms)


def wps(state: int, locked: bool | None = None) -> bytes:
    tlvs = struct.pack(">HHB", 0x104A, 1, 0x10) + struct.pack(">HHB", 0x1044, 1, state)
    if locked is not None:
        tlvs += struct.pack(">HHB", 0x1057, 1, int(locked))
    return wifi.MS_OUI + b"\x04" + tlvs


def element(eid: int, body: bytes) -> bytes:
    return bytes([eid, len(body)]) + body


def frame(bssid: str, ssid: str, cap: int, *elements: bytes, probe: bool = False, fcs: bool = False) -> RadioTap:
    header = (Dot11FCS if fcs else Dot11)(
        type=0, subtype=5 if probe else 8, addr1="ff:ff:ff:ff:ff:ff", addr2=bssid, addr3=bssid
    )
    fixed = bytes(8) + struct.pack("<HH", 100, cap)  # timestamp, interval, capability: little-endian on air
    ies = element(0, ssid.encode()) + element(3, b"\x06") + b"".join(elements)
    return RadioTap() / header / Raw(load=fixed + ies)


NETWORKS = {
    "02:00:00:00:01:01": ("lab-wep", PRIVACY, ()),
    "02:00:00:00:01:02": ("lab-wpa-tkip", PRIVACY, (element(221, wpa(2, [2], [2])),)),
    "02:00:00:00:01:03": ("lab-wpa2", PRIVACY, (element(48, rsn(4, [4], [2], caps=0x80)),)),
    "02:00:00:00:01:04": ("lab-wpa3", PRIVACY, (element(48, rsn(4, [4], [8], caps=0xC0)),)),
    "02:00:00:00:01:05": ("lab-mixed", PRIVACY, (element(221, wpa(2, [2], [2])), element(48, rsn(2, [4, 2], [2])))),
    "02:00:00:00:01:06": ("lab-open", ESS, ()),
    "02:00:00:00:01:07": ("lab-wps", PRIVACY, (element(48, rsn(4, [4], [2])), element(221, wps(2, locked=False)))),
    "02:00:00:00:01:08": ("lab-transition", PRIVACY, (element(48, rsn(4, [4], [2, 8], caps=0x80)),)),
}


def capture(path: Path, ng: bool = False) -> Path:
    frames = [frame(b, ssid, cap, *els) for b, (ssid, cap, els) in NETWORKS.items()]
    frames.append(
        frame("02:00:00:00:01:03", "lab-wpa2", PRIVACY, element(48, rsn(4, [4], [2], caps=0x80)), probe=True, fcs=True)
    )
    (wrpcapng if ng else wrpcap)(str(path), frames)
    return path


@pytest.mark.parametrize("ng", [False, True])
def test_each_security_mode_is_decoded(tmp_path: Path, ng: bool) -> None:
    nets = {n.ssid: n for n in wifi.read_capture(capture(tmp_path / "c.pcap", ng)).networks}
    assert {s: n.security for s, n in nets.items()} == {
        "lab-wep": "wep", "lab-wpa-tkip": "wpa", "lab-wpa2": "wpa2", "lab-wpa3": "wpa3", "lab-mixed": "wpa/wpa2",
        "lab-open": "open", "lab-wps": "wpa2", "lab-transition": "wpa2/wpa3",
    }  # fmt: skip
    assert {s for s, n in nets.items() if n.uses_tkip} == {"lab-wpa-tkip", "lab-mixed"}
    assert nets["lab-wpa3"].rsn is not None and nets["lab-wpa3"].rsn.mfp_required
    assert nets["lab-wpa2"].frames == 2 and nets["lab-wpa2"].channel == 6  # the probe response (with FCS) joined it
    assert (nets["lab-wps"].wps, nets["lab-wps"].wps_configured, nets["lab-wps"].wps_locked) == (True, True, False)


@pytest.mark.parametrize(
    ("elements", "fragment"),
    [
        ((b"\x30\x14" + rsn(4, [4], [2])[:10],), "runs past the frame"),  # declared longer than the frame
        ((element(48, rsn(4, [4], [2])[:9]),), "RSN element: truncated"),  # pairwise count, then nothing
        ((element(48, b"\x02\x00" + rsn(4, [4], [2])[2:]),), "version is not 1"),
        ((element(221, wifi.MS_OUI + b"\x04" + struct.pack(">HH", 0x1044, 5) + b"\x02"),), "WPS element: truncated"),
        ((b"\x30",), "header truncated"),
    ],
)
def test_broken_elements_are_recorded_never_guessed(tmp_path: Path, elements: tuple[bytes, ...], fragment: str) -> None:
    path = tmp_path / "bad.pcap"
    wrpcap(str(path), [frame("02:00:00:00:02:01", "broken", PRIVACY, *elements)])
    (net,) = wifi.read_capture(path).networks
    assert any(fragment in m for m in net.malformed), net.malformed
    assert net.security == ("wep" if "WPS" in fragment else "unknown")  # a broken WPS element says nothing of ciphers


def test_wifi_command_judges_each_network_both_ways(tmp_path: Path) -> None:
    out, db = tmp_path / "out", tmp_path / "h.sqlite3"
    rc = main(["wifi", "--pcap", str(capture(tmp_path / "c.pcap")), "--db", str(db), "--out", str(out), "--lang", "en"])
    assert rc == 1  # WEP is critical
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    got = {
        (f["evidence"]["ssid"], f["id"].removeprefix("CIAJ-3.4-WIFI-")): f["status"]
        for d in report["devices"]
        for f in d["findings"]
    }
    assert got[("lab-wep", "WEP")] == "fail" and got[("lab-wpa2", "WEP")] == "pass"
    assert got[("lab-wpa-tkip", "WPA-TKIP")] == "fail" and got[("lab-mixed", "WPA-TKIP")] == "fail"
    assert got[("lab-wpa2", "WPA-TKIP")] == "pass" and got[("lab-wpa3", "WPA-TKIP")] == "pass"
    assert ("lab-open", "WPA-TKIP") not in got  # not a protected network: nothing to say about its cipher
    assert got[("lab-open", "OPEN")] == "fail" and got[("lab-wpa3", "OPEN")] == "pass"
    assert got[("lab-wps", "WPS")] == "fail" and got[("lab-wpa2", "WPS")] == "pass"
    assert report["sweep"]["vantage"] == "air"
    # every Wi-Fi check has a failing and a passing network in this capture (the lab's coverage rule)
    air = [cid for cid in catalog() if cid.startswith("CIAJ-3.4-WIFI-")]
    assert len(air) == 4
    for cid in air:
        short = cid.removeprefix("CIAJ-3.4-WIFI-")
        assert {"pass", "fail"} <= {s for (_, c), s in got.items() if c == short}, cid


def test_a_broken_rsn_element_is_inconclusive_not_a_pass(tmp_path: Path) -> None:
    path, out = tmp_path / "bad.pcap", tmp_path / "out"
    wrpcap(str(path), [frame("02:00:00:00:02:01", "broken", PRIVACY, element(48, rsn(4, [4], [2])[:9]))])
    main(["wifi", "--pcap", str(path), "--db", str(tmp_path / "h"), "--out", str(out)])
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    statuses = {f["id"].removeprefix("CIAJ-3.4-WIFI-"): f["status"] for d in report["devices"] for f in d["findings"]}
    assert statuses == {"WEP": "inconclusive", "OPEN": "inconclusive", "WPA-TKIP": "inconclusive", "WPS": "pass"}
    # a frame whose element chain breaks hides what comes after: nothing at all can pass then
    wrpcap(str(path), [frame("02:00:00:00:02:01", "broken", PRIVACY, b"\x30\x14" + rsn(4, [4], [2])[:10])])
    main(["wifi", "--pcap", str(path), "--db", str(tmp_path / "h"), "--out", str(out)])
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert {f["status"] for d in report["devices"] for f in d["findings"]} == {"inconclusive"}


def test_networks_join_the_swept_device_whose_mac_they_derive_from(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    store = Store(db)
    lan = store.begin("scan", "default", {"targets": ["192.0.2.0/24"]}, {}, "lan")
    device = DeviceRecord(profile="edgelab-router", device_class="router", mac="02:00:00:00:01:00")
    store.host_done(lan, HostResult("192.0.2.1", "up", 0.0, 1.0, [], device))
    store.finish(lan, "complete")
    out = tmp_path / "out"
    main(["wifi", "--pcap", str(capture(tmp_path / "c.pcap")), "--join", lan, "--db", str(db), "--out", str(out)])
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    addresses = {d["address"] for d in report["devices"]}
    assert "192.0.2.1" in addresses and "02:00:00:00:01:08" not in addresses  # ...:01 to ...:08 are near its MAC
    router = next(d for d in report["devices"] if d["address"] == "192.0.2.1")
    assert router["device"]["profile"] == "edgelab-router" and len(router["device"]["wifi"]) == 8
    assert report["sweep"]["mode"] == Mode.SAFE.value
    assert any(f["status"] == Status.FAIL.value and f["id"] == "CIAJ-3.4-WIFI-WEP" for f in router["findings"])
