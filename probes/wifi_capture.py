"""pcap and pcapng capture files, read by hand with bounded reads.

Not scapy's reader: it picks the link layer from whichever scapy layers happen
to be imported when the file is opened, and hands back raw packets otherwise,
so every real 802.11 capture read as "0 networks". Here each record comes with
the link type its file (pcap header) or interface (pcapng Interface
Description Block) declares, and with what the file says of the FCS:

- pcap: the link-type word's P bit (0x04000000) and FCS length in its top four
  bits, in 16-bit words (libpcap's LT_FCS_LENGTH_PRESENT / LT_FCS_LENGTH);
- pcapng: the IDB option ``if_fcslen`` (code 13).

Every length is checked against what is left of its block and against a
ceiling before anything is read; a file that breaks its own framing raises
MalformedResponse. A file that simply ends inside its last record (a capture
stopped mid-write) is not an error: ``truncated`` says where it ended.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from scanner.errors import MalformedResponse

MAX_RECORD = 262_144  # libpcap's largest snap length
MAX_BLOCK = 16 * 1024 * 1024  # a pcapng block (packet, name table, secrets) larger than this is not a capture we read
MAX_INTERFACES = 1024
MAX_OPTIONS = 256

PCAP_MAGIC = {  # magic bytes as stored: (byte order, timestamp resolution)
    b"\xd4\xc3\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",  # nanosecond timestamps
    b"\xa1\xb2\x3c\x4d": ">",
}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER = 0x1A2B3C4D
LT_FCS_LENGTH_PRESENT = 0x04000000
IF_FCSLEN = 13


@dataclass(frozen=True)
class Record:
    """One captured packet as the file holds it."""

    linktype: int
    data: bytes
    orig_len: int  # its length on the air: more than len(data) when the snap length cut it
    interface: int  # the interface it was captured on (pcapng; counted across sections), 0 for pcap
    fcs: int | None  # FCS bytes at the end of each frame as the file declares them; None when it does not say


class _Short(MalformedResponse):
    """The file ended inside a structure."""


def _take(stream: BinaryIO, n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise _Short(f"the file ends inside {what} ({len(data)} of {n} bytes)")
    return data


class CaptureFile:
    """A pcap or pcapng file: its format, its records, and where it ended early."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.truncated: str | None = None  # the file ended inside a record or block
        self.interfaces: list[int] = []  # link type of each interface seen (pcap: one)
        head = stream.read(4)
        if head in PCAP_MAGIC:
            self.format = "pcap"
            self._order = PCAP_MAGIC[head]
            rest = _take(stream, 20, "the pcap file header")
            major, minor, _zone, _sigfigs, _snaplen, word = struct.unpack(self._order + "HHiIII", rest)
            if major != 2:
                raise MalformedResponse(f"pcap file format version {major}.{minor} (2.x expected)")
            self._linktype = word & 0xFFFF
            self._fcs = 2 * ((word >> 28) & 0xF) if word & LT_FCS_LENGTH_PRESENT else None
            self.interfaces.append(self._linktype)
        elif len(head) == 4 and struct.unpack("<I", head)[0] == PCAPNG_SHB:
            self.format = "pcapng"
            self._order = "<"
        else:
            raise MalformedResponse("neither a pcap nor a pcapng file (unknown magic number)")

    def records(self) -> Iterator[Record]:
        """Every packet record, in file order."""
        try:
            if self.format == "pcap":
                yield from self._pcap()
            else:
                yield from self._pcapng()
        except _Short as exc:
            self.truncated = str(exc)

    def _pcap(self) -> Iterator[Record]:
        count = 0
        while True:
            head = self.stream.read(16)
            if not head:
                return
            if len(head) < 16:
                raise _Short(f"the file ends inside the header of record {count + 1}")
            _sec, _frac, incl, orig = struct.unpack(self._order + "IIII", head)
            count += 1
            if incl > MAX_RECORD:
                raise MalformedResponse(f"record {count} claims {incl} captured bytes (at most {MAX_RECORD})")
            data = _take(self.stream, incl, f"record {count}")
            yield Record(self._linktype, data, max(orig, incl), 0, self._fcs)

    def _pcapng(self) -> Iterator[Record]:
        first = True
        base = 0  # interface ids restart in each section; Record.interface counts them across the file
        fcs: list[int | None] = []
        snaplens: list[int] = []
        while True:
            if first:
                kind = PCAPNG_SHB  # its 4 bytes were read by __init__
            else:
                raw = self.stream.read(4)
                if not raw:
                    return
                if len(raw) < 4:
                    raise _Short("the file ends inside a block type")
                kind = struct.unpack(self._order + "I", raw)[0]
            first = False
            if kind == PCAPNG_SHB:
                length_raw = _take(self.stream, 4, "a section header")
                magic = _take(self.stream, 4, "a section header")
                if magic == struct.pack("<I", PCAPNG_BYTE_ORDER):
                    self._order = "<"
                elif magic == struct.pack(">I", PCAPNG_BYTE_ORDER):
                    self._order = ">"
                else:
                    raise MalformedResponse("pcapng section header without its byte-order magic")
                length = self._block_length(struct.unpack(self._order + "I", length_raw)[0], 28)
                body = _take(self.stream, length - 16, "a section header")
                self._trailer(length, "section header")
                major = struct.unpack_from(self._order + "H", body)[0]
                if major != 1:
                    raise MalformedResponse(f"pcapng major version {major} (1 expected)")
                base += len(fcs)
                fcs, snaplens = [], []
                continue
            length = self._block_length(struct.unpack(self._order + "I", _take(self.stream, 4, "a block"))[0], 12)
            body = _take(self.stream, length - 12, f"a block of type {kind:#x}")
            self._trailer(length, f"block of type {kind:#x}")
            if kind == 1:
                linktype, snaplen, fcs_len = self._interface(body)
                if len(self.interfaces) >= MAX_INTERFACES:
                    raise MalformedResponse(f"more than {MAX_INTERFACES} interfaces")
                self.interfaces.append(linktype)
                fcs.append(fcs_len)
                snaplens.append(snaplen)
            elif kind in (2, 3, 6):
                iface, data, orig = self._packet(kind, body, snaplens)
                yield Record(self.interfaces[base + iface], data, orig, base + iface, fcs[iface])
            # any other block (statistics, name resolution, secrets, custom) says nothing about frames

    def _block_length(self, length: int, least: int) -> int:
        if length < least or length % 4 or length > MAX_BLOCK:
            raise MalformedResponse(f"pcapng block length {length} (a multiple of 4, {least}..{MAX_BLOCK})")
        return length

    def _trailer(self, length: int, what: str) -> None:
        raw = _take(self.stream, 4, f"the trailing length of a {what}")
        if struct.unpack(self._order + "I", raw)[0] != length:
            raise MalformedResponse(f"pcapng {what}: its trailing length differs from its leading one")

    def _interface(self, body: bytes) -> tuple[int, int, int | None]:
        """Interface Description Block: link type, snap length, FCS bytes (if_fcslen)."""
        if len(body) < 8:
            raise MalformedResponse("pcapng interface description block shorter than its fixed fields")
        linktype, _reserved, snaplen = struct.unpack_from(self._order + "HHI", body)
        fcs: int | None = None
        pos = 8
        for _ in range(MAX_OPTIONS):
            if pos + 4 > len(body):
                break  # options are optional, and opt_endofopt may be left out at the end
            code, size = struct.unpack_from(self._order + "HH", body, pos)
            pos += 4
            if code == 0:
                break
            if pos + size > len(body):
                raise MalformedResponse(f"pcapng interface option {code} runs past its block")
            if code == IF_FCSLEN and size >= 1:
                # The draft says bits, some writers wrote bytes (pcapng issue 60): 32 and 4 both
                # mean 802.11's 4-byte FCS, 0 means none; anything else is left to the CRC check.
                fcs = {0: 0, 4: 4, 32: 4}.get(body[pos])
            pos += (size + 3) & ~3
        return linktype, snaplen, fcs

    def _packet(self, kind: int, body: bytes, snaplens: list[int]) -> tuple[int, bytes, int]:
        """(interface, captured bytes, original length) of an enhanced (6), simple (3) or obsolete (2) block."""
        if kind == 3:
            if len(body) < 4:
                raise MalformedResponse("pcapng simple packet block shorter than its fixed fields")
            (orig,) = struct.unpack_from(self._order + "I", body)
            iface, start = 0, 4
            # a simple packet block's captured length is implied: the original length cut by the snap length
            limit = snaplens[0] if snaplens and snaplens[0] else orig
            incl = min(orig, limit)
            if incl > len(body) - 4:
                raise MalformedResponse("pcapng simple packet block shorter than its packet")
        else:
            if len(body) < 20:
                raise MalformedResponse("pcapng packet block shorter than its fixed fields")
            if kind == 6:
                iface, _hi, _lo, incl, orig = struct.unpack_from(self._order + "IIIII", body)
            else:
                iface, _drops, _hi, _lo, incl, orig = struct.unpack_from(self._order + "HHIIII", body)
            start = 20
            if incl > len(body) - 20:
                raise MalformedResponse(f"pcapng packet block: {incl} captured bytes in a {len(body) + 12}-byte block")
        if iface >= len(snaplens):
            raise MalformedResponse(f"pcapng packet on interface {iface}, which no interface block described")
        return iface, body[start : start + incl], max(orig, incl)
