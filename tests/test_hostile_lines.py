"""Line-based readers against over-long lines: MalformedResponse and an honest inconclusive, never a crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from probes.tcp import read_line
from profiles.errors import MalformedResponse, Timeout
from scanner.findings import Status
from scanner.orchestrator import HostResult
from tests.conftest import by_id, fresh_address, scan_address


@pytest.fixture
async def tcp_device() -> AsyncIterator[Callable[..., Any]]:
    servers: list[asyncio.Server] = []

    async def sweep(greeting: bytes, service: str) -> HostResult:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(greeting)
            await writer.drain()
            await asyncio.sleep(2)
            writer.close()

        address = fresh_address()
        server = await asyncio.start_server(handle, address, 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return await scan_address(address, [(port, service)], pace=0.0, login=1.0, probe=8.0, host=30.0)

    yield sweep
    for s in servers:
        s.close()


async def test_an_ftp_greeting_over_64_kib_is_malformed_not_a_crash(tcp_device: Callable[..., Any]) -> None:
    result = await tcp_device(b"220 " + b"A" * 70_000 + b"\r\n", "ftp")
    findings = by_id(result, "CIAJ-1.2-DEFAULT-CREDENTIAL")
    assert findings and all(f.status == Status.INCONCLUSIVE for f in findings)
    reasons = json.dumps([f.evidence.get("reason") for f in findings])
    assert "a line over" in reasons and "ValueError" not in reasons, reasons  # a malformed reply, not a crash


async def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=65_536)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_read_line_bounds() -> None:
    assert await read_line(await _reader(b"220 ok\r\nrest"), 1, "t", 100) == b"220 ok\r\n"
    assert await read_line(await _reader(b"no newline"), 1, "t", 100) == b"no newline"
    assert await read_line(await _reader(b""), 1, "t", 100) == b""
    with pytest.raises(MalformedResponse):
        await read_line(await _reader(b"x" * 200 + b"\n"), 1, "t", 100)
    with pytest.raises(MalformedResponse):
        await read_line(await _reader(b"x" * 70_000 + b"\n"), 1, "t", 100_000)  # past the stream's own limit
    silent = asyncio.StreamReader()
    with pytest.raises(Timeout):
        await read_line(silent, 0.05, "t", 100)
