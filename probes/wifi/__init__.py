"""802.11 beacons and probe responses: what each network's security really is (MIC Wi-Fi guidance, CIAJ 3.4 case 3).

Frames come from a pcap/pcapng file (probes.wifi.capture reads it, with the
link type each record was captured on) or a monitor-mode interface (received
only: nothing is transmitted). probes.wifi.radio removes the radio header
(radiotap, Prism, AVS) and the FCS; the management header and the information
elements are then decoded here from the raw bytes with bounded reads, so a
truncated or malformed element is recorded as such, never guessed around:

- the capability Privacy bit (WEP when no RSN or WPA element is present);
- RSN (element 48): group and pairwise ciphers, AKM suites (PSK, SAE, 802.1X,
  OWE, ...), management frame protection (MFPC/MFPR);
- WPA (vendor 00:50:F2 type 1): WPA1, TKIP in practice;
- WPS (vendor 00:50:F2 type 4): Wi-Fi Protected Setup state and AP setup lock.

An SSID is shown as text when it is printable UTF-8, else escaped byte by
byte (``\\xNN``), so no byte is lost; a backslash is always shown doubled so
the two forms cannot be confused.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probes import wire
from probes.wifi import radio as wifi_radio
from probes.wifi.capture import CaptureFile, Record
from probes.wifi.radio import Fcs
from profiles.errors import MalformedResponse, UsageError

MAX_FRAMES = 2_000_000
MAX_NETWORKS = 4096
MGMT_HEADER = 24  # 802.11 management header, no HT Control
BEACON, PROBE_RESPONSE = 8, 5  # management subtypes
FIXED_FIELDS = struct.Struct("<QHH")  # timestamp, beacon interval, capability
FIXED = FIXED_FIELDS.size
PRIVACY = 0x0010

RSN_OUI = b"\x00\x0f\xac"
MS_OUI = b"\x00\x50\xf2"
WPA_PREFIX, WPS_PREFIX = MS_OUI + b"\x01", MS_OUI + b"\x04"  # vendor element: OUI and vendor type
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


def _suite(raw: bytes, oui: bytes, names: dict[int, str]) -> str:
    if raw[:3] != oui:
        return f"vendor {raw[:3].hex(':')}/{raw[3]}"
    return names.get(raw[3], f"reserved {raw[3]}")


def _suites(
    r: wire.Reader, oui: bytes, ciphers: dict[int, str], akms: dict[int, str]
) -> tuple[str, list[str], list[str]]:
    group = _suite(r.take(4, "group cipher"), oui, ciphers)
    pairwise = [_suite(r.take(4, "pairwise cipher"), oui, ciphers) for _ in range(r.u16le("pairwise count"))]
    akm = [_suite(r.take(4, "AKM suite"), oui, akms) for _ in range(r.u16le("AKM count"))]
    return group, pairwise, akm


def parse_rsn(body: bytes) -> Suites:
    """Element 48. Group, pairwise and AKM lists are required here: an RSN element without them says nothing.

    What follows them (RSN capabilities, PMKID count and list, group management cipher) is optional
    (IEEE 802.11-2016 Figure 9-255, the RSNE format) and only the capabilities are read, when whole:
    bytes after what is read are allowed, as they are the optional fields this parser skips.
    """
    r = wire.Reader(body, "RSN element")
    if r.u16le("version") != 1:
        raise MalformedResponse("RSN element: version is not 1")
    group, pairwise, akm = _suites(r, RSN_OUI, CIPHERS, AKMS)
    caps = r.u16le("RSN capabilities") if r.remaining >= 2 else 0
    return Suites(group, tuple(pairwise), tuple(akm), bool(caps & 0x80), bool(caps & 0x40))


def parse_wpa(body: bytes) -> Suites:
    """Vendor element 00:50:F2 type 1 (the OUI and type already removed); trailing bytes allowed, as in RSN."""
    r = wire.Reader(body, "WPA element")
    if r.u16le("version") != 1:
        raise MalformedResponse("WPA element: version is not 1")
    group, pairwise, akm = _suites(r, MS_OUI, WPA_CIPHERS, WPA_AKMS)
    return Suites(group, tuple(pairwise), tuple(akm))


def parse_wps(body: bytes) -> tuple[bool | None, bool | None]:
    """Vendor element 00:50:F2 type 4: (configured, AP setup locked), from its big-endian TLVs.

    The element is TLVs and nothing else: a byte that is no whole TLV is malformed.
    """
    configured: bool | None = None
    locked: bool | None = None
    r = wire.Reader(body, "WPS element")
    while not r.at_end:
        kind = r.u16("attribute type")
        value = r.counted(2, f"attribute 0x{kind:04x}")
        if kind == 0x1044 and len(value) == 1:
            configured = value[0] == 2
        elif kind == 0x1057 and len(value) == 1:
            locked = value[0] == 1
    return configured, locked


def elements(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(id, body) of each information element; a truncated last element raises MalformedResponse.

    The elements fill the frame body to its end (the FCS is already removed), so a byte that is no
    whole element is malformed.
    """
    r = wire.Reader(data, "information elements")
    while not r.at_end:
        eid, length = r.take(2, "element header", short="information element header truncated")
        yield eid, r.take(length, f"element {eid}", short=f"element {eid} runs past the frame ({length} bytes)")


