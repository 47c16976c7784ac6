"""SIP over streams: Content-Length framing, keep-alives, limits, and a peer that breaks the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from probes.base import ProbeConfig, ProbeContext, ProbeTarget, Timeouts
from probes.observations import Mode, Service
from probes.sip import sipmsg, sipnet
from profiles.errors import MalformedResponse, ProbeError, Unreachable
from tests.conftest import fresh_address

Script = Callable[[sipmsg.SipMessage, asyncio.StreamWriter], bytes]


def _reply(msg: sipmsg.SipMessage, extra: str = "", body: bytes = b"", length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    head = (
        f"SIP/2.0 200 OK\r\nVia: {msg.get('via')}\r\nFrom: {msg.get('from')}\r\nTo: {msg.get('to')}\r\n"
        f"Call-ID: {msg.get('call-id')}\r\nCSeq: {msg.get('cseq')}\r\nServer: Test/1\r\n{extra}"
    )
    return (head + (f"Content-Length: {n}\r\n" if n >= 0 else "") + "\r\n").encode() + body


@pytest.fixture
async def sip_server() -> AsyncIterator[Callable[[Script], asyncio.Future[ProbeTarget]]]:
    servers: list[asyncio.base_events.Server] = []

    async def start(script: Script) -> ProbeTarget:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            msg = sipmsg.parse(head, stream=True)
            writer.write(script(msg, writer))
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.close()

        address = fresh_address()
        server = await asyncio.start_server(handle, address, 0)
        servers.append(server)
        return ProbeTarget(address, Service(server.sockets[0].getsockname()[1], "tcp", "sip"))

    yield start
    for s in servers:
        s.close()


def _ctx() -> ProbeContext:
    t = Timeouts(connect=1.0, read=1.0, probe=5.0, host=10.0)
    deadline = asyncio.get_running_loop().time() + 5
    return ProbeContext(timeouts=t, mode=Mode.SAFE, config=ProbeConfig(), deadline=deadline)


async def _options(target: ProbeTarget) -> sipmsg.SipMessage:
    channel = await sipnet.open_channel(target, _ctx())
    try:
        return await sipnet.request(
            channel,
            lambda tx: sipmsg.build_options(tx, target.address, target.service.port, channel.local, "TCP"),
            "OPTIONS",
            _ctx(),
        )
    finally:
        await channel.aclose()


async def test_stream_framing_keeps_bodies_skips_keepalives_and_provisionals(sip_server) -> None:
    def script(msg: sipmsg.SipMessage, _w: asyncio.StreamWriter) -> bytes:
        trying = _reply(msg).replace(b"200 OK", b"100 Trying")
        return b"\r\n\r\n" + trying + _reply(msg, "Allow: OPTIONS\r\n", b"v=0\r\n")

    reply = await _options(await sip_server(script))
    assert (reply.status, reply.body, reply.get("allow")) == (200, b"v=0\r\n", "OPTIONS")


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda m: _reply(m, length=-1), MalformedResponse),  # no Content-Length on a stream
        (lambda m: _reply(m, length=10) + b"short", Unreachable),  # the peer closes mid-body
        (lambda m: _reply(m, "X: " + "a" * 70_000 + "\r\n"), MalformedResponse),  # header block over the limit
        (lambda m: _reply(m, length=1_000_000), MalformedResponse),  # Content-Length over 6 digits
        (lambda m: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", MalformedResponse),  # not SIP
        (lambda m: b"", Unreachable),  # accepts, says nothing, closes
    ],
)
async def test_broken_streams_are_errors_never_answers(sip_server, make, error) -> None:
    target = await sip_server(lambda m, _w: make(m))
    with pytest.raises(ProbeError) as info:
        await _options(target)
    assert isinstance(info.value, error), info.value


def test_content_length_reads_the_compact_form_and_rejects_junk() -> None:
    assert sipmsg.content_length(b"SIP/2.0 200 OK\r\nl: 12\r\n\r\n") == 12
    assert sipmsg.content_length(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n") is None
    with pytest.raises(MalformedResponse):
        sipmsg.content_length(b"SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n")
