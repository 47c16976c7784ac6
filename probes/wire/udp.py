"""UDP request/response exchanges with source and transaction matching.

Replies from another address/port, or that ``accept`` rejects (wrong
transaction id, Call-ID, origin timestamp...), are dropped, never returned;
those from the peer are counted apart (``Collected.rejected``), so a caller can
tell garbage from silence. Retransmits follow ``schedule`` (seconds after the
first send) but never stretch the caller's deadline.

A one-answer exchange is data (``Ask``: payload, parser, schedule) run by callbacks
and timers, no task of its own: ``start`` runs it for the sweep's UDP stage and hands
the outcome to a callback; ``ask`` awaits the same machinery (one device, follow-ups).
``collect`` is the coroutine form for answers that may span datagrams.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from probes.base import ProbeContext, map_errors, probe_error
from probes.wire import shared_udp
from profiles.errors import MalformedResponse, Timeout

MAX_DATAGRAM = 65_535
RESEND_ONCE = (0.0, 1.0)  # a first send, and one resend a second later
T = TypeVar("T")
log = logging.getLogger("edgeaudit.probes")


@dataclass
class Collected:
    """What one exchange saw from its peer."""

    kept: list[bytes] = field(default_factory=list)  # accepted datagrams, up to the storage cap
    received_bytes: int = 0  # bytes of every accepted datagram
    rejected: int = 0  # datagrams from the peer that ``accept`` refused (garbage, another request's)
    rejected_bytes: int = 0
    sends: int = 0
    dropped: int = 0  # datagrams from other senders


class _Collect(asyncio.DatagramProtocol):
    """Takes the peer's accepted datagrams (only the first when ``one``), counting bytes past a storage cap."""

    def __init__(self, peer: tuple[str, int], accept: Callable[[bytes], bool], keep_bytes: int, one: bool) -> None:
        self.peer, self.accept, self.keep_bytes, self.one = peer, accept, keep_bytes, one
        self.got = Collected()
        self.answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.more = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if self.one and self.answer.done():
            return
        if (norm_address(str(addr[0])), addr[1]) != self.peer:
            self.got.dropped += 1
            return
        if len(data) > MAX_DATAGRAM or not self.accept(data):
            self.got.rejected += 1  # from the peer, but not an answer to us: never read as silence
            self.got.rejected_bytes += len(data)
            return
        self.got.received_bytes += len(data)
        if sum(map(len, self.got.kept)) + len(data) <= self.keep_bytes:
            self.got.kept.append(data)
        self.more.set()
        if not self.answer.done():
            self.answer.set_result(None)

    def error_received(self, exc: Exception) -> None:
        # Without its traceback: that holds the transport's reader frame, which holds this protocol,
        # which holds the future, which holds the error. A cycle per closed port (ICMP port
        # unreachable) that only the cyclic collector frees, in pauses that grow with the sweep.
        if not self.answer.done():
            self.answer.set_exception(exc.with_traceback(None))

    def release(self) -> None:
        """Drop what the exchange's frames and its error could hold in a cycle (the exchange is over)."""
        if self.answer.done() and not self.answer.cancelled():
            self.answer.exception()  # retrieved: no "exception was never retrieved" at collection
        self.answer = asyncio.get_running_loop().create_future()
        self.accept = _nothing


def _nothing(_data: bytes) -> bool:
    return False


@functools.lru_cache(maxsize=8192)
def norm_address(address: str) -> str:
    """An IP address in canonical text form (zone id dropped), to compare reply senders (cached: each
    host's every exchange asks, and parsing costs more than the lookup)."""
    return str(ipaddress.ip_address(address.split("%", 1)[0]))


async def collect(
    address: str,
    port: int,
    build: Callable[[tuple[str, int]], bytes],
    accept: Callable[[bytes], bool],
    *,
    read_s: float,
    deadline: float = math.inf,
    schedule: Sequence[float] = (0.0, 1.0),
    settle: float | None = None,
    keep_bytes: int = MAX_DATAGRAM,
    what: str = "udp",
) -> Collected:
    """Send ``build(local_addr)`` to address:port, retransmitting per schedule, until an accepted reply or
    ``read_s`` after the last send (never past ``deadline``, event-loop time). ``settle``: the answer may
    span datagrams, more are taken until that long passes without one; None: the first alone. Silence is
    returned (nothing kept), not raised; network errors raise as ProbeErrors."""
    loop = asyncio.get_running_loop()
    peer = (norm_address(address), port)
    with map_errors(f"{what} {address}:{port}"):
        transport, proto = await shared_udp.open_datagram(
            lambda: _Collect(peer, accept, max(keep_bytes, MAX_DATAGRAM if settle is None else 0), settle is None),
            address,
            port,
        )
    try:
        local = transport.get_extra_info("sockname")
        payload = build((str(local[0]), int(local[1])))
        start = loop.time()
        read_deadline = min(deadline, start + read_s + (schedule[-1] if schedule else 0.0))
        with map_errors(f"{what} {address}:{port}"):
            for i, offset in enumerate(schedule):
                until_next = (start + schedule[i + 1]) if i + 1 < len(schedule) else read_deadline
                if start + offset > loop.time():
                    await asyncio.sleep(start + offset - loop.time())
                if loop.time() >= read_deadline:
                    break
                transport.sendto(payload)
                proto.got.sends += 1
                try:
                    async with asyncio.timeout_at(min(until_next, read_deadline)):
                        await asyncio.shield(proto.answer)
                except TimeoutError:
                    continue
                # The rest of a multi-datagram answer (an ntpd monlist sends up to 100 records in many).
                while settle is not None and (quiet := min(settle, read_deadline - loop.time())) > 0:
                    proto.more.clear()
                    try:
                        async with asyncio.timeout(quiet):
                            await proto.more.wait()
                    except TimeoutError:
                        break
                break
        return proto.got
    finally:
        transport.close()
        proto.release()


