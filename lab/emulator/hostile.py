"""A hostile persona: every service of the device answers garbage, valid-then-garbage, valid-but-huge or a drip.

Selected per device (``hostile: MODE`` in its spec). What it sends is chosen so that no check can
honestly pass on it: a refusal, a challenge or a "no" is only ever sent inside a reply that is
malformed (``valid-then-garbage``) or never completes (``drip``), and the well-formed parts of a
``huge`` reply are the weak answer (a login form over plain HTTP, a login accepted, a clock a day off,
NTP control modes answering, a community answering, recursion available); a huge line is over every
reader's limit, so malformed to the scanner.
So a ``pass`` that a sweep gives a hostile host for a check its replies feed is a wrong pass.

Deterministic: each reply's random bytes come from ``random.Random`` seeded with the device's seed,
the service and the reply's number. Bounded: a garbage reply is at most 2 KiB, a huge line 160 KiB
built per reply, the 1 GiB gzip body is one shared ~1 MiB buffer, a drip at most ``DRIP_SECONDS``
long and at most ``MAX_UDP_DRIPS`` UDP drips run at once per device.
"""

from __future__ import annotations

import asyncio
import functools
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from probes.wire import ber
from profiles.errors import MalformedResponse

MODES = ("garbage", "valid-then-garbage", "huge", "drip")
PRODUCT = "HostileOS/1.0"  # a software name no profile knows: no firmware verdict from a banner
HUGE_LINE = 160 * 1024  # over every line reader's limit (the stream's 64 KiB, httpcore's 100 KiB head)
BOMB_INFLATED = 1 << 30  # the gzip body inflates to 1 GiB
DRIP_SECONDS = 25.0  # a drip ends (the connection closes) after this long, never having completed
MAX_UDP_DRIPS = 8
MAX_EXCHANGES = 50  # requests answered on one TCP connection
GREETING_FIRST = frozenset({"ftp", "ssh", "telnet"})
SendTo = Callable[[bytes], None]


# The start of the huge HTTP body: an admin page with a login form (which, read over HTTP, fails CLEARTEXT-ADMIN)
BOMB_PAGE = b"<html><head><title>Admin</title></head><body><form method=post><input type=password name=p>"


@functools.cache
def gzip_bomb() -> bytes:
    """A valid gzip member of 1 GiB (``BOMB_PAGE``, then zeros) in about 1 MiB, built in a fraction of a second.

    After a full flush the compressor's state is reset, so each further MiB of zeros compresses to the
    same bytes: the member is the first flushed block, that block repeated, an empty final block
    (RFC 1951 3.2.6: BFINAL, fixed Huffman, end of block) and the trailer (RFC 1952: CRC-32, ISIZE)."""
    size = 1 << 20
    first, chunk = BOMB_PAGE + bytes(size - len(BOMB_PAGE)), bytes(size)
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = z.compress(first) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(chunk) + z.flush(zlib.Z_FULL_FLUSH)
    count = BOMB_INFLATED // size
    crc = zlib.crc32(first)
    for _ in range(count - 1):
        crc = zlib.crc32(chunk, crc)
    return head + again * (count - 1) + b"\x03\x00" + struct.pack("<II", crc, BOMB_INFLATED & 0xFFFFFFFF)


