"""`edgeaudit wifi --pcap` on real captures (../shared/real-world/wifi/), and on their real beacons
re-wrapped in every link type and container a capture comes in (Prism, AVS, radiotap, with and without
FCS, pcap and pcapng).

The command runs in a fresh interpreter each time: the reader once depended on which scapy layers
happened to be imported first, and a test process that imports them would hide that.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from probes import wifi

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(__file__).resolve().parents[2] / "shared" / "real-world" / "wifi"
needs_real = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"{REAL} is absent: the real captures live in ../shared beside the clone"
)
DRIVER = "import sys; from scanner.cli import main; sys.exit(main(sys.argv[1:]))"
LINKSYS = "00:0b:86:c2:a4:85"
TKIP_ONLY = {"WEP": "pass", "WPA-TKIP": "fail", "OPEN": "pass", "WPS": "pass"}
ALL_PASS = {"WEP": "pass", "WPA-TKIP": "pass", "OPEN": "pass", "WPS": "pass"}


def run_cli(tmp_path: Path, capture: Path) -> tuple[int, dict[str, Any] | None, str]:
    """`edgeaudit wifi --pcap CAPTURE` in a fresh interpreter: exit code, report.json (if written), output."""
    out = tmp_path / f"out-{capture.name}"
    argv = ["wifi", "--pcap", str(capture), "--db", str(tmp_path / "h.sqlite3"), "--out", str(out), "--lang", "en"]
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    path = out / "report.json"
    report = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return proc.returncode, report, proc.stdout + proc.stderr


def verdicts(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, str]]:
    """(BSSID, SSID) -> {WEP|WPA-TKIP|OPEN|WPS: status}."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for device in report["devices"]:
        for f in device["findings"]:
            key = (f["evidence"]["bssid"], f["evidence"]["ssid"])
            out.setdefault(key, {})[f["id"].removeprefix("CIAJ-3.4-WIFI-")] = f["status"]
    return out


def evidence(report: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [f["evidence"] for d in report["devices"] for f in d["findings"] if f["id"] == f"CIAJ-3.4-WIFI-{check}"]


# --- the real captures, judged against the ground truth in ../shared/real-world/README.md ---

TEST1_SSIDS = {"tmpAP", "Vodafone", "veles3", "Lekonora", "Intertelecom_FREE", "ogogo", "Smile)"}


@needs_real
def test_wep_capture_fails_wep(tmp_path: Path) -> None:
    rc, report, output = run_cli(tmp_path, REAL / "wep.shared.key.authentication.cap")
    assert report is not None, output
    assert verdicts(report) == {("00:14:6c:7e:40:80", "teddy"): {"WEP": "fail", "OPEN": "pass", "WPS": "pass"}}
    assert rc == 1  # WEP is critical
    assert "raw 802.11 (105)" in output


@needs_real
def test_wpa_tkip_capture_fails_tkip(tmp_path: Path) -> None:
    rc, report, output = run_cli(tmp_path, REAL / "wpa-psk-linksys.cap")
    assert report is not None, output
    assert verdicts(report) == {(LINKSYS, "linksys"): TKIP_ONLY}
    (tkip,) = evidence(report, "WPA-TKIP")
    assert (tkip["security"], tkip["group_cipher"], tkip["pairwise"], tkip["akm"]) == ("wpa", "TKIP", ["TKIP"], ["PSK"])
    assert tkip["offers"] == ["WPA (v1)", "TKIP"]
    assert rc == 1


@needs_real
def test_wpa2_ccmp_capture_passes_every_check(tmp_path: Path) -> None:
    rc, report, output = run_cli(tmp_path, REAL / "wpa2-psk-linksys.cap")
    assert report is not None, output
    assert verdicts(report) == {(LINKSYS, "linksys"): ALL_PASS}
    (ev,) = evidence(report, "WEP")
    assert (ev["security"], ev["group_cipher"], ev["pairwise"], ev["akm"]) == ("wpa2", "CCMP", ["CCMP"], ["PSK"])
    assert rc == 0


@needs_real
def test_radiotap_capture_seven_networks_wps_and_wpa1(tmp_path: Path) -> None:
    rc, report, output = run_cli(tmp_path, REAL / "test1.pcap")
    assert report is not None, output
    got = verdicts(report)
    assert {ssid for _, ssid in got} == TEST1_SSIDS and len(got) == 7
    assert all(v["WPS"] == "fail" and v["WEP"] == "pass" and v["OPEN"] == "pass" for v in got.values())
    # WPA (v1) beside WPA2, even with CCMP, is the mixed mode the MIC guidance rules out
    assert {ssid for (_, ssid), v in got.items() if v["WPA-TKIP"] == "fail"} == {"Smile)", "Lekonora"}
    for ev in evidence(report, "WPA-TKIP"):
        assert (ev["group_cipher"], ev["pairwise"], ev["akm"]) == ("CCMP", ["CCMP"], ["PSK"]), ev
        if ev["ssid"] in ("Smile)", "Lekonora"):
            assert (ev["security"], ev["offers"]) == ("wpa/wpa2", ["WPA (v1)"])
        else:
            assert ev["security"] == "wpa2" and "offers" not in ev
    assert rc == 1
    assert "802.11 with radiotap (127)" in output


# --- the real frames, wrapped in each radio header and container ---


def real_frames(name: str) -> list[bytes]:
    """The records of one of the real raw-802.11 (105) pcap files, read here independently of the product."""
    data = (REAL / name).read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1" and struct.unpack_from("<I", data, 20)[0] == 105
    pos, out = 24, []
    while pos < len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos + 16 : pos + 16 + incl])
        pos += 16 + incl
    return out


