"""Banner grabbing on SSH, Telnet and FTP, with bounded reads.

SSH: the identification string (RFC 4253 4.2: up to a few pre-banner lines).
Telnet: IAC negotiation refused politely (WONT/DONT) while reading up to the
login prompt. FTP: the 220 greeting, multi-line aware. Nothing is ever sent
except Telnet option refusals; no credentials.
"""

from __future__ import annotations

import asyncio
import re

from probes.base import Probe, ProbeContext, ProbeTarget, register
from probes.observations import Banner, Observation
from probes.tcp import close_stream, open_stream, read_line
from profiles.errors import MalformedResponse, Timeout

MAX_BANNER = 4096
SSH_MAX_LINES = 10
PROMPT_RE = re.compile(rb"(login|username|user name|password|user)\s*[:>]\s*$", re.IGNORECASE)

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240


def strip_telnet(data: bytes) -> tuple[bytes, bytes]:
    """Split raw Telnet bytes into (text, replies refusing every option). Bounded, single pass."""
    text = bytearray()
    replies = bytearray()
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b != IAC:
            text.append(b)
            i += 1
            continue
        if i + 1 >= n:
            break
        cmd = data[i + 1]
        if cmd in (DO, DONT, WILL, WONT):
            if i + 2 >= n:
                break
            opt = data[i + 2]
            if cmd == DO:
                replies += bytes([IAC, WONT, opt])
            elif cmd == WILL:
                replies += bytes([IAC, DONT, opt])
            i += 3
        elif cmd == SB:
            end = data.find(bytes([IAC, SE]), i + 2)
            i = n if end < 0 else end + 2
        elif cmd == IAC:
            text.append(IAC)
            i += 2
        else:
            i += 2
    return bytes(text), bytes(replies)


def clean(text: bytes) -> str:
    """Printable text of a banner (control chars dropped, whitespace folded)."""
    decoded = text.decode("utf-8", errors="replace")
    decoded = "".join(c if c.isprintable() or c in "\n" else " " for c in decoded)
    return "\n".join(line.strip() for line in decoded.splitlines() if line.strip())[:MAX_BANNER]


@register
class BannerProbe(Probe):
    """Reads what SSH, Telnet and FTP servers say first."""

    name = "banner"
    services = frozenset({"ssh", "telnet", "ftp"})
    description = "Read SSH identification, Telnet login prompt, FTP greeting"

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Connect, read a bounded banner, close."""
        assert target.service is not None
        reader, writer = await open_stream(target, ctx)
        try:
            proto = target.service.name
            if proto == "ssh":
                text, prompt = await self._ssh(reader, ctx), False
            elif proto == "telnet":
                text, prompt = await self._telnet(reader, writer, ctx)
            else:
                text, prompt = await self._ftp(reader, ctx), False
        finally:
            await close_stream(writer)
        return [Banner(target.service, protocol=proto, text=text, login_prompt=prompt)]

    async def _readline(self, reader: asyncio.StreamReader, ctx: ProbeContext) -> bytes:
        try:
            line = await read_line(reader, ctx.budget(ctx.timeouts.read), "banner", MAX_BANNER)
        except Timeout as exc:
            raise Timeout("no banner before the read timeout") from exc
        if not line:
            raise MalformedResponse("connection closed before a banner")
        return line

    async def _ssh(self, reader: asyncio.StreamReader, ctx: ProbeContext) -> str:
        for _ in range(SSH_MAX_LINES):
            line = await self._readline(reader, ctx)
            if line.startswith(b"SSH-"):
                return clean(line)
        raise MalformedResponse("no SSH identification string in the first lines")

    async def _ftp(self, reader: asyncio.StreamReader, ctx: ProbeContext) -> str:
        lines: list[bytes] = []
        while len(lines) < 20:
            line = await self._readline(reader, ctx)
            lines.append(line)
            if not re.match(rb"^\d{3}-", line):
                break
        if not re.match(rb"^\d{3}", lines[0]):
            raise MalformedResponse("FTP greeting without a reply code")
        return clean(b"".join(lines))

    async def _telnet(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: ProbeContext
    ) -> tuple[str, bool]:
        text = await read_telnet(reader, writer, ctx, PROMPT_RE)
        if not text:
            raise Timeout("telnet service sent no text before the read timeout")
        return clean(text), bool(PROMPT_RE.search(text.rstrip()))


async def read_telnet(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ctx: ProbeContext,
    *until: re.Pattern[bytes],
    wait: float | None = None,
) -> bytes:
    """Telnet text (options refused as they come) until a pattern matches its end, or ``wait`` (the read timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.budget(ctx.timeouts.read if wait is None else wait)
    raw = b""
    text = b""
    while len(raw) < MAX_BANNER:
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            async with asyncio.timeout(left):
                chunk = await reader.read(1024)
        except TimeoutError:
            break
        if not chunk:
            break
        raw += chunk
        text, replies = strip_telnet(raw)
        if replies:
            writer.write(replies)
            raw = text  # negotiation answered; keep only the text
        if any(p.search(text.rstrip()) for p in until):
            break
    return text