@dataclass
class Hostile:
    """The hostile side of one emulated device: what it sends, and how much it sent."""

    mode: str
    seed: int = 0
    drip_ms: float = 200.0
    address: str = "127.0.0.1"
    http_port: int = 80  # where the SSDP answer's LOCATION points
    replies: int = 0  # hostile replies sent (a TCP answer, a UDP datagram)
    bytes_sent: int = 0
    _counter: int = 0
    _http_answers: int = 0
    _udp_drips: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"hostile mode {self.mode!r}: one of {', '.join(MODES)}")
        if self.mode == "huge":
            gzip_bomb()  # built once, before any sweep, not on a connection

    def _rng(self, service: str) -> random.Random:
        self._counter += 1
        return random.Random(f"{self.seed}:{service}:{self._counter}")

    def garbage(self, service: str, size: int = 0, *, no_blank_line: bool = False) -> bytes:
        """Seeded random bytes (``size``, or 16-2048); ``no_blank_line``: never a CRLF CRLF (stays one head)."""
        rng = self._rng(service)
        data = rng.randbytes(size or rng.randint(16, 2048))
        return data.replace(b"\n", b"\x85") if no_blank_line else data

    def _count(self, data: bytes) -> bytes:
        self.replies += 1
        self.bytes_sent += len(data)
        return data

    # TCP

    async def tcp(self, service: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection of ``service`` in this persona's mode."""
        if self.mode == "drip":
            await self._drip(service, reader, writer)
            return
        request = b""
        for exchange in range(MAX_EXCHANGES):
            if service not in GREETING_FIRST or exchange > 0:
                request = await reader.read(4096)
                if not request:
                    return
            answer = self._tcp_answer(service, exchange, request)
            if answer is None:
                continue
            writer.write(self._count(answer))
            await writer.drain()
            if service in ("http", "ipp", "sip_tcp") and self.mode != "garbage":
                return  # one answer, then close (HTTP: Connection: close)

    def _tcp_answer(self, service: str, exchange: int, request: bytes) -> bytes | None:
        if self.mode == "garbage":
            return self.garbage(service)
        if self.mode == "valid-then-garbage":
            return self._valid_then_garbage(service, exchange, request)
        return self._huge(service, exchange, request)

    def _valid_then_garbage(self, service: str, exchange: int, request: bytes) -> bytes | None:
        junk = self.garbage(service, no_blank_line=True)
        if service == "ftp":
            if exchange == 0:
                return f"220 {PRODUCT} FTP server ready\r\n".encode()
            if request[:4].upper() == b"USER":
                return b"331 Password required\r\n"
            return b"53" + junk  # the reply to PASS: a refusal's first digits, then garbage
        if service == "ssh":
            return f"SSH-2.0-{PRODUCT.replace('/', '_')}\r\n".encode() + junk if exchange == 0 else junk
        if service == "telnet":
            return bytes([255, 251, 1, 255, 251, 3]) + b"\r\nLogin: " if exchange == 0 else junk
        if service == "http":
            return b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="hostile"\r\n' + junk
        if service == "ipp":
            body = b"\x02\x00\x04\x02" + request_id(request) + b"\x01" + junk  # not-authenticated, then garbage
            return _http_head("200 OK", "application/ipp", len(body)) + body
        if service == "sip_tcp":
            return (
                sip_head(request, "401 Unauthorized", b'WWW-Authenticate: Digest realm="hostile", nonce="1"\r\n')[:-2]
                + junk
            )
        return junk

    def _huge(self, service: str, exchange: int, request: bytes) -> bytes | None:
        line = b"A" * HUGE_LINE
        if service == "ftp":
            return b"220 " + line + b"\r\n" if exchange == 0 else b"230 " + line + b"\r\n"
        if service == "ssh":
            return line + b"\r\n" + f"SSH-2.0-{PRODUCT.replace('/', '_')}\r\n".encode() if exchange == 0 else None
        if service == "telnet":
            return bytes([255, 251, 1]) + line + b"\r\n$ " if exchange == 0 else line + b"\r\n$ "
        if service in ("http", "ipp"):
            kind = "text/html" if service == "http" else "application/ipp"
            self._http_answers += 1
            if self._http_answers % 2 == 0:  # every other answer: a header line over every reader's limit
                return _http_head("200 OK", kind, 0, b"X-Pad: " + line + b"\r\n")
            bomb = gzip_bomb()
            return _http_head("200 OK", kind, len(bomb), b"Content-Encoding: gzip\r\n") + bomb
        if service == "sip_tcp":
            return sip_head(request, "200 OK", b"X-Pad: " + line + b"\r\n")
        return line + b"\r\n"

    async def _drip(self, service: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One byte every ``drip_ms``: a prefix that would pass, then padding; the answer never completes."""
        request = b"" if service in GREETING_FIRST else await reader.read(4096)
        if service not in GREETING_FIRST and not request:
            return
        prefix = {
            "ftp": b"220 ",
            "ssh": b"SSH-2.0-",
            "telnet": b"\r\nLogin",
            "http": b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="hostile"\r\nX-Drip: ',
            "ipp": b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="hostile"\r\nX-Drip: ',
            "sip_tcp": b"SIP/2.0 401 Unauthorized\r\nX-Drip: ",
        }.get(service, b"")
        self._count(b"")
        loop = asyncio.get_running_loop()
        end, i = loop.time() + DRIP_SECONDS, 0
        while loop.time() < end:
            writer.write(prefix[i : i + 1] or b".")
            self.bytes_sent += 1
            await writer.drain()
            i += 1
            await asyncio.sleep(self.drip_ms / 1000)

    # UDP

    def udp(self, service: str, data: bytes, send: SendTo) -> None:
        """Answer one datagram of ``service`` (snmp, ntp, sip, dns, ssdp) in this persona's mode."""
        if self.mode == "garbage":
            send(self._count(self.garbage(service)))
        elif self.mode == "valid-then-garbage":
            send(self._count(self._udp_valid_then_garbage(service, data)))
        elif self.mode == "huge":
            for datagram in self._udp_huge(service, data):
                send(self._count(datagram))
        elif len(self._udp_drips) < MAX_UDP_DRIPS:
            reply = self._udp_valid_then_garbage(service, data)
            task = asyncio.get_running_loop().create_task(self._udp_drip(reply, send))
            self._udp_drips.add(task)
            task.add_done_callback(self._udp_drips.discard)

    async def _udp_drip(self, reply: bytes, send: SendTo) -> None:
        """The reply's first 64 bytes, one datagram of one byte every ``drip_ms``."""
        for i in range(min(len(reply), 64)):
            send(self._count(reply[i : i + 1]))
            await asyncio.sleep(self.drip_ms / 1000)

    def _udp_valid_then_garbage(self, service: str, data: bytes) -> bytes:
        junk = self.garbage(service, 64)
        if service == "ntp":
            return bytes([0x24, 2, 6, 0xEC]) + junk[:44]  # a server's first word, then no reading
        if service == "sip":
            challenge = b'WWW-Authenticate: Digest realm="hostile", nonce="1"\r\n'
            return sip_head(data, "401 Unauthorized", challenge)[:-2] + self.garbage(service, no_blank_line=True)
        if service == "dns":  # REFUSED, claiming an answer it does not carry
            return data[:2] + b"\x81\x05\x00\x01\x00\x05\x00\x00\x00\x00" + data[12:] + junk
        if service == "ssdp":
            return b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nUSN: uuid:hostile::upnp:rootdevice\r\n" + junk
        if service == "snmp":
            return snmp_response(data, junk)
        return junk

    def _udp_huge(self, service: str, data: bytes) -> list[bytes]:
        pad = b"A" * 60_000
        if service == "ntp":
            mode = data[0] & 7 if data else 0
            if mode == 7:  # a monlist-sized answer: 100 datagrams of 6 records of 72 bytes (about 44 KB)
                head = bytes([0x80 | 0x40 | (2 << 3) | 7, 0, 3, 42]) + struct.pack("!HH", 6, 72)
                return [head + self.garbage(service, 432) for _ in range(100)]
            if mode == 6:  # READVAR answered in 64 fragments of 468 bytes (about 30 KB)
                frags = [
                    bytes([(2 << 3) | 6, 0xA2]) + data[2:4] + b"\0\0\0\0" + struct.pack("!HH", 468 * i, 468)
                    for i in range(64)
                ]
                return [f + b"x" * 468 for f in frags]
            return [ntp_reading(data, skew_s=86_400.0) + b"\x01\x04" + struct.pack("!H", 60_004) + pad]
        if service == "sip":
            return [sip_head(data, "200 OK", b"X-Pad: " + pad + b"\r\n")]
        if service == "dns":  # recursion available, 3,000 A records (about 48 KB)
            answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xc6\x33\x64\x07"
            return [data[:2] + b"\x81\x80\x00\x01" + struct.pack("!H", 3000) + b"\0\0\0\0" + data[12:] + answer * 3000]
        if service == "ssdp":
            location = f"LOCATION: http://{self.address}:{self.http_port}/rootDesc.xml\r\n".encode()
            return [b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n" + location + b"X-Pad: " + pad + b"\r\n\r\n"]
        if service == "snmp":
            return [snmp_response(data, ber.enc_str(pad))]
        return [pad]


def _http_head(status: str, kind: str, length: int, extra: bytes = b"") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nServer: {PRODUCT}\r\nContent-Type: {kind}\r\n".encode()
        + extra
        + f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode()
    )


def request_id(http_request: bytes) -> bytes:
    """The IPP request-id of an HTTP POST carrying an IPP request (4 zero bytes when there is none)."""
    _, _, body = http_request.partition(b"\r\n\r\n")
    return body[4:8].ljust(4, b"\0")


def sip_head(request: bytes, status: str, extra: bytes) -> bytes:
    """A SIP response head to ``request``: its Via, From, To, Call-ID and CSeq copied, then ``extra``."""
    keep = (b"via:", b"v:", b"from:", b"f:", b"to:", b"t:", b"call-id:", b"i:", b"cseq:")
    lines = [line for line in request.split(b"\r\n")[1:40] if line.lower().startswith(keep)]
    return b"SIP/2.0 " + status.encode() + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + extra + b"\r\n"


def snmp_response(request: bytes, value: bytes) -> bytes:
    """A Response to an SNMP v1/v2c request (its version, community, request-id) whose one varbind holds
    ``value`` as raw bytes: garbage for valid-then-garbage, a well-formed huge string for huge."""
    try:
        top = ber.Reader(request).sub(ber.SEQUENCE)
        version = top.int()
        community = top.expect(ber.OCTET_STRING)
        _tag, pdu = top.read()
        rid = ber.Reader(pdu).int()
    except (MalformedResponse, IndexError, ValueError):
        return value
    bind = ber.enc_seq(ber.enc_seq(ber.enc_oid("1.3.6.1.2.1.1.1.0") + value))
    pdu_out = ber.enc_seq(ber.enc_int(rid), ber.enc_int(0), ber.enc_int(0), bind, tag=ber.RESPONSE)
    return ber.enc_seq(ber.enc_int(version), ber.enc_str(community), pdu_out)


def ntp_reading(request: bytes, skew_s: float) -> bytes:
    """A well-formed mode 4 reply to a mode 3 request (its origin echoed), from a clock ``skew_s`` off."""
    import time

    now = int((time.time() + skew_s + 2_208_988_800) * 2**32) & 0xFFFFFFFFFFFFFFFF
    origin = request[40:48] if len(request) >= 48 else b"\0" * 8
    return (
        struct.pack("!BBbb", (4 << 3) | 4, 2, 6, -20)
        + b"\0" * 8
        + b"\x7f\x00\x00\x01"
        + struct.pack("!Q", now)
        + origin
        + struct.pack("!QQ", now, now)
    )