def real_beacons(name: str) -> list[bytes]:
    return [f for f in real_frames(name) if f[0] == 0x80][:3]


def with_fcs(frame: bytes) -> bytes:
    return frame + struct.pack("<I", zlib.crc32(frame))


def radiotap(flags: int | None, extended: bool = False) -> bytes:
    """TSFT (aligned to 8 from the header's start), then Flags; optionally a second presence word."""
    present = 0x1 | (0x2 if flags is not None else 0) | (0x8000_0000 if extended else 0)
    words = struct.pack("<I", present) + (struct.pack("<I", 0) if extended else b"")
    pad = b"\x00" * (-(4 + len(words)) % 8)
    fields = pad + struct.pack("<Q", 0x1122334455667788) + (bytes([flags]) if flags is not None else b"")
    return struct.pack("<BBH", 0, 0, 4 + len(words) + len(fields)) + words + fields


def prism(order: str = "<") -> bytes:
    """msgcode 0x44, msglen 144, device name, ten DID items (host time ... frame length)."""
    items = b"".join(struct.pack(order + "IHHI", (n << 16) | 0x44, 0, 4, n) for n in range(1, 11))
    return struct.pack(order + "II", 0x44, 144) + b"wlan0".ljust(16, b"\x00") + items


def avs(version: int = 0x80211001) -> bytes:
    length = 64 if version == 0x80211001 else 80
    fields = struct.pack(">IIQQIIIIIIiiII", version, length, 0, 0, 4, 6, 20, 0, 0, 2, -40, -95, 0, 1)
    return fields + b"\x00" * (length - len(fields))


def write_pcap(path: Path, linktype: int, frames: list[bytes], cut: int = 0) -> Path:
    """A pcap file; ``cut`` bytes of each frame's end missing, as a short snap length leaves them."""
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    records = [struct.pack("<IIII", i, 0, len(f) - cut, len(f)) + f[: len(f) - cut] for i, f in enumerate(frames)]
    path.write_bytes(head + b"".join(records))
    return path


def write_pcapng(
    path: Path, linktype: int, frames: list[bytes], order: str = "<", fcslen: int | None = None, simple: bool = False
) -> Path:
    def block(kind: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        return struct.pack(order + "II", kind, 12 + len(body)) + body + struct.pack(order + "I", 12 + len(body))

    options = b""
    if fcslen is not None:
        options = struct.pack(order + "HH", 13, 1) + bytes([fcslen, 0, 0, 0]) + struct.pack(order + "HH", 0, 0)
    out = block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack(order + "HHI", linktype, 0, 0) + options)
    for i, f in enumerate(frames):
        if simple:
            out += block(3, struct.pack(order + "I", len(f)) + f)
        else:
            out += block(6, struct.pack(order + "IIIII", 0, 0, i, len(f), len(f)) + f)
    path.write_bytes(out)
    return path


