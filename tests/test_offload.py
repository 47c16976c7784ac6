"""The engine's worker thread: calls in order, each its own result, handed over in batches, bounded waits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from scanner import offload


async def test_calls_run_in_order_on_one_thread_with_their_own_results() -> None:
    worker = offload.Worker("ea-test")
    seen: list[tuple[int, str]] = []

    def job(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        if n == 3:
            raise ValueError("three")
        return n * 10

    try:
        results = await asyncio.gather(*(worker.call(lambda n=n: job(n), 5) for n in range(6)), return_exceptions=True)
    finally:
        worker.shutdown()
    assert results[:3] == [0, 10, 20] and results[4:] == [40, 50]
    assert isinstance(results[3], ValueError)  # one call's error is its own
    assert [n for n, _ in seen] == list(range(6))
    assert len({name for _, name in seen}) == 1 and seen[0][1].startswith("ea-test")
    assert seen[0][1] != threading.main_thread().name


async def test_calls_made_together_are_one_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many calls in the same moment go to the thread as few batches (one per MAX_BATCH), not one each."""
    batches: list[int] = []
    real = offload._run_all

    def counted(calls: list[object]) -> list[tuple[bool, object]]:
        batches.append(len(calls))
        return real(calls)  # type: ignore[arg-type]

    monkeypatch.setattr(offload, "_run_all", counted)
    worker = offload.Worker("ea-test")
    try:
        got = await asyncio.gather(*(worker.call(lambda n=n: n, 5) for n in range(150)))
    finally:
        worker.shutdown()
    assert got == list(range(150))
    assert batches == [64, 64, 22]


async def test_a_slow_call_times_out_without_sinking_the_next() -> None:
    worker = offload.Worker("ea-test", linger=0)
    release = threading.Event()
    try:
        with pytest.raises(TimeoutError):
            await worker.call(lambda: release.wait(5), 0.2)
        release.set()  # the timed-out call still finishes on its thread, then the next one runs
        assert await worker.call(lambda: "next", 5) == "next"
    finally:
        worker.shutdown()


async def test_a_call_after_shutdown_fails_at_once() -> None:
    worker = offload.Worker("ea-test", linger=0)
    assert await worker.call(lambda: 1, 5) == 1
    worker.shutdown()
    started = time.monotonic()
    with pytest.raises(RuntimeError):
        await worker.call(lambda: 2, 5)
    assert time.monotonic() - started < 1  # refused, not left to its timeout
