"""A sweep stage that works ahead of the host tasks: a bounded window, a paced start, work handed on at once.

The sweep's UDP stage starts the one-datagram discovery probes (SIP OPTIONS, SNMP, NTP, DNS,
SSDP) for up to ``window`` addresses at once, at most ``rate`` a second, over the sweep's shared
UDP sockets, whether or not a host slot is free for the address yet (scanner.udp_stage: no task per
address). Each address is handed on as soon as its work has started, with the future of its
result: its host starts when a slot frees and takes the result in its discovery phase, beside
its own TCP connects. A silent UDP service then costs its read timeout once for all the addresses
in the window, not once per wave of ``--concurrency`` hosts, and never comes before the host's
other discovery.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Pace:
    """A token bucket: ``rate`` starts a second, of which ``burst`` may come at once."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a pace's rate must be positive and its burst at least 1")


def steady(rate: float) -> Pace:
    """``rate`` a second in bursts of a fiftieth of a second."""
    return Pace(rate, max(1.0, rate / 50))


class _End:
    pass


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def ahead(
    items: AsyncGenerator[T, None],
    work: Callable[[T], Awaitable[R]],
    wanted: Callable[[T], bool],
    *,
    window: int,
    paces: Sequence[Pace],
) -> AsyncGenerator[tuple[T, asyncio.Future[R] | None], None]:
    """Each item once, in the upstream's order, with the future of ``work(item)`` when it is wanted.

    At most ``window`` items are started and not yet both taken and finished (an item passed
    through without work counts until it is taken); work starts when every one of ``paces`` has a
    token (e.g. the user's request rate, and the kernel's neighbour table headroom). ``work`` may
    return a coroutine (run as a task) or a future of its own making. A future taken is the taker's
    to await; those of items never taken are cancelled when the stage is closed. An error of the
    upstream iterator is raised here."""
    if window < 1:
        raise ValueError("window must be at least 1")
    loop = asyncio.get_running_loop()
    out: asyncio.Queue[tuple[T, asyncio.Future[R] | None] | _End | _Failed] = asyncio.Queue()
    slots = asyncio.Semaphore(window)

    def release(_task: object = None) -> None:
        slots.release()

    async def feed() -> None:
        tokens, last = [p.burst for p in paces], loop.time()
        try:
            async with contextlib.aclosing(items):
                async for item in items:
                    await slots.acquire()
                    if not wanted(item):
                        out.put_nowait((item, None))
                        continue
                    while True:
                        now = loop.time()
                        tokens = [min(p.burst, t + (now - last) * p.rate) for p, t in zip(paces, tokens, strict=True)]
                        last = now
                        short = max(((1 - t) / p.rate for p, t in zip(paces, tokens, strict=True)), default=0.0)
                        if short <= 0:
                            break
                        await asyncio.sleep(short)
                    tokens = [t - 1 for t in tokens]
                    out.put_nowait((item, asyncio.ensure_future(work(item))))
        except Exception as exc:  # the stage's error reaches the consumer, not the void
            out.put_nowait(_Failed(exc))
            return
        out.put_nowait(_End())

    feeder = asyncio.create_task(feed(), name="sweep stage")
    handed: asyncio.Future[R] | None = None  # the work of the item just handed on, until the taker asks again
    try:
        while True:
            got = await out.get()
            if isinstance(got, _End):
                return
            if isinstance(got, _Failed):
                raise got.exc
            handed = got[1]
            yield got
            handed = None
            task = got[1]
            if task is None:
                release()
            else:
                task.add_done_callback(release)  # called at once when it is done already
    finally:
        if handed is not None:  # the taker stopped at this item: nothing will await its work
            handed.cancel()
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        while not out.empty():  # started, never taken: no host will await them
            left = out.get_nowait()
            if isinstance(left, tuple) and left[1] is not None:
                left[1].cancel()