Wrap = Callable[[Path, list[bytes]], Path]
VARIANTS: dict[str, Wrap] = {
    "105 with FCS, found by its CRC": lambda p, b: write_pcap(p, 105, [with_fcs(f) for f in b]),
    "105 with FCS the pcap header declares": lambda p, b: write_pcap(
        p, 105 | 0x0400_0000 | (2 << 28), [with_fcs(f) for f in b]
    ),
    "127 radiotap, Flags: FCS, two presence words": lambda p, b: write_pcap(
        p, 127, [radiotap(0x10, extended=True) + with_fcs(f) for f in b]
    ),
    "127 radiotap, no Flags field, no FCS": lambda p, b: write_pcap(p, 127, [radiotap(None) + f for f in b]),
    "119 Prism little-endian, with FCS": lambda p, b: write_pcap(p, 119, [prism("<") + with_fcs(f) for f in b]),
    "119 Prism big-endian, no FCS": lambda p, b: write_pcap(p, 119, [prism(">") + f for f in b]),
    "119 carrying an AVS header": lambda p, b: write_pcap(p, 119, [avs() + with_fcs(f) for f in b]),
    "163 AVS v1 with FCS": lambda p, b: write_pcap(p, 163, [avs() + with_fcs(f) for f in b]),
    "163 AVS v2, FCS all ones": lambda p, b: write_pcap(p, 163, [avs(0x80211002) + f + b"\xff" * 4 for f in b]),
    "pcapng 127 radiotap with FCS": lambda p, b: write_pcapng(p, 127, [radiotap(0x10) + with_fcs(f) for f in b]),
    "pcapng 105, if_fcslen 32 bits": lambda p, b: write_pcapng(p, 105, [with_fcs(f) for f in b], fcslen=32),
    "pcapng 105 no FCS": lambda p, b: write_pcapng(p, 105, b),
    "pcapng big-endian 119 Prism with FCS": lambda p, b: write_pcapng(
        p, 119, [prism(">") + with_fcs(f) for f in b], order=">"
    ),
    "pcapng 163 AVS in simple packet blocks": lambda p, b: write_pcapng(
        p, 163, [avs() + with_fcs(f) for f in b], simple=True
    ),
}


@needs_real
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_real_wpa_tkip_beacons_in_every_link_type(tmp_path: Path, variant: str) -> None:
    """The WPA (v1) TKIP-only network once came out 'unknown', all inconclusive, from a Prism capture."""
    path = VARIANTS[variant](tmp_path / "capture", real_beacons("wpa-psk-linksys.cap"))
    rc, report, output = run_cli(tmp_path, path)
    assert report is not None, output
    assert verdicts(report) == {(LINKSYS, "linksys"): TKIP_ONLY}
    (ev,) = evidence(report, "WPA-TKIP")
    assert (ev["security"], ev["frames"]) == ("wpa", 3)
    assert rc == 1


@needs_real
def test_a_frame_failing_its_fcs_is_dropped_not_judged(tmp_path: Path) -> None:
    good = [with_fcs(f) for f in real_beacons("wpa2-psk-linksys.cap")]
    bad = bytearray(good[0])
    bad[40] ^= 0xFF  # one flipped byte inside the elements: its CRC no longer matches
    flagged = radiotap(0x50) + good[1]  # radiotap: "frame failed FCS check"
    capture = wifi.read_capture(write_pcap(tmp_path / "a.pcap", 105, [*good, bytes(bad)]))
    assert capture.damaged == 1 and [(n.security, n.frames, n.malformed) for n in capture.networks] == [("wpa2", 3, [])]
    capture = wifi.read_capture(write_pcap(tmp_path / "b.pcap", 127, [radiotap(0x10) + good[0], flagged]))
    assert capture.damaged == 1 and [n.frames for n in capture.networks] == [1]
    rc, _, output = run_cli(tmp_path, tmp_path / "a.pcap")
    assert rc == 0 and "1 beacon/probe response(s) dropped for a bad FCS" in output


@needs_real
def test_a_non_utf8_ssid_is_shown_escaped_with_every_byte(tmp_path: Path) -> None:
    beacon = real_beacons("wpa2-psk-linksys.cap")[0]
    assert beacon[36:38] == bytes([0, 7]) and beacon[38:45] == b"linksys"  # the SSID is its first element
    raw = b"caf\xe9-\\"
    renamed = beacon[:36] + bytes([0, len(raw)]) + raw + beacon[45:]
    rc, report, output = run_cli(tmp_path, write_pcap(tmp_path / "ssid.pcap", 105, [renamed]))
    assert report is not None, output
    assert set(verdicts(report)) == {(LINKSYS, "caf\\xe9-\\\\")}
    assert rc == 0
    assert wifi.ssid_text("Café".encode()) == "Café" and wifi.ssid_text(b"\x00" * 7) == ""


# --- captures that cannot be judged: exit 2, naming the link type, never "0 networks" and exit 0 ---


