"""A sweep stage that works ahead of the host tasks: a bounded window, a paced start, results as they finish.

The sweep's UDP stage runs the one-datagram discovery probes (SIP OPTIONS, SNMP, NTP, DNS,
SSDP) for up to ``window`` addresses at once, started at most ``rate`` a second, over the
sweep's shared UDP sockets; hosts then start with what those found. A silent UDP service
costs its read timeout once for all the addresses in the window, not once per wave of
``--concurrency`` hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _End:
    pass


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Done(Generic[T]):
    """A finished item on the output queue; holds one window slot until the consumer takes it."""

    def __init__(self, item: T) -> None:
        self.item = item


async def ahead(
    items: AsyncGenerator[T, None],
    work: Callable[[T], Awaitable[T]],
    wanted: Callable[[T], bool],
    *,
    window: int,
    rate: float,
) -> AsyncGenerator[T, None]:
    """Each item once: ``work(item)``'s result for a wanted item, the item itself otherwise (at once).

    At most ``window`` wanted items are in work or waiting to be taken; they start at most ``rate``
    a second (bursts of a fiftieth of a second). Results come out in the order they finish. An
    error of the upstream iterator or of ``work`` ends the stage and is raised here."""
    if window < 1 or rate <= 0:
        raise ValueError("window must be at least 1 and rate positive")
    loop = asyncio.get_running_loop()
    out: asyncio.Queue[_Done[T] | _End | _Failed] = asyncio.Queue()
    slots = asyncio.Semaphore(window)
    burst = max(1.0, rate / 50)

    async def run(item: T) -> None:
        try:
            result = await work(item)
        except BaseException:
            slots.release()
            raise
        out.put_nowait(_Done(result))

    async def feed() -> None:
        tokens, last = burst, loop.time()
        try:
            async with contextlib.aclosing(items), asyncio.TaskGroup() as tg:
                async for item in items:
                    if not wanted(item):
                        await slots.acquire()  # passed through, but counted in the window while it waits
                        out.put_nowait(_Done(item))
                        continue
                    await slots.acquire()
                    now = loop.time()
                    tokens = min(burst, tokens + (now - last) * rate)
                    last = now
                    if tokens < 1:
                        await asyncio.sleep((1 - tokens) / rate)
                        tokens, last = 1.0, loop.time()
                    tokens -= 1
                    tg.create_task(run(item))
        except Exception as exc:  # the stage's error reaches the consumer, not the void
            out.put_nowait(_Failed(exc))
            return
        out.put_nowait(_End())

    feeder = asyncio.create_task(feed(), name="sweep stage")
    try:
        while True:
            got = await out.get()
            if isinstance(got, _End):
                return
            if isinstance(got, _Failed):
                raise got.exc
            slots.release()
            yield got.item
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
