"""Field safety: every login attempt the device may have counted is counted, before it is sent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from probes.base import ProbeConfig, ProbeContext, Timeouts
from probes.login import LoginOptions, NotChecked, capped_attempt
from probes.login.ledger import Ledger
from probes.observations import Mode
from profiles.errors import Timeout
from tests.conftest import fresh_address


def _ctx(seconds: float, ledger: Ledger) -> ProbeContext:
    deadline = asyncio.get_running_loop().time() + seconds
    config = ProbeConfig(sets=(LoginOptions(login_pace_s=0.0),))
    return ProbeContext(Timeouts(read=1.0), Mode.DEFAULT, config, deadline, ledger=ledger)


async def test_an_attempt_cut_off_by_the_deadline_stays_counted() -> None:
    """The password went out, then the probe's deadline came: the device may count it, so the ledger does."""
    address, book = fresh_address(), Ledger()
    sent = asyncio.Event()

    async def never_answers() -> bool:
        sent.set()
        await asyncio.sleep(60)
        return False

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):  # as the probe deadline or the host budget cancels it
            await capped_attempt(address, "admin", "admin", "tcp/23", 2, _ctx(10, book), never_answers)
    assert sent.is_set()
    assert await book.used((address, "admin"), 900) == 1


async def test_a_network_error_counts_and_a_refusal_counts_once() -> None:
    address, book = fresh_address(), Ledger()

    async def lost() -> bool:
        raise Timeout("no answer after the password")

    async def refused() -> bool:
        return False

    with pytest.raises(Timeout):
        await capped_attempt(address, "admin", "one", "tcp/21", 3, _ctx(10, book), lost)
    assert await capped_attempt(address, "admin", "two", "tcp/21", 3, _ctx(10, book), refused) is False
    assert await book.used((address, "admin"), 900) == 2
    assert await capped_attempt(address, "admin", "three", "tcp/21", 3, _ctx(10, book), refused) is False
    assert await capped_attempt(address, "admin", "four", "tcp/21", 3, _ctx(10, book), refused) is None  # at the cap


async def test_unchecked_is_taken_back_and_success_resets() -> None:
    address, book = fresh_address(), Ledger()

    async def unchecked() -> bool:
        raise NotChecked("a fresh challenge")

    async def refused() -> bool:
        return False

    async def accepted() -> bool:
        return True

    with pytest.raises(NotChecked):
        await capped_attempt(address, "100", "100", "udp/5060", 3, _ctx(10, book), unchecked)
    assert await book.used((address, "100"), 900) == 0
    await capped_attempt(address, "100", "x", "udp/5060", 3, _ctx(10, book), refused)
    assert await capped_attempt(address, "100", "100", "udp/5060", 3, _ctx(10, book), accepted) is True
    assert await book.used((address, "100"), 900) == 0


async def test_the_cap_is_checked_again_where_the_attempt_is_counted(tmp_path: Path) -> None:
    """Another sweep sharing the ledger file spent the cap while this one waited for its pace: nothing is sent."""
    address, path = fresh_address(), str(tmp_path / "login-attempts.sqlite3")
    here, other = Ledger(path), Ledger(path)
    sent: list[str] = []

    async def refused() -> bool:
        sent.append("attempt")
        return False

    config = ProbeConfig(attempt_ledger=path, sets=(LoginOptions(login_pace_s=0.3),))
    ctx = ProbeContext(Timeouts(read=1.0), Mode.DEFAULT, config, asyncio.get_running_loop().time() + 10, ledger=here)
    await here.pace(address, 0.3, ctx.budget)  # the host's next slot is 0.3 s away
    attempt = asyncio.create_task(capped_attempt(address, "admin", "x", "tcp/22", 2, ctx, refused))
    await asyncio.sleep(0.05)  # past the first cap check, waiting for its slot
    await other.failed((address, "admin"), "a", "tcp/23")
    await other.failed((address, "admin"), "b", "tcp/23")
    assert await attempt is None and sent == []
    assert await here.used((address, "admin"), 900) == 2
