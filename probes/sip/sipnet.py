"""SIP transports: one channel type over UDP, TCP and TLS, and one client transaction on it.

A channel delivers every parseable SIP message the peer sends, in order, on a
bounded queue. Over UDP, datagrams from any other address are dropped and a
malformed datagram is skipped. Over TCP and TLS, messages are framed by
Content-Length (RFC 3261 18.3): the header block is bounded by
``sipmsg.MAX_MESSAGE``, a missing or oversized Content-Length ends the
connection, and keep-alive CRLFs (RFC 5626) are skipped.

``request`` runs one non-INVITE client transaction: over UDP it retransmits on
RFC 3261 timer E (T1, 2*T1, 4*T1 ... capped at T2); over a stream it sends once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Callable

from probes.base import HostSnapshot, ProbeContext, ProbeTarget, map_errors
from probes.observations import Service, SipInfo, SipRegisterTest
from probes.sip import sipmsg
from probes.tcp import close_stream, open_stream
from probes.wire import shared_udp
from probes.wire.udp import norm_address
from profiles import SIP_SERVER_CLASSES
from profiles.errors import MalformedResponse, Timeout, Unreachable

T1 = 0.5  # RFC 3261 timer T1 (seconds)
T2 = 4.0  # RFC 3261 timer T2: the cap of non-INVITE retransmit intervals
QUEUE = 64  # messages held before further ones are dropped
TLS_SERVICES = frozenset({"sips"})


def transport_of(service: Service) -> str:
    """The Via transport token for a service: UDP, TCP or TLS."""
    if service.transport == "udp":
        return "UDP"
    return "TLS" if service.name in TLS_SERVICES else "TCP"


def access_service(host: HostSnapshot) -> Service | None:
    """The one SIP service the INVITE/REGISTER tests use: the first that answered OPTIONS, UDP before TCP before TLS.

    One PBX behind several transports runs one dial plan; testing it once keeps
    the number of INVITEs and guesses the device sees to one series.
    """
    rank = {"UDP": 0, "TCP": 1, "TLS": 2}
    answered = {o.service for o in host.observations if isinstance(o, SipInfo) and o.service is not None}
    return min(answered, key=lambda s: (rank[transport_of(s)], s.port), default=None)


def is_sip_server(host: HostSnapshot) -> bool:
    """A PBX or gateway by its profile, or a host that answered REGISTER as a registrar does.

    A hardened Asterisk says only ``Server: PBX``, which no profile can name; it still
    challenges a REGISTER (or answers 200/403/404), while a phone answers 405 or 501.
    """
    if host.profile is not None and host.profile.device_class in SIP_SERVER_CLASSES:
        return True
    return any(isinstance(o, SipRegisterTest) and o.registrar for o in host.observations)


def access_targets(host: HostSnapshot, *, servers_only: bool) -> list[Service]:
    """``access_service`` as a probe's targets; ``servers_only``: only on a SIP server (an INVITE rings a phone)."""
    if servers_only and not is_sip_server(host):
        return []
    service = access_service(host)
    return [service] if service else []


