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
