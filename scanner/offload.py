"""One worker thread for the engine's blocking work (SQLite: the history, the feed database), in batches.

Each host's judging and recording was a thread hop of its own: the worker woken, the GIL handed
over while the loop was busy, the loop woken back through its self-pipe. In a sweep bound by its
CPU that cost a tenth of `discover`'s CPU on the 254-device fleet (docs/performance.md). Here a
call waits LINGER_S for others, and those made while a batch runs go together as the next batch:
one hop each way per batch, the calls still made one by one, in order, each with its own result
or exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

R = TypeVar("R")

LINGER_S = 0.02  # a call waits this long for others to go with it
MAX_BATCH = 64  # calls handed over at once: a call waits behind at most one batch of this many

_Call = tuple[Callable[[], Any], "asyncio.Future[Any]"]


class Worker:
    """Calls on one thread of its own, in the order given, handed over in batches."""

    def __init__(self, name: str, linger: float = LINGER_S) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._queue: list[_Call] = []
        self._running = False
        self._linger = linger
        self._timer: asyncio.TimerHandle | None = None

    async def call(self, fn: Callable[[], R], within: float) -> R:
        """``fn()`` on the worker's thread; TimeoutError when it has not returned ``within`` seconds
        (its wait behind the batch in hand included). A call timed out or cancelled still runs."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((fn, future))
        if not self._running and self._timer is None:
            self._timer = loop.call_later(self._linger, self._hand_over, loop)
        async with asyncio.timeout(within):
            return await future

    def shutdown(self) -> None:
        """No more calls; the batch in hand finishes on its thread."""
        self._pool.shutdown(wait=False)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        try:
            job = loop.run_in_executor(self._pool, _run_all, [fn for fn, _ in batch])
        except RuntimeError as exc:  # shut down: these calls will not run
            for _fn, future in batch + self._queue:
                if not future.done():
                    future.set_exception(exc)
            self._queue = []
            return
        self._running = True
        job.add_done_callback(lambda done: self._deliver(loop, batch, done))

    def _deliver(self, loop: asyncio.AbstractEventLoop, batch: list[_Call], done: asyncio.Future[Any]) -> None:
        self._running = False
        failed = None if done.cancelled() else done.exception()
        results: list[tuple[bool, Any]] = [] if done.cancelled() or failed is not None else done.result()
        for n, (_fn, future) in enumerate(batch):
            if future.done():  # its caller stopped waiting
                continue
            if n >= len(results):
                future.set_exception(failed or RuntimeError("the worker's batch was cancelled"))
            elif results[n][0]:
                future.set_result(results[n][1])
            else:
                future.set_exception(results[n][1])
        if self._queue and self._timer is None:
            self._hand_over(loop)


def _run_all(calls: list[Callable[[], Any]]) -> list[tuple[bool, Any]]:
    """On the worker's thread: each call's (True, result) or (False, exception), in order."""
    out: list[tuple[bool, Any]] = []
    for fn in calls:
        try:
            out.append((True, fn()))
        except Exception as exc:  # the caller's to see, as it would from its own hop
            out.append((False, exc))
    return out