async def exchange(
    address: str,
    port: int,
    build: Callable[[tuple[str, int]], bytes],
    accept: Callable[[bytes], bool],
    ctx: ProbeContext,
    schedule: Sequence[float] = (0.0, 1.0),
    what: str = "udp",
) -> bytes:
    """The first accepted reply within the probe's read timeout and deadline; Timeout on silence, and
    MalformedResponse when the peer answered only with what ``accept`` refused (garbage is not silence)."""
    spec = Ask.resent(build, lambda data: data if accept(data) else None, ctx.timeouts.read, what, schedule)
    return await ask(address, port, spec, ctx.deadline)


@dataclass(frozen=True, slots=True)
class Ask(Generic[T]):
    """One request datagram and what answers it: a UDP exchange as data.

    ``build`` makes the payload for the local (address, port) it leaves from; ``parse`` reads a
    datagram from the peer as the answer, or returns None (not an answer to us: another
    transaction's, garbage); ``schedule`` gives the sends, in seconds after the first; the exchange
    lasts at most ``span`` seconds after the first send, and never past the caller's deadline.
    Unanswered, it is a Timeout, or a MalformedResponse when the peer sent only what ``parse``
    refused, unless ``garbage_is_silence`` (SIP ignores what does not match its transaction)."""

    build: Callable[[tuple[str, int]], bytes]
    parse: Callable[[bytes], T | None]
    schedule: tuple[float, ...]
    span: float
    what: str
    garbage_is_silence: bool = False

    @classmethod
    def resent(
        cls,
        build: Callable[[tuple[str, int]], bytes],
        parse: Callable[[bytes], T | None],
        read_s: float,
        what: str,
        schedule: Sequence[float] = RESEND_ONCE,
    ) -> Ask[T]:
        """An exchange sent on ``schedule`` that waits ``read_s`` after its last send."""
        return cls(build, parse, tuple(schedule), read_s + (schedule[-1] if schedule else 0.0), what)


Outcome = Any  # an Ask's answer (its T), or the Exception that ended it (a ProbeError, or a parser's bug)