def test_a_non_80211_capture_exits_2_naming_its_link_type(tmp_path: Path) -> None:
    ether = bytes.fromhex("ffffffffffff0200000000010806") + bytes(28)  # an ARP request
    for path in (write_pcap(tmp_path / "e.pcap", 1, [ether]), write_pcapng(tmp_path / "e.pcapng", 1, [ether])):
        rc, report, output = run_cli(tmp_path, path)
        assert rc == 2 and report is None, output
        assert "Ethernet (1)" in output and "none on an 802.11 link type" in output


@needs_real
def test_an_80211_capture_without_beacons_exits_2(tmp_path: Path) -> None:
    others = [f for f in real_frames("wep.shared.key.authentication.cap") if f[0] not in (0x80, 0x50)]
    assert len(others) == 12  # authentication, association and data frames: no beacon, no probe response
    rc, report, output = run_cli(tmp_path, write_pcap(tmp_path / "auth.pcap", 105, others))
    assert rc == 2 and report is None, output
    assert "raw 802.11 (105)" in output and "12 802.11 frame(s) but no network decoded" in output
    rc, _, output = run_cli(tmp_path, write_pcap(tmp_path / "prism.pcap", 119, [b"\x00" * 200]))
    assert rc == 2 and "Prism header (119)" in output and "Prism msgcode" in output, output
    rc, _, output = run_cli(tmp_path, write_pcapng(tmp_path / "empty.pcapng", 127, []))
    assert rc == 2 and "802.11 with radiotap (127): no 802.11 frame in the capture" in output, output


def test_radio_headers_that_run_past_their_record_are_counted_not_read(tmp_path: Path) -> None:
    beacon = bytes(36)
    records = [
        struct.pack("<BBHI", 0, 0, 400, 0) + beacon,  # it_len past the record
        struct.pack("<BBHI", 0, 0, 8, 0x8000_0003) + beacon,  # a second presence word past it_len
        struct.pack("<BBHI", 1, 0, 8, 0) + beacon,  # radiotap version 1
    ]
    capture = wifi.read_capture(write_pcap(tmp_path / "rt.pcap", 127, records))
    assert capture.networks == [] and len(capture.broken) == 3, capture.broken
    assert "radiotap length 400" in capture.broken[0] and "presence words" in capture.broken[1]
    capture = wifi.read_capture(write_pcap(tmp_path / "avs.pcap", 163, [avs()[:4] + struct.pack(">I", 900) + beacon]))
    assert capture.networks == [] and "AVS header length 900" in capture.broken[0]


def test_a_file_that_is_no_capture_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(b"not a capture at all")
    rc, _, output = run_cli(tmp_path, path)
    assert rc == 2 and "not a readable pcap/pcapng capture" in output, output


@needs_real
def test_a_capture_cut_short_keeps_what_came_before(tmp_path: Path) -> None:
    beacons = real_beacons("wpa2-psk-linksys.cap")
    path = write_pcap(tmp_path / "cut.pcap", 105, beacons)
    path.write_bytes(path.read_bytes()[:-10])  # the capture stopped mid-record
    capture = wifi.read_capture(path)
    assert [n.frames for n in capture.networks] == [2] and capture.truncated and "record 3" in capture.truncated
    # a record claiming a gigabyte stops the reading there, bounded, and says so
    data = write_pcap(tmp_path / "big.pcap", 105, beacons[:1]).read_bytes() + struct.pack("<IIII", 0, 0, 1 << 30, 0)
    path.write_bytes(data)
    capture = wifi.read_capture(path)
    assert [n.frames for n in capture.networks] == [1]
    assert capture.truncated is not None and "claims 1073741824 captured bytes" in capture.truncated


@needs_real
def test_frames_cut_by_the_snap_length_only_speak_when_nothing_whole_does(tmp_path: Path) -> None:
    beacons = real_beacons("wpa-psk-linksys.cap")
    capture = wifi.read_capture(write_pcap(tmp_path / "cut.pcap", 105, beacons, cut=30))
    ((net),) = capture.networks
    assert net.security == "unknown" and net.malformed[0].startswith("frame: cut by the capture's snap length")
    rc, report, output = run_cli(tmp_path, tmp_path / "cut.pcap")
    assert report is not None and set(verdicts(report)[(LINKSYS, "linksys")].values()) == {"inconclusive"}, output
    assert rc == 0
    whole = write_pcap(tmp_path / "whole.pcap", 105, beacons[:1]).read_bytes()
    cut = write_pcap(tmp_path / "c1.pcap", 105, beacons[1:], cut=30).read_bytes()[24:]
    (tmp_path / "mixed.pcap").write_bytes(whole + cut)
    (net,) = wifi.read_capture(tmp_path / "mixed.pcap").networks
    assert (net.security, net.frames, net.malformed) == ("wpa", 1, [])
