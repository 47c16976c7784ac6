"""Fuzz: 802.11 information elements and frames (probes/wifi/__init__.py), radio headers and the FCS
(probes/wifi/radio.py), and pcap/pcapng capture files (probes/wifi/capture.py, wifi.read_capture).

A malformed element or frame is recorded as such, never raised; a radio
header or capture file either decodes within its record or raises
MalformedResponse; what is read is never more than what the file holds.
"""

from __future__ import annotations

import io
import struct
import tempfile
import zlib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from probes import wifi
from probes.wifi import radio as wifi_radio
from probes.wifi.capture import CaptureFile, Record
from profiles.errors import UsageError
from tests.fuzzing import budget, inputs, parse_or_malformed


def _ie(eid: int, body: bytes) -> bytes:
    return bytes([eid, len(body)]) + body


RSN = _ie(48, b"\x01\x00\x00\x0f\xac\x04\x01\x00\x00\x0f\xac\x04\x02\x00\x00\x0f\xac\x02\x00\x0f\xac\x08\xc0\x00")
WPA = _ie(221, b"\x00\x50\xf2\x01\x01\x00\x00\x50\xf2\x02\x01\x00\x00\x50\xf2\x02\x01\x00\x00\x50\xf2\x02")
WPS = _ie(221, b"\x00\x50\xf2\x04" + b"\x10\x4a\x00\x01\x10" + b"\x10\x44\x00\x01\x02" + b"\x10\x57\x00\x01\x01")
HEADER = b"\x80\x00\x00\x00" + b"\xff" * 6 + bytes.fromhex("02aabbccddee") * 2 + b"\x10\x00"
BEACON = HEADER + bytes(8) + b"\x64\x00\x11\x04" + _ie(0, b"EdgeLab-5G") + _ie(3, b"\x24") + RSN + WPA + WPS
FCS = struct.pack("<I", zlib.crc32(BEACON))
RADIOTAP = struct.pack("<BBHII", 0, 0, 25, 0x8000_0003, 0) + bytes(4) + struct.pack("<Q", 1) + b"\x00"  # 2 words


def _radiotap(flags: int) -> bytes:
    fields = struct.pack("<Q", 0x1122334455667788) + bytes([flags])
    return struct.pack("<BBHI", 0, 0, 8 + len(fields), 0x3) + fields


SECURITY = {
    "open",
    "wep",
    "wpa",
    "wpa2",
    "wpa3",
    "wpa2/wpa3",
    "wpa/wpa2",
    "wpa/wpa3",
    "wpa/wpa2/wpa3",
    "owe",
    "unknown",
}
FRAME_SEEDS = (BEACON, BEACON + FCS, HEADER.replace(b"\x80", b"\x50", 1) + BEACON[24:])


@given(inputs(FRAME_SEEDS, max_size=512))
@budget(500)
def test_management_frame(data: bytes) -> None:
    """A beacon's elements: decoded, or recorded as malformed; only a frame too short for its fixed part raises."""
    mgmt = wifi.management(data)
    if mgmt is None:
        return
    bssid, header = mgmt
    net = parse_or_malformed(lambda: wifi.parse_frame(bssid, data, header))
    if net is None:
        assert len(data) < header + wifi.FIXED
        return
    assert net.security in SECURITY
    assert isinstance(net.uses_tkip, bool)
    if net.rsn is not None:
        assert len(net.rsn.pairwise) + len(net.rsn.akms) <= len(data) // 4
    assert len(net.ssid) <= 4 * 255 + 4


@given(st.binary(max_size=80))
@budget(300)
def test_elements(body: bytes) -> None:
    parse_or_malformed(lambda: wifi.parse_rsn(body))
    parse_or_malformed(lambda: wifi.parse_wpa(body))
    parse_or_malformed(lambda: wifi.parse_wps(body))
    found = parse_or_malformed(lambda: list(wifi.elements(body)))
    if found is not None:
        assert sum(2 + len(value) for _eid, value in found) == len(body)


