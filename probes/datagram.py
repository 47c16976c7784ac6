"""Probes that are one UDP request per host, and then per-host work only when it was answered.

A ``DatagramProbe`` says what its first datagram is (``ask``: an ``Ask`` of probes.wire.udp),
what silence or refusal means (``unanswered``, no I/O) and what it does with an answer
(``answered``: parse, follow-ups). ``run`` awaits the three in turn for one host; the sweep's
UDP stage (scanner.udp_stage) runs the same ``Ask`` on callbacks and timers for every address
and starts ``answered`` only for the hosts that answered, so both forms reach the same
observations by the same code.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Generic, TypeVar

from probes.base import Probe, ProbeContext, ProbeTarget
from probes.observations import Observation, PortState
from probes.wire import udp
from profiles.errors import ProbeError, Refused, Timeout

T = TypeVar("T")


class DatagramProbe(Probe, Generic[T]):
    """A probe whose run starts with one UDP exchange (SIP OPTIONS, SNMP, NTP, DNS, SSDP)."""

    sweep_wide: ClassVar[bool] = True

    @abc.abstractmethod
    def ask(self, target: ProbeTarget, ctx: ProbeContext) -> udp.Ask[T]:
        """The first exchange with the target's UDP service (no I/O here)."""

    def unanswered(self, target: ProbeTarget, ctx: ProbeContext, error: ProbeError) -> list[Observation]:
        """What the first exchange's failure means (silence, refusal, garbage): by default the failure itself."""
        raise error

    @abc.abstractmethod
    async def answered(self, target: ProbeTarget, ctx: ProbeContext, answer: T) -> list[Observation]:
        """The observations of an answered first exchange (follow-up requests may be made here)."""

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """The first exchange, awaited; then ``unanswered`` or ``answered``."""
        assert target.service is not None
        spec = self.ask(target, ctx)
        try:
            answer = await udp.ask(target.address, target.service.port, spec, ctx.deadline)
        except ProbeError as exc:
            return self.unanswered(target, ctx, exc)
        return await self.answered(target, ctx, answer)


def port_state(target: ProbeTarget, error: ProbeError) -> list[Observation]:
    """An unanswered first request as a port state: refused (ICMP port unreachable) is closed, silence is
    filtered (nothing there, or dropped); garbage and other failures are raised, never a state."""
    assert target.service is not None
    if isinstance(error, Refused):
        return [PortState(target.service, state="closed")]
    if isinstance(error, Timeout):
        return [PortState(target.service, state="filtered")]
    raise error


def absent(error: ProbeError) -> list[Observation]:
    """An unanswered first request as nothing at all: silence or refusal means no such service (not a
    failure, not a device); garbage and other failures are raised."""
    if isinstance(error, (Refused, Timeout)):
        return []
    raise error