def parse_frame(bssid: str, frame: bytes, header: int = MGMT_HEADER) -> Network:
    """One beacon or probe response (the 802.11 frame from its header on, no FCS)."""
    r = wire.Reader(frame, "management frame")
    short = "management frame shorter than its fixed fields"
    r.skip(header, "management header", short=short)
    _timestamp, _interval, cap = r.unpack(FIXED_FIELDS, "fixed fields", short=short)
    net = Network(bssid=bssid, privacy=bool(cap & PRIVACY), frames=1)
    try:
        for eid, body in elements(r.rest()):
            _element(net, eid, body)
    except MalformedResponse as exc:
        net.malformed.append(f"frame: {exc}")  # the elements after this one were never seen
    return net


def ssid_text(raw: bytes) -> str:
    """The SSID as text: printable UTF-8 as it is, anything else escaped byte by byte; "" when hidden."""
    if not raw.strip(b"\x00"):
        return ""  # hidden: empty, or as many NULs as the real name is long
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and text.isprintable():
        return text.replace("\\", "\\\\")
    return "".join("\\\\" if b == 0x5C else chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in raw)


def _element(net: Network, eid: int, body: bytes) -> None:
    try:
        if eid == 0:
            net.ssid = ssid_text(body)
        elif eid == 3 and len(body) == 1:
            net.channel = body[0]
        elif eid == 48:
            net.rsn = parse_rsn(body)
        elif eid == 221 and body.startswith(WPA_PREFIX):
            net.wpa = parse_wpa(body.removeprefix(WPA_PREFIX))
        elif eid == 221 and body.startswith(WPS_PREFIX):
            net.wps = True
            net.wps_configured, net.wps_locked = parse_wps(body.removeprefix(WPS_PREFIX))
    except MalformedResponse as exc:
        net.malformed.append(str(exc))


def merge(networks: dict[tuple[str, str], Network], net: Network) -> None:
    """Fold one frame's (or one group of frames') view into the networks seen so far (by BSSID and SSID)."""
    key = (net.bssid, net.ssid)
    old = networks.get(key)
    if old is None:
        if len(networks) >= MAX_NETWORKS:
            return
        networks[key] = net
        return
    old.frames += net.frames
    for name in ("rsn", "wpa", "channel", "wps_configured", "wps_locked"):
        if getattr(old, name) is None and getattr(net, name) is not None:
            setattr(old, name, getattr(net, name))
    old.privacy = old.privacy or net.privacy
    old.wps = old.wps or net.wps
    old.malformed += [m for m in net.malformed if m not in old.malformed][:8]


def management(data: bytes) -> tuple[str, int] | None:
    """(BSSID, header length) of a beacon or probe response; None for any other frame."""
    r = wire.Reader(data, "802.11 header")
    try:
        # frame control, duration, address 1 (DA), address 2 (SA), address 3 (BSSID), sequence control
        fc0, fc1, _duration, _da, _sa, bssid, _seq = r.unpack("<BBH6s6s6sH", "management header")
    except MalformedResponse:
        return None
    if fc0 & 0x03 or (fc0 >> 2) & 0x03 != 0 or fc0 >> 4 not in (BEACON, PROBE_RESPONSE):
        return None  # protocol version is 0 in every 802.11 frame; type 0 is management
    if fc1 & 0x40:
        return None  # Protected Frame: a body we cannot read (beacons are never protected)
    # Order set in a management frame means a 4-byte HT Control field after Sequence Control (+HTC)
    header = MGMT_HEADER + (4 if fc1 & 0x80 else 0)
    return bytes(bssid).hex(":"), header


@dataclass
class Capture:
    """What one capture held, and what of it was read."""

    format: str = ""  # "pcap", "pcapng" or "monitor"
    records: int = 0
    linktypes: dict[int, int] = field(default_factory=dict)  # records per link type
    dot11: int = 0  # records on an 802.11 link type
    management: int = 0  # beacons and probe responses decoded
    damaged: int = 0  # frames dropped: their FCS did not match (or radiotap flagged it)
    undecoded: int = 0  # records whose radio header could not be decoded
    broken: list[str] = field(default_factory=list)  # why, for the first few
    truncated: str | None = None  # the file ended inside a record; or a framing error that stopped reading
    networks: list[Network] = field(default_factory=list)

    def linktype_names(self) -> str:
        """'raw 802.11 (105)', or several, comma-separated."""
        return ", ".join(wifi_radio.linktype_name(lt) for lt in sorted(self.linktypes)) or "no link type"


