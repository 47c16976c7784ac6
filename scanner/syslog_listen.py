"""--syslog-listen: a UDP and TCP syslog receiver that runs during the sweep.

It proves what a configuration only claims: that a device's log messages
reach a collector. The sweep's own login attempts are events a logging device
reports, so a device pointed at the scanner's address shows up here. Only the
sender's address, a message count and the first message (bounded) are kept;
memory is bounded by MAX_SOURCES.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress

from probes.observations import Observation, SyslogSeen
from profiles.errors import UsageError

MAX_MESSAGE = 2048  # RFC 5426 receivers must take 480 bytes and should take 2048
MAX_SAMPLE = 200
MAX_SOURCES = 65_536
GRACE_S = 0.5  # a device sends its log line just after the event: wait this long before judging a host


_PRI_MAX = 191  # facility 23 * 8 + severity 7 (RFC 5424 6.2.1, RFC 3164 4.1.1)
_MAX_OCTET_COUNT_DIGITS = 5  # MSG-LEN of RFC 6587 3.4.1, bounded by MAX_MESSAGE anyway


def is_syslog(message: bytes) -> bool:
    """Whether ``message`` is a syslog message (RFC 5424 or RFC 3164): ``<PRI>`` with PRI 0-191 first,
    then text. Random bytes, a binary blob or a line without its PRI credit nothing."""
    if len(message) < 4 or len(message) > MAX_MESSAGE or message[:1] != b"<":
        return False
    end = message.find(b">", 1, 5)
    digits = message[1:end] if end > 0 else b""
    if not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0") or int(digits) > _PRI_MAX:
        return False
    rest = message[end + 1 :].rstrip(b"\r\n\0")
    if not rest:
        return False
    try:
        text = rest.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if rest[:2] == b"1 ":  # RFC 5424: VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID ...
        return len(text.split(" ", 6)) >= 7
    # RFC 3164 puts no structure after PRI a receiver may insist on (4.3.3): text is what it asks for.
    return all(ch.isprintable() or ch == "\t" for ch in text.lstrip("\ufeff"))


def parse_listen(text: str) -> tuple[str, int]:
    """'[ADDR:]PORT' or '[V6ADDR]:PORT' -> (address, port); the address defaults to all IPv4 addresses."""
    host, port_text = "0.0.0.0", text
    if text.startswith("["):
        host, _, port_text = text[1:].partition("]:")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        port = int(port_text)
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise UsageError(f"--syslog-listen {text!r}: expected [ADDR:]PORT") from exc
    if not 0 < port < 65536:
        raise UsageError(f"--syslog-listen {text!r}: port out of range")
    return host, port


class SyslogListener:
    """Counts syslog messages per sender address."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.counts: dict[str, int] = {}
        self.unreadable: dict[str, int] = {}  # what arrived but was no syslog message: counted apart
        self.samples: dict[str, str] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    @property
    def label(self) -> str:
        """Where it listens, for evidence."""
        return f"udp+tcp {self.host}:{self.port}"

    def record(self, sender: str, data: bytes) -> None:
        """Count one message from a sender, or one unreadable datagram/frame (new senders beyond MAX_SOURCES
        are dropped)."""
        try:
            sender = str(ipaddress.ip_address(sender.split("%", 1)[0]))
        except ValueError:
            return
        if not is_syslog(data):
            if sender in self.unreadable or len(self.unreadable) < MAX_SOURCES:
                self.unreadable[sender] = self.unreadable.get(sender, 0) + 1
            return
        if sender not in self.counts and len(self.counts) >= MAX_SOURCES:
            return
        self.counts[sender] = self.counts.get(sender, 0) + 1
        if sender not in self.samples:
            text = data[:MAX_MESSAGE].decode("utf-8", errors="replace")
            self.samples[sender] = " ".join(text.split())[:MAX_SAMPLE]

    async def start(self) -> None:
        """Bind UDP and TCP; UsageError when the address or port cannot be bound."""
        loop = asyncio.get_running_loop()
        listener = self

        class _Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
                listener.record(str(addr[0]), data)

        try:
            self._udp, _ = await loop.create_datagram_endpoint(_Udp, local_addr=(self.host, self.port))
            self._tcp = await asyncio.start_server(self._stream, self.host, self.port)
        except OSError as exc:
            await self.stop()
            raise UsageError(f"--syslog-listen {self.host}:{self.port}: {exc.strerror or exc}") from exc

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """RFC 6587 framing either way: octet counting ("LEN SP MSG") or one record per LF; bounded reads.
        A frame that breaks either framing counts as unreadable and ends the connection."""
        peer = writer.get_extra_info("peername")
        sender = str(peer[0]) if peer else ""
        try:
            for _ in range(1000):
                async with asyncio.timeout(30):
                    frame = await _read_frame(reader)
                if frame is None:
                    break
                if frame.strip():
                    self.record(sender, frame)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except (asyncio.LimitOverrunError, ValueError):
            self.record(sender, b"")  # over-long or badly framed: one unreadable frame, then hang up
        finally:
            writer.close()

    async def stop(self) -> None:
        """Close both sockets."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._tcp.wait_closed()

    async def observations(self, address: str) -> list[Observation]:
        """What arrived from one device so far (after a short grace for its last events)."""
        await asyncio.sleep(GRACE_S)
        key = str(ipaddress.ip_address(address.split("%", 1)[0]))
        return [
            SyslogSeen(
                None,
                listener=self.label,
                messages=self.counts.get(key, 0),
                unreadable=self.unreadable.get(key, 0),
                sample=self.samples.get(key, ""),
            )
        ]


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """One syslog frame from a TCP stream (None at its end); ValueError when the framing is broken."""
    first = await reader.read(1)
    if not first:
        return None
    if first.isdigit() and first != b"0":  # octet counting: MSG-LEN = NONZERO-DIGIT *DIGIT, then SP
        digits = first
        while len(digits) <= _MAX_OCTET_COUNT_DIGITS:
            ch = await reader.readexactly(1)
            if ch == b" ":
                length = int(digits)
                if length > MAX_MESSAGE:
                    raise ValueError(f"octet-counted frame of {length} bytes")
                return await reader.readexactly(length)
            if not ch.isdigit():
                raise ValueError("octet count not followed by a space")
            digits += ch
        raise ValueError("octet count too long")
    if first == b"\n":
        return b""  # a blank line between records: nothing to count
    try:
        line = first + await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:  # the last record, closed without its LF
        line = first + exc.partial
    if len(line) > MAX_MESSAGE + 2:
        raise ValueError("line over the message limit")
    return line.rstrip(b"\r\n")
