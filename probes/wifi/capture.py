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

from probes import wire
from profiles.errors import MalformedResponse

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
                major = wire.Reader(body, "pcapng section header").unpack(self._order + "H", "major version")[0]
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
        """Interface Description Block: link type, snap length, FCS bytes (if_fcslen).

        Options are optional, opt_endofopt may be left out at the end, and what follows it inside the
        block is ignored (as libpcap reads it); an option that runs past its block is malformed.
        """
        r = wire.Reader(body, "pcapng interface description block")
        short = "pcapng interface description block shorter than its fixed fields"
        linktype, _reserved, snaplen = r.unpack(self._order + "HHI", "fixed fields", short=short)
        fcs: int | None = None
        for _ in range(MAX_OPTIONS):
            if r.at_end:
                break
            code, size = r.unpack(self._order + "HH", "option header")
            if code == 0:
                break
            value = r.take(size, f"option {code}", short=f"pcapng interface option {code} runs past its block")
            if code == IF_FCSLEN and value:
                # The draft says bits, some writers wrote bytes (pcapng issue 60): 32 and 4 both
                # mean 802.11's 4-byte FCS, 0 means none; anything else is left to the CRC check.
                fcs = {0: 0, 4: 4, 32: 4}.get(value[0])
            r.align(4, f"the option after option {code}")  # options are padded to 32 bits
        return linktype, snaplen, fcs

    def _packet(self, kind: int, body: bytes, snaplens: list[int]) -> tuple[int, bytes, int]:
        """(interface, captured bytes, original length) of an enhanced (6), simple (3) or obsolete (2) block.

        The packet data is followed by its padding (and, but for a simple block, options): allowed.
        """
        if kind == 3:
            r = wire.Reader(body, "pcapng simple packet block")
            orig = r.unpack(self._order + "I", "original length", short=f"{r.what} shorter than its fixed fields")[0]
            iface = 0
            # a simple packet block's captured length is implied: the original length cut by the snap length
            limit = snaplens[0] if snaplens and snaplens[0] else orig
            data = r.take(min(orig, limit), "packet data", short=f"{r.what} shorter than its packet")
        else:
            r = wire.Reader(body, "pcapng packet block")
            short = "pcapng packet block shorter than its fixed fields"
            if kind == 6:
                iface, _hi, _lo, incl, orig = r.unpack(self._order + "IIIII", "fixed fields", short=short)
            else:
                iface, _drops, _hi, _lo, incl, orig = r.unpack(self._order + "HHIIII", "fixed fields", short=short)
            data = r.take(incl, "packet data", short=f"pcapng packet block: {incl} captured bytes in a "
                          f"{len(body) + 12}-byte block")  # fmt: skip
        if iface >= len(snaplens):
            raise MalformedResponse(f"pcapng packet on interface {iface}, which no interface block described")
        return iface, data, max(orig, len(data))
