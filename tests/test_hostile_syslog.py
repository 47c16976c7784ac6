"""The syslog listener against what a hostile or broken device sends: only real syslog messages count.

A device with logging off that sprays random bytes or badly framed lines at the listener must not pass
CIAJ-1.4-LOGGING-DISABLED or NO-REMOTE-LOG (RFC 5424, RFC 3164, RFC 6587 framing over TCP).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
from collections.abc import AsyncIterator

import pytest

from probes.observations import Mode, SyslogSeen
from scanner.checks import HostView
from scanner.checks.logs import logging_disabled, no_remote_log
from scanner.findings import Status
from scanner.syslog_listen import MAX_MESSAGE, SyslogListener, is_syslog
from tests.conftest import fresh_address

RFC5424 = b"<34>1 2026-12-01T22:14:15.003Z gw.example su - ID47 - 'su root' failed for lonvick on /dev/pts/8"
RFC3164 = b"<38>Dec  1 22:14:15 gw auth: login failure for admin from 198.18.1.254"
CISCO = b"<189>36: *Mar  1 00:33:03.123: %SYS-5-CONFIG_I: Configured from console by vty0"


@pytest.mark.parametrize("message", [RFC5424, RFC3164, CISCO, b"<0>kernel: panic", b"<191>x"])
def test_real_syslog_messages_count(message: bytes) -> None:
    assert is_syslog(message)


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"hello world",  # no PRI
        b"<192>too high",  # PRI over 191
        b"<034>leading zero",
        b"<3a>not digits",
        b"<1234>four digits",
        b"<13>",  # nothing after PRI
        b"<13>\xff\xfe binary \x00\x01",
        b"<13>text with \x07 bell",
        b"<13>1 too few fields",
        b"<13>" + b"x" * MAX_MESSAGE,  # over the message limit
        os.urandom(300).replace(b"<", b"."),
    ],
)
def test_garbage_is_not_a_syslog_message(message: bytes) -> None:
    assert not is_syslog(message)


@pytest.fixture
async def listener() -> AsyncIterator[SyslogListener]:
    lst = SyslogListener("127.0.0.1", 0)
    await lst.start()
    assert lst._udp is not None
    lst.port = lst._udp.get_extra_info("sockname")[1]
    try:
        yield lst
    finally:
        await lst.stop()


def _tcp_port(lst: SyslogListener) -> int:
    assert lst._tcp is not None
    return int(lst._tcp.sockets[0].getsockname()[1])


async def test_udp_garbage_is_counted_apart_and_credits_nothing(listener: SyslogListener) -> None:
    device = fresh_address()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((device, 0))
        for _ in range(50):
            sock.sendto(os.urandom(200), ("127.0.0.1", listener.port))
    seen = await _observe(listener, device)
    assert (seen.messages, seen.unreadable) == (0, 50)
    for judge in (logging_disabled, no_remote_log):
        [finding] = judge(_view(device, seen))
        assert finding.status == Status.INCONCLUSIVE and "50 datagram" in finding.evidence["reason"]


async def test_a_tcp_stream_of_random_bytes_is_not_1381_messages(listener: SyslogListener) -> None:
    device = fresh_address()
    _, writer = await asyncio.open_connection("127.0.0.1", _tcp_port(listener), local_addr=(device, 0))
    writer.write(os.urandom(64 * 1024).replace(b"<", b"."))
    await writer.drain()
    writer.close()
    seen = await _observe(listener, device)
    assert seen.messages == 0
    [finding] = no_remote_log(_view(device, seen))
    assert finding.status == Status.INCONCLUSIVE


async def test_tcp_framing_both_ways_counts_each_message_once(listener: SyslogListener) -> None:
    """RFC 6587: octet counting and LF-terminated records on one connection each."""
    device = fresh_address()
    _, counted = await asyncio.open_connection("127.0.0.1", _tcp_port(listener), local_addr=(device, 0))
    counted.write(b"".join(str(len(m)).encode() + b" " + m for m in (RFC5424, RFC3164, CISCO)))
    await counted.drain()
    counted.close()
    _, lines = await asyncio.open_connection("127.0.0.1", _tcp_port(listener), local_addr=(device, 0))
    lines.write(RFC3164 + b"\n\n" + CISCO + b"\r\n" + RFC5424)  # the last record closes without its LF
    await lines.drain()
    lines.close()
    seen = await _observe(listener, device)
    assert (seen.messages, seen.unreadable) == (6, 0)
    [finding] = no_remote_log(_view(device, seen))
    assert finding.status == Status.PASS


async def test_a_lying_octet_count_is_unreadable(listener: SyslogListener) -> None:
    device = fresh_address()
    _, writer = await asyncio.open_connection("127.0.0.1", _tcp_port(listener), local_addr=(device, 0))
    writer.write(b"999999 " + RFC3164)
    await writer.drain()
    writer.close()
    seen = await _observe(listener, device)
    assert (seen.messages, seen.unreadable) == (0, 1)


async def test_messages_from_another_address_are_not_the_devices(listener: SyslogListener) -> None:
    device, other = fresh_address(), fresh_address()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((other, 0))
        sock.sendto(RFC3164, ("127.0.0.1", listener.port))
    assert (await _observe(listener, device)).messages == 0
    assert (await _observe(listener, other)).messages == 1


async def _observe(listener: SyslogListener, address: str) -> SyslogSeen:
    for _ in range(20):  # the loop delivers the datagrams and streams first
        await asyncio.sleep(0.05)
    [seen] = await listener.observations(address)
    assert isinstance(seen, SyslogSeen)
    return seen


def _view(address: str, seen: SyslogSeen) -> HostView:
    return HostView(address, Mode.DEFAULT, (seen,), None, dt.date(2026, 12, 1))