def contact_uri(channel: SipChannel) -> str:
    """The scanner's Contact URI on a channel (with its transport, so the peer answers on the same one)."""
    host = sipmsg.host_port(*channel.local)
    if channel.transport == "UDP":
        return f"sip:edgeaudit@{host}"
    return f"sip:edgeaudit@{host};transport={channel.transport.lower()}"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """TLS for fingerprinting: any certificate is accepted (what it is gets recorded, not trusted).

    One per process: building one loads the CA store (about 40 ms of CPU on the event loop)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, channel: SipChannel, peer: tuple[str, int]) -> None:
        self.channel, self.peer = channel, peer

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if (norm_address(str(addr[0])), addr[1]) != self.peer:
            return
        with contextlib.suppress(MalformedResponse):
            self.channel.deliver(sipmsg.parse(data))

    def error_received(self, exc: Exception) -> None:
        self.channel.fail(exc)


class SipChannel:
    """One connection (or UDP socket) to one SIP service; made by ``open_channel``."""

    def __init__(self, transport: str, what: str) -> None:
        self.transport = transport  # "UDP" | "TCP" | "TLS"
        self.reliable = transport != "UDP"
        self.what = what
        self.local: tuple[str, int] = ("0.0.0.0", 0)
        self.queue: asyncio.Queue[sipmsg.SipMessage] = asyncio.Queue(maxsize=QUEUE)
        self.error: Exception | None = None
        self.closed = asyncio.Event()
        self._send: Callable[[bytes], None] = lambda data: None
        self._close: Callable[[], object] = lambda: None
        self._reader: asyncio.Task[None] | None = None

    def attach(self, send: Callable[[bytes], None], close: Callable[[], object], sockname: tuple[object, ...]) -> None:
        """Bind the channel to its socket or stream (``open_channel`` does this once)."""
        self._send, self._close = send, close
        self.local = (str(sockname[0]), int(str(sockname[1])))

    def deliver(self, msg: sipmsg.SipMessage) -> None:
        """Queue one message from the peer (dropped when the queue is full)."""
        if not self.queue.full():
            self.queue.put_nowait(msg)

    def fail(self, exc: Exception) -> None:
        """The transport broke (ICMP error, reset, framing): the next read raises.

        Kept without its traceback (the reader's frames hold this channel: a cycle per closed port)."""
        self.error = self.error or exc.with_traceback(None)
        self.closed.set()

    def send(self, data: bytes) -> None:
        """Send one message (best effort: a broken transport shows on the next read)."""
        if not self.closed.is_set():
            with map_errors(self.what):
                self._send(data)

    async def next(self, until: float) -> sipmsg.SipMessage:
        """The next message before loop time ``until``; TimeoutError when none came, a ProbeError when broken."""
        loop = asyncio.get_running_loop()
        if not self.queue.empty():
            return self.queue.get_nowait()
        if self.closed.is_set():
            self._raise()
        getter = asyncio.ensure_future(self.queue.get())
        broken = asyncio.ensure_future(self.closed.wait())
        try:
            done, _ = await asyncio.wait(
                {getter, broken}, timeout=max(0.0, until - loop.time()), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for fut in (getter, broken):
                fut.cancel()
        if getter in done and not getter.cancelled():
            return getter.result()
        if broken in done:
            self._raise()
        raise TimeoutError

    def _raise(self) -> None:
        with map_errors(self.what):
            if self.error is not None:
                raise self.error
        raise Unreachable(f"{self.what}: connection closed by the peer")

    async def aclose(self) -> None:
        """Close the socket or connection, and stop the stream reader."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        result = self._close()
        self.error = None  # raised by now, its traceback holds this channel's frames: no cycle outlives it
        if asyncio.iscoroutine(result):
            await result


async def open_channel(target: ProbeTarget, ctx: ProbeContext) -> SipChannel:
    """A channel to the target's SIP service (UDP, TCP, or TLS for ``sips``)."""
    assert target.service is not None
    service = target.service
    kind = transport_of(service)
    what = f"sip/{kind.lower()} {target.address}:{service.port}"
    channel = SipChannel(kind, what)
    if kind == "UDP":
        peer = (norm_address(target.address), service.port)
        with map_errors(what):
            dgram, _ = await shared_udp.open_datagram(lambda: _Datagrams(channel, peer), target.address, service.port)
        channel.attach(dgram.sendto, dgram.close, dgram.get_extra_info("sockname"))
        return channel
    reader, writer = await open_stream(target, ctx)
    if kind == "TLS":
        try:
            with map_errors(what):
                async with asyncio.timeout(ctx.budget(ctx.timeouts.connect + ctx.timeouts.read)):
                    await writer.start_tls(_tls_context())
        except BaseException:
            await close_stream(writer)
            raise
    channel.attach(writer.write, lambda: close_stream(writer), writer.get_extra_info("sockname"))
    channel._reader = asyncio.create_task(_read_stream(reader, channel), name=what)
    return channel


async def _read_stream(reader: asyncio.StreamReader, channel: SipChannel) -> None:
    """Frame messages off a stream until it closes or breaks (which ends the channel)."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError as exc:
                raise MalformedResponse(f"{channel.what}: SIP header block over {sipmsg.MAX_MESSAGE} bytes") from exc
            head = head.lstrip(b"\r\n")  # keep-alive pings, and the CRLF pong
            if not head:
                continue
            length = sipmsg.content_length(head)
            if length is None:
                raise MalformedResponse(f"{channel.what}: Content-Length missing on a stream transport")
            if len(head) + length > sipmsg.MAX_MESSAGE:
                raise MalformedResponse(f"{channel.what}: SIP message over {sipmsg.MAX_MESSAGE} bytes")
            body = await reader.readexactly(length)
            channel.deliver(sipmsg.parse(head + body, stream=True))
    except asyncio.IncompleteReadError:
        channel.fail(Unreachable(f"{channel.what}: connection closed by the peer"))
    except (MalformedResponse, OSError, ssl.SSLError) as exc:
        channel.fail(exc)


def span(ctx: ProbeContext) -> float:
    """How long a non-INVITE transaction over UDP waits: the read timeout and three T1 (timer E's resends)."""
    return ctx.timeouts.read + 3 * T1


def timer_e(until: float) -> tuple[float, ...]:
    """Timer E's sends before ``until`` (seconds after the first): T1, doubling, capped at T2 (RFC 3261 17.1.2.2)."""
    sends, at, interval = [0.0], T1, T1
    while at < until:
        sends.append(at)
        interval = min(2 * interval, T2)
        at += interval
    return tuple(sends)


async def request(
    channel: SipChannel,
    build: Callable[[sipmsg.Transaction], bytes],
    method: str,
    ctx: ProbeContext,
    tx: sipmsg.Transaction | None = None,
) -> sipmsg.SipMessage:
    """One non-INVITE transaction: the final response that matches it (branch, Call-ID, CSeq).

    ``tx``: the transaction's identifiers (an answer to a challenge continues its dialog); default fresh ones.
    """
    loop = asyncio.get_running_loop()
    tx = tx or sipmsg.Transaction.new(method, channel.local[0])
    data = build(tx)
    start = loop.time()
    deadline = min(ctx.deadline, start + (ctx.timeouts.read if channel.reliable else span(ctx)))
    interval, resend = T1, start + T1
    sends = 1
    channel.send(data)
    while True:
        wake = deadline if channel.reliable else min(deadline, resend)
        try:
            msg = await channel.next(wake)
        except TimeoutError:
            now = loop.time()
            if now >= deadline:
                raise Timeout(f"{channel.what}: no answer to {method} ({sends} sends)") from None
            if not channel.reliable and now >= resend:
                channel.send(data)  # timer E
                sends += 1
                interval = min(2 * interval, T2)
                resend = now + interval
            continue
        if tx.matches(msg) and (msg.status or 0) >= 200:
            return msg
