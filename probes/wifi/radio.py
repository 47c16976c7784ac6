"""The radio header in front of an 802.11 frame, and the frame's FCS: bounded, one MalformedResponse.

Link types (tcpdump.org linktypes):
- 105 raw 802.11: the frame itself, with or without its FCS (the file may not say);
- 127 radiotap: ``it_version`` 0, ``it_len`` (little-endian) covers the whole
  header; presence words chain while bit 31 is set; the Flags field (bit 1,
  after TSFT, bit 0, 8 bytes aligned to 8) says "frame includes FCS" (0x10)
  and "frame failed FCS check" (0x40);
- 119 Prism: msgcode 0x41 or 0x44 and msglen (the whole header, in practice
  144) in the capturing host's byte order, then a 16-byte device name and the
  DID items. Some Linux drivers put an AVS header under this link type, so its
  version word is checked first (as libpcap does);
- 163 AVS: big-endian version 0x80211001 (64-byte header) or 0x80211002 and
  a length that covers the whole header. The frame ends with its FCS, all ones
  when the hardware supplied none (AVS capture frame format 2.1).

The FCS (CRC-32 of the frame, little-endian on the air) is removed when the
radio header or the file declares it and its CRC matches, or, when nothing
declares it, when the last four bytes are the CRC of the rest. A frame whose
declared FCS does not match is ``damaged``; a frame nothing declares an FCS
for and whose tail is not its CRC is ``unsure``: it has no FCS, or it is
damaged, and the reader decides from the other frames of its interface.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import StrEnum

from probes import wire
from probes.wifi.capture import Record
from profiles.errors import MalformedResponse

DOT11, PRISM, RADIOTAP, AVS = 105, 119, 127, 163
DOT11_LINKTYPES = {DOT11: "raw 802.11", PRISM: "802.11 with a Prism header", RADIOTAP: "802.11 with radiotap",
                   AVS: "802.11 with an AVS header"}  # fmt: skip
OTHER_LINKTYPES = {0: "BSD loopback", 1: "Ethernet", 101: "raw IP", 113: "Linux cooked (SLL)",
                   192: "802.11 with PPI (not read)", 228: "raw IPv4", 229: "raw IPv6",
                   276: "Linux cooked v2 (SLL2)"}  # fmt: skip
AVS_VERSIONS = (0x80211001, 0x80211002)
AVS_MAGIC = tuple(v.to_bytes(4, "big") for v in AVS_VERSIONS)
PRISM_MSGCODES = (0x41, 0x44)
RT_FCS, RT_BAD_FCS = 0x10, 0x40
FCS_LEN = 4


def linktype_name(linktype: int) -> str:
    """'radiotap (127)', 'Ethernet (1)', 'link type 147'."""
    name = DOT11_LINKTYPES.get(linktype) or OTHER_LINKTYPES.get(linktype)
    return f"{name} ({linktype})" if name else f"link type {linktype}"


class Fcs(StrEnum):
    """What became of a frame's FCS."""

    CHECKED = "checked"  # present and its CRC matched: removed
    ABSENT = "absent"  # declared absent (radiotap flags, the file)
    ALL_ONES = "all-ones"  # AVS: the hardware supplied none (0xFFFFFFFF): removed, nothing checked
    DAMAGED = "damaged"  # declared present (or flagged bad) and not matching: the frame is unreliable
    UNSURE = "unsure"  # nothing declares one and the tail is not a CRC: no FCS, or a damaged frame


@dataclass(frozen=True)
class Frame:
    """The 802.11 frame of one record, from its frame control field on, FCS removed."""

    data: bytes
    fcs: Fcs
    detected: bool  # the FCS was found by its CRC alone (nothing declared it): this interface carries FCS
    cut: bool  # the snap length cut the record: the end of the frame (and its FCS) is missing