def _unescape(shown: str) -> bytes:
    """The inverse of ssid_text, from its docstring: a doubled backslash is one, a single one starts \\xNN."""
    i, out = 0, bytearray()
    while i < len(shown):
        if shown.startswith("\\\\", i):
            out += b"\\"
            i += 2
        elif shown[i] == "\\":
            out.append(int(shown[i + 2 : i + 4], 16))
            i += 4
        else:
            out += shown[i].encode()
            i += 1
    return bytes(out)


@given(st.binary(min_size=1, max_size=32) | st.text(max_size=16).map(str.encode))
@budget(300)
def test_ssid_text_loses_no_byte(raw: bytes) -> None:
    shown = wifi.ssid_text(raw)
    if not raw.strip(b"\x00"):
        assert shown == ""
        return
    assert shown.isprintable()
    assert _unescape(shown) == raw


@given(
    st.sampled_from(sorted(wifi_radio.DOT11_LINKTYPES)),
    inputs(
        (
            RADIOTAP + BEACON,
            _radiotap(0x10) + BEACON + FCS,
            _radiotap(0x50) + BEACON,
            struct.pack("<II", 0x44, 40) + b"wlan0".ljust(32, b"\0") + BEACON + FCS,
            struct.pack(">II", 0x80211001, 64) + bytes(56) + BEACON + b"\xff" * 4,
            BEACON + FCS,
        ),
        max_size=512,
    ),
    st.none() | st.sampled_from((0, 4, 2)),
    st.integers(0, 8),
)
@budget(600)
def test_radio_frame(linktype: int, data: bytes, fcs: int | None, cut: int) -> None:
    record = Record(linktype, data, len(data) + cut, 0, fcs)
    frame = parse_or_malformed(lambda: wifi_radio.frame(record))
    if frame is not None:
        assert len(frame.data) <= len(data)
        assert frame.data in data
        # a record the snap length cut is marked so (radiotap's "failed FCS" flag, in the header, still counts)
        assert frame.cut == (cut > 0) or (frame.fcs is wifi_radio.Fcs.DAMAGED and not frame.cut)


def _pcap(linktype: int, frames: list[bytes]) -> bytes:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    return head + b"".join(struct.pack("<IIII", i, 0, len(f), len(f)) + f for i, f in enumerate(frames))


def _block(kind: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


PCAPNG = (
    _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    + _block(1, struct.pack("<HHI", 105, 0, 0) + struct.pack("<HH", 13, 1) + b"\x04\0\0\0" + b"\0" * 4)
    + _block(6, struct.pack("<IIIII", 0, 0, 1, len(BEACON) + 4, len(BEACON) + 4) + BEACON + FCS)
    + _block(3, struct.pack("<I", len(BEACON) + 4) + BEACON + FCS)
    + _block(2, struct.pack("<HHIIII", 0, 0, 0, 2, len(BEACON) + 4, len(BEACON) + 4) + BEACON + FCS)
    + _block(5, b"stats")
)
CAPTURES = (
    _pcap(105, [BEACON, BEACON + FCS]),
    _pcap(127, [_radiotap(0x10) + BEACON + FCS]),
    _pcap(1, [b"\0" * 60]),
    PCAPNG,
)


def _records(data: bytes) -> tuple[CaptureFile, list[Record]] | None:
    reader = CaptureFile(io.BytesIO(data))
    return reader, list(reader.records())


@given(inputs(CAPTURES, max_size=1024))
@budget(600)
def test_capture_file(data: bytes) -> None:
    got = parse_or_malformed(lambda: _records(data))
    if got is None:
        return
    reader, records = got
    assert reader.format in ("pcap", "pcapng")
    assert sum(len(r.data) for r in records) <= len(data)
    assert len(records) <= len(data) // 12
    for record in records:
        assert record.orig_len >= len(record.data)
        assert record.interface < max(1, len(reader.interfaces))


@given(inputs(CAPTURES, max_size=1024))
@budget(150)
def test_read_capture(data: bytes) -> None:
    """The whole path of --pcap: a file that is no capture is a UsageError, anything else a Capture."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.pcap"
        path.write_bytes(data)
        try:
            capture = wifi.read_capture(path)
        except UsageError:
            return
    assert capture.records <= len(data) // 12
    assert capture.management <= capture.dot11 <= capture.records
    assert len(capture.networks) <= capture.records
