"""802.11 beacons and probe responses: what each network's security really is (MIC Wi-Fi guidance, CIAJ 3.4 case 3).

Frames come from a pcap/pcapng file or a monitor-mode interface (received
only: nothing is transmitted). scapy finds the management frames; the
information elements are then decoded here from the raw bytes with bounded
reads, so a truncated or malformed element is recorded as such, never
guessed around:

- the capability Privacy bit (WEP when no RSN or WPA element is present);
- RSN (element 48): group and pairwise ciphers, AKM suites (PSK, SAE, 802.1X,
  OWE, ...), management frame protection (MFPC/MFPR);
- WPA (vendor 00:50:F2 type 1): WPA1, TKIP in practice;
- WPS (vendor 00:50:F2 type 4): Wi-Fi Protected Setup state and AP setup lock.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.errors import MalformedResponse, UsageError

MAX_FRAMES = 2_000_000
MAX_NETWORKS = 4096
MGMT_HEADER = 24  # 802.11 management header, no HT Control
FIXED = 12  # timestamp, beacon interval, capability
PRIVACY = 0x0010

RSN_OUI = b"\x00\x0f\xac"
MS_OUI = b"\x00\x50\xf2"
CIPHERS = {1: "WEP-40", 2: "TKIP", 4: "CCMP", 5: "WEP-104", 8: "GCMP", 9: "GCMP-256", 10: "CCMP-256"}
AKMS = {
    1: "802.1X", 2: "PSK", 3: "FT-802.1X", 4: "FT-PSK", 5: "802.1X-SHA256", 6: "PSK-SHA256", 8: "SAE",
    9: "FT-SAE", 11: "802.1X-SUITE-B", 12: "802.1X-SUITE-B-192", 18: "OWE", 24: "SAE-EXT-KEY",
}  # fmt: skip
WPA_CIPHERS = {1: "WEP-40", 2: "TKIP", 4: "CCMP", 5: "WEP-104"}
WPA_AKMS = {1: "802.1X", 2: "PSK"}


@dataclass(frozen=True)
class Suites:
    """A decoded RSN or WPA element."""

    group: str
    pairwise: tuple[str, ...]
    akms: tuple[str, ...]
    mfp_capable: bool = False
    mfp_required: bool = False


@dataclass
class Network:
    """One BSS as its beacons and probe responses describe it."""

    bssid: str
    ssid: str = ""
    channel: int | None = None
    privacy: bool = False
    rsn: Suites | None = None
    wpa: Suites | None = None
    wps: bool = False
    wps_configured: bool | None = None  # WPS state 2 (configured) vs 1 (not configured)
    wps_locked: bool | None = None  # AP Setup Locked
    frames: int = 0
    malformed: list[str] = field(default_factory=list)  # "RSN element: ...", "frame: ..." (all after it unseen)

    @property
    def security(self) -> str:
        """open, wep, wpa, wpa2, wpa3, wpa2/wpa3, wpa/wpa2, owe, or unknown (a malformed element)."""
        if any(m.startswith(("frame:", "RSN element", "WPA element")) for m in self.malformed):
            return "unknown"
        if self.rsn is None and self.wpa is None:
            return "wep" if self.privacy else "open"
        if self.rsn is None:
            return "wpa"
        akms = set(self.rsn.akms)
        sae = bool(akms & {"SAE", "FT-SAE", "SAE-EXT-KEY"})
        older = bool(akms - {"SAE", "FT-SAE", "SAE-EXT-KEY", "OWE"})
        if akms == {"OWE"}:
            return "owe"
        name = "wpa3" if sae and not older else ("wpa2/wpa3" if sae else "wpa2")
        return "wpa/" + name if self.wpa is not None else name

    @property
    def uses_tkip(self) -> bool:
        """WPA1 present, or TKIP as an RSN pairwise or group cipher."""
        if self.wpa is not None:
            return True
        return self.rsn is not None and ("TKIP" in self.rsn.pairwise or self.rsn.group == "TKIP")


class _Reader:
    """Bounded reads over one element body; running short raises MalformedResponse."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedResponse(f"{self.what}: truncated at byte {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16le(self) -> int:
        return int(struct.unpack("<H", self.take(2))[0])

    def left(self) -> int:
        return len(self.data) - self.pos


def _suite(raw: bytes, oui: bytes, names: dict[int, str]) -> str:
    if raw[:3] != oui:
        return f"vendor {raw[:3].hex(':')}/{raw[3]}"
    return names.get(raw[3], f"reserved {raw[3]}")


def _suites(r: _Reader, oui: bytes, ciphers: dict[int, str], akms: dict[int, str]) -> tuple[str, list[str], list[str]]:
    group = _suite(r.take(4), oui, ciphers)
    pairwise = [_suite(r.take(4), oui, ciphers) for _ in range(r.u16le())]
    akm = [_suite(r.take(4), oui, akms) for _ in range(r.u16le())]
    return group, pairwise, akm


def parse_rsn(body: bytes) -> Suites:
    """Element 48. Group, pairwise and AKM lists are required here: an RSN element without them says nothing."""
    r = _Reader(body, "RSN element")
    if r.u16le() != 1:
        raise MalformedResponse("RSN element: version is not 1")
    group, pairwise, akm = _suites(r, RSN_OUI, CIPHERS, AKMS)
    caps = r.u16le() if r.left() >= 2 else 0
    return Suites(group, tuple(pairwise), tuple(akm), bool(caps & 0x80), bool(caps & 0x40))


def parse_wpa(body: bytes) -> Suites:
    """Vendor element 00:50:F2 type 1 (the OUI and type already removed)."""
    r = _Reader(body, "WPA element")
    if r.u16le() != 1:
        raise MalformedResponse("WPA element: version is not 1")
    group, pairwise, akm = _suites(r, MS_OUI, WPA_CIPHERS, WPA_AKMS)
    return Suites(group, tuple(pairwise), tuple(akm))


def parse_wps(body: bytes) -> tuple[bool | None, bool | None]:
    """Vendor element 00:50:F2 type 4: (configured, AP setup locked), from its big-endian TLVs."""
    configured: bool | None = None
    locked: bool | None = None
    r = _Reader(body, "WPS element")
    while r.left() >= 4:
        kind, length = struct.unpack(">HH", r.take(4))
        value = r.take(length)
        if kind == 0x1044 and length == 1:
            configured = value[0] == 2
        elif kind == 0x1057 and length == 1:
            locked = value[0] == 1
    if r.left():
        raise MalformedResponse("WPS element: trailing bytes")
    return configured, locked


def elements(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(id, body) of each information element; a truncated last element raises MalformedResponse."""
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise MalformedResponse("information element header truncated")
        eid, length = data[pos], data[pos + 1]
        if pos + 2 + length > len(data):
            raise MalformedResponse(f"element {eid} runs past the frame ({length} bytes)")
        yield eid, data[pos + 2 : pos + 2 + length]
        pos += 2 + length


def parse_frame(bssid: str, frame: bytes) -> Network:
    """One beacon or probe response (the 802.11 frame from its header on, no FCS)."""
    if len(frame) < MGMT_HEADER + FIXED:
        raise MalformedResponse("management frame shorter than its fixed fields")
    (cap,) = struct.unpack("<H", frame[MGMT_HEADER + 10 : MGMT_HEADER + 12])
    net = Network(bssid=bssid, privacy=bool(cap & PRIVACY), frames=1)
    try:
        for eid, body in elements(frame[MGMT_HEADER + FIXED :]):
            _element(net, eid, body)
    except MalformedResponse as exc:
        net.malformed.append(f"frame: {exc}")  # the elements after this one were never seen
    return net


def _element(net: Network, eid: int, body: bytes) -> None:
    try:
        if eid == 0:
            net.ssid = body[:32].decode("utf-8", errors="replace")
        elif eid == 3 and len(body) == 1:
            net.channel = body[0]
        elif eid == 48:
            net.rsn = parse_rsn(body)
        elif eid == 221 and body[:3] == MS_OUI and len(body) >= 4:
            if body[3] == 1:
                net.wpa = parse_wpa(body[4:])
            elif body[3] == 4:
                net.wps = True
                net.wps_configured, net.wps_locked = parse_wps(body[4:])
    except MalformedResponse as exc:
        net.malformed.append(str(exc))


def merge(networks: dict[tuple[str, str], Network], net: Network) -> None:
    """Fold one frame's view into the networks seen so far (by BSSID and SSID)."""
    key = (net.bssid, net.ssid)
    old = networks.get(key)
    if old is None:
        if len(networks) >= MAX_NETWORKS:
            return
        networks[key] = net
        return
    old.frames += 1
    for name in ("rsn", "wpa", "channel", "wps_configured", "wps_locked"):
        if getattr(old, name) is None and getattr(net, name) is not None:
            setattr(old, name, getattr(net, name))
    old.privacy = old.privacy or net.privacy
    old.wps = old.wps or net.wps
    old.malformed += [m for m in net.malformed if m not in old.malformed][:8]


def _frames(packets: Iterable[Any]) -> Iterator[tuple[str, bytes]]:
    from scapy.layers.dot11 import Dot11, Dot11Beacon, Dot11FCS, Dot11ProbeResp

    for count, pkt in enumerate(packets):
        if count >= MAX_FRAMES:
            return
        if not (pkt.haslayer(Dot11Beacon) or pkt.haslayer(Dot11ProbeResp)):
            continue
        dot11 = pkt[Dot11FCS] if pkt.haslayer(Dot11FCS) else pkt[Dot11]
        raw = bytes(dot11)
        if pkt.haslayer(Dot11FCS):
            raw = raw[:-4]
        bssid = str(dot11.addr3 or "").lower()
        if bssid:
            yield bssid, raw


def networks_from(packets: Iterable[Any]) -> list[Network]:
    """Every network the beacons and probe responses describe, sorted by BSSID and SSID."""
    found: dict[tuple[str, str], Network] = {}
    for bssid, raw in _frames(packets):
        try:
            net = parse_frame(bssid, raw)
        except MalformedResponse as exc:
            net = Network(bssid=bssid, frames=1, malformed=[f"frame: {exc}"])
        merge(found, net)
    return [found[k] for k in sorted(found)]


def read_capture(path: Path) -> list[Network]:
    """Networks from a pcap or pcapng file (streamed, at most MAX_FRAMES frames)."""
    from scapy.error import Scapy_Exception
    from scapy.utils import PcapReader

    try:
        with PcapReader(str(path)) as reader:
            return networks_from(reader)
    except FileNotFoundError as exc:
        raise UsageError(f"--pcap {path}: no such file") from exc
    except (Scapy_Exception, EOFError, struct.error) as exc:
        raise UsageError(f"--pcap {path}: not a readable pcap/pcapng capture ({exc})") from exc


async def listen(iface: str, seconds: float) -> list[Network]:
    """Networks heard on a monitor-mode interface for ``seconds`` (root; received only, nothing sent)."""
    from scapy.sendrecv import AsyncSniffer

    packets: list[Any] = []
    sniffer = AsyncSniffer(iface=iface, store=False, prn=packets.append, monitor=True)
    try:
        sniffer.start()
    except OSError as exc:
        raise UsageError(f"--iface {iface}: {exc.strerror or exc}") from exc
    try:
        await asyncio.sleep(seconds)
    finally:
        sniffer.stop()
    return networks_from(packets[:MAX_FRAMES])
