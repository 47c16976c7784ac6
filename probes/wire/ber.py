"""A small, bounded BER codec for the SNMP messages edgeaudit hand-builds.

Reads go through probes.wire (bounds-checked, one MalformedResponse for all
malformed input). Trailing bytes are an error: a constructed value's contents
are exactly its TLVs and an SNMP datagram is exactly one message, so each
parser calls ``end()`` on every reader it has fully read. Only definite
lengths, at most 4 length octets.
"""

from __future__ import annotations

from probes import wire
from profiles.errors import MalformedResponse

INTEGER, OCTET_STRING, NULL, OID, SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
IPADDRESS, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB = 0x80, 0x81, 0x82
GET_REQUEST, GET_NEXT, RESPONSE, SET_REQUEST, REPORT = 0xA0, 0xA1, 0xA2, 0xA3, 0xA8
MAX_MESSAGE = 65_535


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    """Encode one tag-length-value."""
    return bytes([tag]) + _length(len(value)) + value


def enc_int(value: int, tag: int = INTEGER) -> bytes:
    """Encode a two's-complement INTEGER (or an application integer type by tag)."""
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def enc_str(value: bytes, tag: int = OCTET_STRING) -> bytes:
    """Encode an OCTET STRING."""
    return tlv(tag, value)


def enc_null(tag: int = NULL) -> bytes:
    """Encode NULL (or an empty exception value such as noSuchObject)."""
    return tlv(tag, b"")


def enc_oid(dotted: str) -> bytes:
    """Encode an OBJECT IDENTIFIER from dotted text."""
    parts = [int(p) for p in dotted.strip(".").split(".")]
    if len(parts) < 2:
        raise ValueError("OID needs at least two arcs")
    out = bytearray([parts[0] * 40 + parts[1]])
    for arc in parts[2:]:
        value = arc
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | (value & 0x7F))
            value >>= 7
        out += bytes(reversed(chunk))
    return tlv(OID, bytes(out))


def enc_seq(*items: bytes, tag: int = SEQUENCE) -> bytes:
    """Encode a SEQUENCE (or constructed context tag) of already-encoded items."""
    return tlv(tag, b"".join(items))


class Reader(wire.Reader):
    """Bounded TLV reads over one BER buffer (at most MAX_MESSAGE bytes)."""

    __slots__ = ()

    def __init__(self, data: bytes) -> None:
        super().__init__(data, "BER", max_size=MAX_MESSAGE)

    def done(self) -> bool:
        """True when every byte has been read."""
        return self.at_end

    def read(self) -> tuple[int, bytes]:
        """Read one TLV: (tag, value bytes)."""
        tag = self.u8("tag")
        if tag & 0x1F == 0x1F:
            raise MalformedResponse("multi-byte BER tags are not used by SNMP")
        first = self.u8("length")
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4:
                raise MalformedResponse("indefinite or oversized BER length")
            length = int.from_bytes(self.take(count, "long-form length"), "big")
        return tag, self.take(length, f"value of tag 0x{tag:02x}")

    def expect(self, tag: int) -> bytes:
        """Read one TLV and insist on its tag."""
        got, value = self.read()
        if got != tag:
            raise MalformedResponse(f"expected BER tag 0x{tag:02x}, got 0x{got:02x}")
        return value

    def sub(self, tag: int) -> Reader:
        """A reader over the contents of the next TLV, which must have ``tag``."""
        return Reader(self.expect(tag))

    def int(self) -> int:
        """Read an INTEGER."""
        value = self.expect(INTEGER)
        if not value or len(value) > 9:
            raise MalformedResponse("bad INTEGER length")
        return int.from_bytes(value, "big", signed=True)

    def end(self) -> None:
        """Reject trailing bytes (a BER value is exactly its TLVs)."""
        self.expect_end("BER value")


def dec_oid(value: bytes) -> str:
    """Decode OID contents to dotted text."""
    if not value or len(value) > 128:
        raise MalformedResponse("bad OID length")
    first = value[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    if len(value) > 1 and value[-1] & 0x80:  # the last subidentifier octet has its "more" bit set
        raise MalformedResponse("OID ends inside an arc")
    acc = 0
    for b in value[1:]:
        acc = (acc << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(acc)
            acc = 0
    return ".".join(str(a) for a in arcs)
