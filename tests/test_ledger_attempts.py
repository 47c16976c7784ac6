"""Field safety: every login attempt the device may have counted is counted, before it is sent."""

from __future__ import annotations

import asyncio

import pytest

from probes.base import ProbeConfig, ProbeContext, Timeouts
from probes.ledger import LEDGER
from probes.login import NotChecked, capped_attempt
from scanner.errors import Timeout
from scanner.model import Mode
from tests.conftest import fresh_address


def _ctx(seconds: float) -> ProbeContext:
    deadline = asyncio.get_running_loop().time() + seconds
    return ProbeContext(Timeouts(read=1.0), Mode.DEFAULT, ProbeConfig(login_pace_s=0.0), deadline)


async def test_an_attempt_cut_off_by_the_deadline_stays_counted() -> None:
    """The password went out, then the probe's deadline came: the device may count it, so the ledger does."""
    address = fresh_address()
    sent = asyncio.Event()

    async def never_answers() -> bool:
        sent.set()
        await asyncio.sleep(60)
        return False

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):  # as the probe deadline or the host budget cancels it
            await capped_attempt(address, "admin", "admin", "tcp/23", 2, _ctx(10), never_answers)
    assert sent.is_set()
    assert LEDGER.used((address, "admin"), 900) == 1


async def test_a_network_error_counts_and_a_refusal_counts_once() -> None:
    address = fresh_address()

    async def lost() -> bool:
        raise Timeout("no answer after the password")

    async def refused() -> bool:
        return False

    with pytest.raises(Timeout):
        await capped_attempt(address, "admin", "one", "tcp/21", 3, _ctx(10), lost)
    assert await capped_attempt(address, "admin", "two", "tcp/21", 3, _ctx(10), refused) is False
    assert LEDGER.used((address, "admin"), 900) == 2
    assert await capped_attempt(address, "admin", "three", "tcp/21", 3, _ctx(10), refused) is False
    assert await capped_attempt(address, "admin", "four", "tcp/21", 3, _ctx(10), refused) is None  # at the cap


async def test_unchecked_is_taken_back_and_success_resets() -> None:
    address = fresh_address()

    async def unchecked() -> bool:
        raise NotChecked("a fresh challenge")

    async def refused() -> bool:
        return False

    async def accepted() -> bool:
        return True

    with pytest.raises(NotChecked):
        await capped_attempt(address, "100", "100", "udp/5060", 3, _ctx(10), unchecked)
    assert LEDGER.used((address, "100"), 900) == 0
    await capped_attempt(address, "100", "x", "udp/5060", 3, _ctx(10), refused)
    assert await capped_attempt(address, "100", "100", "udp/5060", 3, _ctx(10), accepted) is True
    assert LEDGER.used((address, "100"), 900) == 0
