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

from scanner.errors import UsageError
from scanner.model import Observation, SyslogSeen

MAX_MESSAGE = 2048  # RFC 5426 receivers must take 480 bytes and should take 2048
MAX_SAMPLE = 200
MAX_SOURCES = 65_536
GRACE_S = 0.5  # a device sends its log line just after the event: wait this long before judging a host


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
        self.samples: dict[str, str] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    @property
    def label(self) -> str:
        """Where it listens, for evidence."""
        return f"udp+tcp {self.host}:{self.port}"

    def record(self, sender: str, data: bytes) -> None:
        """Count one message from a sender (new senders beyond MAX_SOURCES are dropped)."""
        try:
            sender = str(ipaddress.ip_address(sender.split("%", 1)[0]))
        except ValueError:
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
        """RFC 6587 framing either way: one record per line, or octet-counted; bounded reads."""
        peer = writer.get_extra_info("peername")
        sender = str(peer[0]) if peer else ""
        try:
            for _ in range(1000):
                async with asyncio.timeout(30):
                    line = await reader.readline()
                if not line:
                    break
                self.record(sender, line[:MAX_MESSAGE])
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
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
                sample=self.samples.get(key, ""),
            )
        ]