class Asking(asyncio.DatagramProtocol):
    """One ``Ask`` in flight: sends on its timers, takes the first answer, hands on one outcome, closes."""

    __slots__ = (
        "done",
        "dropped",
        "end_by",
        "over",
        "payload",
        "peer",
        "rejected",
        "rejected_bytes",
        "sends",
        "spec",
        "start",
        "timer",
        "transport",
    )

    def __init__(self, peer: tuple[str, int], spec: Ask[Any], deadline: float, done: Callable[[Outcome], None]) -> None:
        self.peer, self.spec, self.end_by, self.done = peer, spec, deadline, done
        self.transport: asyncio.DatagramTransport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.payload, self.start = b"", 0.0
        self.sends = self.rejected = self.rejected_bytes = self.dropped = 0
        self.over = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)  # (asyncio's own is no subclass of it)

    def begin(self) -> None:
        """The first send, now (the caller opened the transport)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        local = self.transport.get_extra_info("sockname")
        try:
            self.payload = self.spec.build((str(local[0]), int(local[1])))
        except Exception as exc:  # a builder's bug ends the exchange, loudly, as a crash
            log.exception("%s: building the request failed", self._where())
            self.finish(exc.with_traceback(None))
            return
        self.start = loop.time()
        self.end_by = min(self.end_by, self.start + self.spec.span)
        first = self.spec.schedule[0] if self.spec.schedule else 0.0
        if first > 0:
            self.timer = loop.call_at(self.start + first, self._tick, 0)
        else:
            self._tick(0)  # (no sends at all: unanswered at once)

    def _send(self, i: int) -> None:
        loop = asyncio.get_running_loop()
        if self.over:
            return
        if loop.time() >= self.end_by:
            self._unanswered()
            return
        assert self.transport is not None
        self.sends += 1
        self.transport.sendto(self.payload)
        if self.over:  # the send failed at once (a queued ICMP error for this peer, no route)
            return
        schedule = self.spec.schedule
        wake = self.start + schedule[i + 1] if i + 1 < len(schedule) else self.end_by
        self.timer = loop.call_at(min(wake, self.end_by), self._tick, i + 1)

    def _tick(self, i: int) -> None:
        self.timer = None
        if i < len(self.spec.schedule):
            self._send(i)
        else:
            self._unanswered()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
        if self.over:
            return
        if (norm_address(str(addr[0])), addr[1]) != self.peer:
            self.dropped += 1
            return
        try:
            answer = self.spec.parse(data) if len(data) <= MAX_DATAGRAM else None
        except Exception as exc:  # a parser that raises instead of saying None: a bug, never silence
            log.exception("%s: reading a reply failed", self._where())
            self.finish(exc.with_traceback(None))
            return
        if answer is None:
            self.rejected += 1  # from the peer, but not an answer to us: never read as silence
            self.rejected_bytes += len(data)
            return
        self.finish(answer)

    def error_received(self, exc: Exception) -> None:
        if not self.over:
            self.finish(probe_error(exc, self._where()).with_traceback(None))

    def _where(self) -> str:
        return f"{self.spec.what} {self.peer[0]}:{self.peer[1]}"

    def _unanswered(self) -> None:
        if self.rejected and not self.spec.garbage_is_silence:
            self.finish(
                MalformedResponse(
                    f"{self._where()}: {self.rejected} reply(ies) ({self.rejected_bytes} bytes), none an answer to us"
                )
            )
            return
        dropped = self.dropped + self.rejected
        self.finish(Timeout(f"{self._where()}: no matching answer ({self.sends} sends, {dropped} dropped)"))

    def finish(self, outcome: Outcome) -> None:
        """End it with ``outcome`` (its answer, or the error that ended it), handed to its callback."""
        done = self.done
        self.cancel()
        # Handed on from the loop, not from here: an outcome can come while another exchange sends (its
        # ICMP error read then), and what the callback starts must not run inside that send.
        asyncio.get_running_loop().call_soon(done, outcome)

    def cancel(self) -> None:
        """End it with no outcome (the sweep stopped): its timer and its hold on the socket go."""
        if self.over:
            return
        self.over = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
        self.done = _ignore  # nothing this exchange held is held past its end (no cycle through a callback)


def _ignore(_outcome: Outcome) -> None:
    pass


def start(address: str, port: int, spec: Ask[Any], deadline: float, done: Callable[[Outcome], None]) -> Asking | None:
    """Run ``spec`` on the sweep's shared socket, with no task: ``done`` gets its one outcome (unless
    cancelled). None when there is no shared socket for this address (no sweep, a zoned IPv6 address):
    the caller awaits ``ask`` instead."""
    pool = shared_udp.active()
    if pool is None:
        return None
    peer = (norm_address(address), port)
    try:
        opened = pool.endpoint(lambda: Asking(peer, spec, deadline, done), address, port)
    except OSError as exc:  # no route to it (its source address unknown), no socket left: this exchange fails
        failed = Asking(peer, spec, deadline, done)
        failed.finish(probe_error(exc, f"{spec.what} {address}:{port}").with_traceback(None))
        return failed
    if opened is None:
        return None
    opened[1].begin()
    return opened[1]


async def ask(address: str, port: int, spec: Ask[T], deadline: float) -> T:
    """Run ``spec`` and await its answer (the sweep's shared socket, or a connected one of its own);
    raises its ProbeError (Timeout, Refused, MalformedResponse...)."""
    loop = asyncio.get_running_loop()
    heard = loop.create_future()
    box: list[Outcome] = []

    def done(outcome: Outcome) -> None:
        box.append(outcome)
        if not heard.done():
            heard.set_result(None)

    peer = (norm_address(address), port)
    with map_errors(f"{spec.what} {address}:{port}"):
        _transport, proto = await shared_udp.open_datagram(lambda: Asking(peer, spec, deadline, done), address, port)
    try:
        proto.begin()
        await heard
    finally:
        proto.cancel()
    outcome = box.pop()
    if isinstance(outcome, Exception):
        error, outcome = outcome, None
        try:
            raise error
        finally:
            del error  # the traceback holds this frame: the frame must not hold the error (no cycle)
    answer: T = outcome
    return answer


async def exchange_all(
    address: str,
    port: int,
    payload: bytes,
    accept: Callable[[bytes], bool],
    ctx: ProbeContext,
    schedule: Sequence[float] = (0.0, 1.0),
    settle: float = 0.3,
    keep_bytes: int = 256 * 1024,
    what: str = "udp",
) -> Collected:
    """Like ``exchange``, but an answer may span datagrams (taken until ``settle`` s pass without one) and
    silence is returned, not raised."""
    return await collect(
        address,
        port,
        lambda _: payload,
        accept,
        read_s=ctx.timeouts.read,
        deadline=ctx.deadline,
        schedule=schedule,
        settle=settle,
        keep_bytes=keep_bytes,
        what=what,
    )
