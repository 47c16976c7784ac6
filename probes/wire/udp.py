"""UDP request/response exchanges with source and transaction matching, on one mechanism.

Replies from another address/port, or that ``accept`` rejects (wrong
transaction id, Call-ID, origin timestamp...), are dropped, never returned;
those from the peer are counted apart (``Collected.rejected``), so a caller can
tell garbage from silence. Retransmits follow ``schedule`` (seconds after the
first send) but never stretch the caller's deadline.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from probes.base import ProbeContext, map_errors
from probes.wire import shared_udp
from profiles.errors import MalformedResponse, Timeout

MAX_DATAGRAM = 65_535


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
    got = await collect(
        address, port, build, accept, read_s=ctx.timeouts.read, deadline=ctx.deadline, schedule=schedule, what=what
    )
    if got.kept:
        return got.kept[0]
    if got.rejected:
        raise MalformedResponse(
            f"{what} {address}:{port}: {got.rejected} reply(ies) ({got.rejected_bytes} bytes), none an answer to us"
        )
    dropped = got.dropped + got.rejected
    raise Timeout(f"{what} {address}:{port}: no matching answer ({len(schedule)} sends, {dropped} dropped)")


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
