"""One UDP request/response exchange with source and transaction matching.

Replies from another address/port, or that ``accept`` rejects (wrong
transaction id, Call-ID, origin timestamp...), are dropped, never returned.
Retransmits follow ``schedule`` (seconds after the first send) but never
stretch the caller's deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from probes.base import ProbeContext, map_errors
from scanner.errors import Timeout

MAX_DATAGRAM = 65_535


class _Exchange(asyncio.DatagramProtocol):
    def __init__(self, peer: tuple[str, int], accept: Callable[[bytes], bool]) -> None:
        self.peer = peer
        self.accept = accept
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if self.answer.done():
            return
        if (norm_address(str(addr[0])), addr[1]) != self.peer or len(data) > MAX_DATAGRAM:
            self.dropped += 1
            return
        if self.accept(data):
            self.answer.set_result(data)
        else:
            self.dropped += 1

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class _Collect(_Exchange):
    """Keeps every accepted datagram (a multi-datagram answer), counting bytes past a storage cap."""

    def __init__(self, peer: tuple[str, int], accept: Callable[[bytes], bool], keep_bytes: int) -> None:
        super().__init__(peer, accept)
        self.got = Collected()
        self.keep_bytes = keep_bytes
        self.more = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if (norm_address(str(addr[0])), addr[1]) != self.peer:
            self.dropped += 1
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
            self.answer.set_result(data)


@dataclass
class Collected:
    """What one ``exchange_all`` saw from its peer."""

    kept: list[bytes] = field(default_factory=list)  # accepted datagrams, up to the storage cap
    received_bytes: int = 0  # bytes of every accepted datagram
    rejected: int = 0  # datagrams from the peer that ``accept`` refused (garbage, another request's)
    rejected_bytes: int = 0
    sends: int = 0


def norm_address(address: str) -> str:
    """An IP address in canonical text form (zone id dropped), to compare reply senders."""
    return str(ipaddress.ip_address(address.split("%", 1)[0]))


async def exchange(
    address: str,
    port: int,
    build: Callable[[tuple[str, int]], bytes],
    accept: Callable[[bytes], bool],
    ctx: ProbeContext,
    schedule: Sequence[float] = (0.0, 1.0),
    what: str = "udp",
) -> bytes:
    """Send ``build(local_addr)`` to address:port, retransmitting per schedule; return the first accepted reply."""
    loop = asyncio.get_running_loop()
    peer = (norm_address(address), port)
    with map_errors(f"{what} {address}:{port}"):
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _Exchange(peer, accept), remote_addr=(address, port)
        )
    try:
        local = transport.get_extra_info("sockname")
        payload = build((str(local[0]), int(local[1])))
        start = loop.time()
        read_deadline = min(ctx.deadline, start + ctx.timeouts.read + (schedule[-1] if schedule else 0.0))
        with map_errors(f"{what} {address}:{port}"):
            for i, offset in enumerate(schedule):
                until_next = (start + schedule[i + 1]) if i + 1 < len(schedule) else read_deadline
                wait_at = start + offset
                if wait_at > loop.time():
                    await asyncio.sleep(wait_at - loop.time())
                if loop.time() >= read_deadline:
                    break
                transport.sendto(payload)
                try:
                    async with asyncio.timeout_at(min(until_next, read_deadline)):
                        return await asyncio.shield(proto.answer)
                except TimeoutError:
                    continue
        raise Timeout(f"{what} {address}:{port}: no matching answer ({len(schedule)} sends, {proto.dropped} dropped)")
    finally:
        transport.close()


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
    """Like ``exchange``, but an answer may span datagrams and silence is returned, not raised: after
    the first accepted datagram, more are taken until ``settle`` seconds pass without one (bounded by
    the read deadline). Network errors raise as in ``exchange``."""
    loop = asyncio.get_running_loop()
    peer = (norm_address(address), port)
    with map_errors(f"{what} {address}:{port}"):
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _Collect(peer, accept, keep_bytes), remote_addr=(address, port)
        )
    try:
        start = loop.time()
        read_deadline = min(ctx.deadline, start + ctx.timeouts.read + (schedule[-1] if schedule else 0.0))
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
                while (quiet := min(settle, read_deadline - loop.time())) > 0:
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