class _Decoder:
    """Frames in, networks out; frames whose FCS is unsure wait until their interface is known."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.found: dict[tuple[str, str], Network] = {}
        self.cut: dict[tuple[str, str], Network] = {}  # seen only in frames the snap length cut
        self.unsure: dict[int, dict[tuple[str, str], Network]] = {}  # per interface
        self.unsure_frames: dict[int, int] = {}
        self.carries_fcs: set[int] = set()  # interfaces where the CRC alone found an FCS

    def add(self, record: Record) -> None:
        cap = self.capture
        cap.records += 1
        cap.linktypes[record.linktype] = cap.linktypes.get(record.linktype, 0) + 1
        if record.linktype not in wifi_radio.DOT11_LINKTYPES:
            return
        cap.dot11 += 1
        try:
            frame = wifi_radio.frame(record)
        except MalformedResponse as exc:
            cap.undecoded += 1
            if len(cap.broken) < 8:
                cap.broken.append(f"record {cap.records}: {exc}")
            return
        if frame.detected:
            self.carries_fcs.add(record.interface)
        mgmt = management(frame.data)
        if mgmt is None:
            return
        if frame.fcs is Fcs.DAMAGED:
            cap.damaged += 1
            return
        cap.management += 1
        net = _network(mgmt[0], mgmt[1], frame.data)
        if frame.cut:
            if any(m.startswith("frame:") for m in net.malformed):
                net.malformed = [f"frame: cut by the capture's snap length ({len(record.data)} of "
                                 f"{record.orig_len} bytes)"]  # fmt: skip
            merge(self.cut, net)
        elif frame.fcs is Fcs.UNSURE:
            self.unsure_frames[record.interface] = self.unsure_frames.get(record.interface, 0) + 1
            merge(self.unsure.setdefault(record.interface, {}), net)
        else:
            merge(self.found, net)

    def finish(self) -> list[Network]:
        for iface, nets in self.unsure.items():
            if iface in self.carries_fcs:
                # other frames of this interface end in a valid CRC: these, whose tail is no CRC, are damaged
                self.capture.damaged += self.unsure_frames[iface]
                self.capture.management -= self.unsure_frames[iface]
                continue
            for net in nets.values():
                merge(self.found, net)
        for key, net in self.cut.items():
            if key not in self.found:  # a cut frame only speaks for a network no whole frame described
                merge(self.found, net)
        return [self.found[k] for k in sorted(self.found)]


def _network(bssid: str, header: int, data: bytes) -> Network:
    try:
        return parse_frame(bssid, data, header)
    except MalformedResponse as exc:
        return Network(bssid=bssid, frames=1, malformed=[f"frame: {exc}"])


def read_capture(path: Path) -> Capture:
    """Networks from a pcap or pcapng file (streamed, at most MAX_FRAMES records)."""
    try:
        stream = path.open("rb")
    except FileNotFoundError as exc:
        raise UsageError(f"--pcap {path}: no such file") from exc
    except OSError as exc:
        raise UsageError(f"--pcap {path}: {exc.strerror or exc}") from exc
    with stream:
        try:
            reader = CaptureFile(stream)
        except MalformedResponse as exc:
            raise UsageError(f"--pcap {path}: not a readable pcap/pcapng capture ({exc})") from exc
        capture = Capture(format=reader.format)
        decoder = _Decoder(capture)
        for lt in reader.interfaces:  # a capture with no record still names its link type
            capture.linktypes.setdefault(lt, 0)
        try:
            for record in reader.records():
                if capture.records >= MAX_FRAMES:
                    capture.truncated = f"stopped after {MAX_FRAMES} records"
                    break
                decoder.add(record)
        except MalformedResponse as exc:
            capture.truncated = f"stopped at a broken {reader.format} structure: {exc}"
        for lt in reader.interfaces:
            capture.linktypes.setdefault(lt, 0)
        capture.truncated = capture.truncated or reader.truncated
    capture.networks = decoder.finish()
    return capture


SCAPY_LINKTYPES = {"RadioTap": wifi_radio.RADIOTAP, "Dot11": wifi_radio.DOT11, "Dot11FCS": wifi_radio.DOT11,
                   "PrismHeader": wifi_radio.PRISM, "AVSWLANHeader": wifi_radio.AVS}  # fmt: skip


def networks_from(packets: Iterable[Any]) -> list[Network]:
    """Networks from live scapy packets: their bytes go through the same decoder as a file's records."""
    decoder = _Decoder(Capture(format="monitor"))
    for count, pkt in enumerate(packets):
        if count >= MAX_FRAMES:
            break
        linktype = SCAPY_LINKTYPES.get(type(pkt).__name__)
        if linktype is not None:
            raw = bytes(pkt)
            decoder.add(Record(linktype, raw, len(raw), 0, None))
    return decoder.finish()


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
