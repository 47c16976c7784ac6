"""Hostile NTP services: huge control answers, Kiss-o'-Death, bad versions, forged origins, garbage.

A fake server on loopback (port 0) with an overridable ``handle`` answers each request as a hostile
or broken device might. None of these may yield a pass (RFC 5905; CVE-2013-5211 for mode 7).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from probes.ntp import PACKET, to_ntp
from probes.observations import Mode
from scanner.findings import Severity, Status
from scanner.orchestrator import HostResult
from tests.conftest import by_id, fresh_address, scan_address

Handler = Callable[[bytes], list[bytes]]


class FakeNtp(asyncio.DatagramProtocol):
    """Answers each datagram with what ``handle`` returns (zero, one or many datagrams)."""

    def __init__(self, handle: Handler) -> None:
        self.handle = handle
        self.received: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)
        for reply in self.handle(data):
            self.transport.sendto(reply, addr)


def server_reply(
    request: bytes,
    stratum: int = 2,
    version: int = 4,
    refid: bytes = b"\x7f\0\0\1",
    origin: int | None = None,
    leap: int = 0,
) -> bytes:
    """A mode 4 answer to a mode 3 request, with a true clock unless told otherwise."""
    fields = PACKET.unpack_from(request)
    now = to_ntp(time.time())
    b0 = (leap << 6) | (version << 3) | 4
    return PACKET.pack(
        b0, stratum, 6, -20, b"\0" * 4, b"\0" * 4, refid, now, fields[10] if origin is None else origin, now, now
    )


def mode(data: bytes) -> int:
    return data[0] & 7


@pytest.fixture
async def ntp_host() -> AsyncIterator[Callable[[Handler], Any]]:
    transports: list[asyncio.DatagramTransport] = []

    async def start(handle: Handler) -> HostResult:
        address = fresh_address()
        proto = FakeNtp(handle)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: proto, local_addr=(address, 0))
        transports.append(transport)
        return await scan_address(address, ntp=transport.get_extra_info("sockname")[1], mode=Mode.SAFE)

    yield start
    for t in transports:
        t.close()


def statuses(result: HostResult, check_id: str) -> list[Status]:
    return [f.status for f in by_id(result, check_id)]


async def test_a_huge_mode7_answer_is_exposure_with_its_amplification(ntp_host: Callable[[Handler], Any]) -> None:
    """60,000 bytes to a 48-byte monlist, with a record count that does not add up: still an answer."""

    def handle(data: bytes) -> list[bytes]:
        if mode(data) == 3:
            return [server_reply(data)]
        if mode(data) == 7:
            return [bytes([0x80 | (2 << 3) | 7, 0, 3, 42, 0x00, 0x63, 0x00, 0x48]).ljust(60_000, b"\xff")]
        return []

    result = await ntp_host(handle)
    [finding] = by_id(result, "CIAJ-1.4-NTP-CONTROL-EXPOSED")
    assert (finding.status, finding.severity) == (Status.FAIL, Severity.HIGH)
    assert finding.evidence["mode7_bytes_answered"] == 60_000
    assert finding.evidence["mode7_amplification"] >= 1250 / 2  # one or two requests were sent


async def test_a_huge_mode6_answer_is_a_high_severity_reflector(ntp_host: Callable[[Handler], Any]) -> None:
    """A 12-byte READVAR answered with 30,004 bytes whose count field lies."""

    def handle(data: bytes) -> list[bytes]:
        if mode(data) == 3:
            return [server_reply(data)]
        if mode(data) == 6:
            header = struct.pack("!BBHHHHH", (2 << 3) | 6, 0x80 | 2, int.from_bytes(data[2:4], "big"), 0, 0, 0, 4)
            return [header + b"x" * (30_004 - len(header))]
        return []

    result = await ntp_host(handle)
    [finding] = by_id(result, "CIAJ-1.4-NTP-CONTROL-EXPOSED")
    assert (finding.status, finding.severity) == (Status.FAIL, Severity.HIGH)
    assert finding.evidence["mode6_readvar"] is True and finding.evidence["mode6_bytes_answered"] == 30_004


async def test_a_monlist_in_many_datagrams_is_counted_whole(ntp_host: Callable[[Handler], Any]) -> None:
    record = b"\0" * 72

    def handle(data: bytes) -> list[bytes]:
        if mode(data) == 3:
            return [server_reply(data)]
        if mode(data) == 7:
            head = bytes([0x80 | 0x40 | (2 << 3) | 7, 0, 3, 42, 0x00, 6, 0x00, 72])
            return [head + record * 6 for _ in range(10)]
        return []

    result = await ntp_host(handle)
    [finding] = by_id(result, "CIAJ-1.4-NTP-CONTROL-EXPOSED")
    assert finding.status == Status.FAIL and finding.evidence["monlist_records"] >= 60
    assert finding.evidence["mode7_bytes_answered"] >= 10 * (8 + 6 * 72)


async def test_garbage_to_the_control_requests_is_not_a_pass(ntp_host: Callable[[Handler], Any]) -> None:
    def handle(data: bytes) -> list[bytes]:
        return [server_reply(data)] if mode(data) == 3 else [b"\x00garbage" * 20]

    result = await ntp_host(handle)
    assert statuses(result, "CIAJ-1.4-NTP-CONTROL-EXPOSED") == [Status.INCONCLUSIVE]


async def test_a_silent_control_interface_passes(ntp_host: Callable[[Handler], Any]) -> None:
    """The hardened answer (ntpd with noquery, chrony): mode 3 only."""
    result = await ntp_host(lambda data: [server_reply(data)] if mode(data) == 3 else [])
    assert statuses(result, "CIAJ-1.4-NTP-CONTROL-EXPOSED") == [Status.PASS]
    assert statuses(result, "CIAJ-1.4-NTP-NOT-SYNCED") == [Status.PASS]
    assert statuses(result, "CIAJ-1.4-CLOCK-SKEW") == [Status.PASS]


async def test_a_kiss_of_death_is_no_clock_reading(ntp_host: Callable[[Handler], Any]) -> None:
    """Stratum 0 with RATE: its timestamps are the server's, but RFC 5905 says it is no time answer."""
    result = await ntp_host(lambda data: [server_reply(data, stratum=0, refid=b"RATE")] if mode(data) == 3 else [])
    [synced] = by_id(result, "CIAJ-1.4-NTP-NOT-SYNCED")
    assert synced.status == Status.INCONCLUSIVE and "RATE" in synced.evidence["reason"]
    assert statuses(result, "CIAJ-1.4-CLOCK-SKEW") == [Status.INCONCLUSIVE]  # no protocol showed the clock


async def test_stratum_0_with_no_kiss_code_is_an_unsynchronised_server(ntp_host: Callable[[Handler], Any]) -> None:
    """Real chrony with no time source answers stratum 0, leap 3 and a zero refid: unsynchronised, not a KoD."""
    reply = {"stratum": 0, "refid": b"\0\0\0\0", "leap": 3}
    result = await ntp_host(lambda data: [server_reply(data, **reply)] if mode(data) == 3 else [])  # type: ignore[arg-type]
    assert statuses(result, "CIAJ-1.4-NTP-NOT-SYNCED") == [Status.FAIL]


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param({"version": 0}, id="version-0"),
        pytest.param({"origin": 12345}, id="wrong-origin"),
    ],
)
async def test_replies_that_are_not_answers_to_us_never_pass(
    ntp_host: Callable[[Handler], Any], broken: dict[str, int]
) -> None:
    result = await ntp_host(lambda data: [server_reply(data, **broken)] if mode(data) == 3 else [])
    for check_id in ("CIAJ-1.4-NTP-NOT-SYNCED", "CIAJ-1.4-CLOCK-SKEW"):
        assert Status.PASS not in statuses(result, check_id), check_id