def radiotap(data: bytes) -> tuple[int, int | None]:
    """(header length, Flags field or None) of a radiotap header.

    ``it_len`` covers the whole header; the fields after Flags are not read, and are allowed.
    """
    r = wire.Reader(data, "radiotap header")
    version, _pad, length = r.unpack("<BBH", "version, pad and length", short="radiotap header shorter than 8 bytes")
    if version != 0:
        raise MalformedResponse(f"radiotap version {version} (0 expected)")
    if length < 8:
        raise MalformedResponse(f"radiotap length {length} in a {len(data)}-byte record")
    flags: int | None = None
    with r.restrict_to(length - 4, "fields", short=f"radiotap length {length} in a {len(data)}-byte record"):
        present = word = r.u32le("presence word")
        while word & 0x8000_0000:  # another presence word follows; the fields start after the last one
            word = r.u32le("presence word", short="radiotap presence words run past its header")
        if present & 0x2:
            if present & 0x1:  # TSFT, u64, aligned to 8 from the start of the header
                r.align(8, "TSFT")
                r.skip(8, "TSFT")
            flags = r.u8("Flags", short="radiotap Flags field runs past its header")
    return length, flags


def avs(data: bytes) -> int:
    """Header length of an AVS capture header (the fields inside it are not read)."""
    r = wire.Reader(data, "AVS header")
    version, length = r.unpack(">II", "version and length", short="AVS header shorter than 8 bytes")
    if version not in AVS_VERSIONS:
        raise MalformedResponse(f"AVS header version {version:#010x}")
    if length < 8:
        raise MalformedResponse(f"AVS header length {length} in a {len(data)}-byte record")
    r.skip(length - 8, "AVS fields", short=f"AVS header length {length} in a {len(data)}-byte record")
    return int(length)


def prism(data: bytes) -> tuple[int, bool]:
    """(header length, is AVS) of the header under link type 119: Prism, or AVS as some drivers write."""
    if data.startswith(AVS_MAGIC):
        return avs(data), True
    r = wire.Reader(data, "Prism header")
    short = "Prism header shorter than its msgcode, msglen and device name"
    head = r.take(8, "msgcode and msglen", short=short)
    r.skip(16, "device name", short=short)
    for order in "<>":  # the capturing host's byte order, whichever it was
        msgcode, length = struct.unpack(order + "II", head)
        if msgcode in PRISM_MSGCODES:
            if length < 24:
                raise MalformedResponse(f"Prism msglen {length} in a {len(data)}-byte record")
            r.skip(length - 24, "DID items", short=f"Prism msglen {length} in a {len(data)}-byte record")
            return int(length), False
    raise MalformedResponse(f"Prism msgcode {head[:4].hex()} (0x41 or 0x44 expected)")


def _crc_matches(frame: bytes) -> bool:
    return len(frame) > FCS_LEN and zlib.crc32(frame[:-FCS_LEN]) == int.from_bytes(frame[-FCS_LEN:], "little")


def frame(record: Record) -> Frame:
    """The 802.11 frame in one record of an 802.11 link type (DOT11_LINKTYPES)."""
    data, declared, all_ones_ok = record.data, record.fcs, False
    if record.linktype == RADIOTAP:
        start, flags = radiotap(data)
        if flags is not None:
            if flags & RT_BAD_FCS:
                return Frame(data[start:], Fcs.DAMAGED, False, False)
            declared = FCS_LEN if flags & RT_FCS else 0
    elif record.linktype == PRISM:
        start, all_ones_ok = prism(data)
    elif record.linktype == AVS:
        start, all_ones_ok = avs(data), True
    elif record.linktype == DOT11:
        start = 0
    else:
        raise MalformedResponse(f"{linktype_name(record.linktype)} is not an 802.11 link type")
    body = data[start:]
    if len(data) < record.orig_len:
        return Frame(body, Fcs.UNSURE, False, True)  # the tail is gone: nothing to check or remove
    if declared == 0:
        return Frame(body, Fcs.ABSENT, False, False)
    if declared is not None and declared != FCS_LEN:
        raise MalformedResponse(f"the capture declares a {declared}-byte FCS; 802.11's is {FCS_LEN}")
    if _crc_matches(body):
        return Frame(body[:-FCS_LEN], Fcs.CHECKED, declared is None, False)
    if declared == FCS_LEN:
        return Frame(body[:-FCS_LEN], Fcs.DAMAGED, False, False)
    if all_ones_ok and body[-FCS_LEN:] == b"\xff" * FCS_LEN:
        return Frame(body[:-FCS_LEN], Fcs.ALL_ONES, False, False)
    return Frame(body, Fcs.UNSURE, False, False)
