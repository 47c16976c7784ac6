"""One probe run's outcome, whatever happens: what it observed, or a ProbeFailure saying why not.

A probe honours its deadline; the backstop here cuts it half a second later if it does not.
Anything it raises becomes a ProbeFailure (inconclusive), never a pass, and never the sweep's end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from probes.base import Probe, ProbeTarget
from probes.observations import Observation, ProbeFailure
from profiles.errors import ProbeError

log = logging.getLogger("edgeaudit.engine")

BACKSTOP_S = 0.5  # past the probe's own deadline
Work = Coroutine[Any, Any, list[Observation]]


async def guarded(probe: Probe, target: ProbeTarget, work: Work, deadline: float, allowed: float) -> list[Observation]:
    """What ``work`` (the probe's run on the target) observed by ``deadline`` (loop time) and the backstop."""
    try:
        async with asyncio.timeout_at(deadline + BACKSTOP_S):
            return await work
    except Exception as exc:
        return failed(probe, target, exc, allowed)


def failed(probe: Probe, target: ProbeTarget, exc: Exception, allowed: float) -> list[Observation]:
    """The ProbeFailure of a run that raised ``exc`` (``allowed``: its deadline in seconds, for the reason)."""
    service = target.service
    try:
        if isinstance(exc, ProbeError):
            return [ProbeFailure(service, probe=probe.name, error=type(exc).__name__, reason=str(exc))]
        if isinstance(exc, TimeoutError):
            reason = f"probe exceeded its {allowed:g}s deadline"
            return [ProbeFailure(service, probe=probe.name, error="Timeout", reason=reason)]
        # a probe bug must not sink the sweep, nor read as a pass
        log.error("probe %s crashed on %s", probe.name, target.address, exc_info=exc)
        return [ProbeFailure(service, probe=probe.name, error="ProbeCrashed", reason=f"{type(exc).__name__}: {exc}")]
    finally:
        # Its traceback holds the frames it passed through, which may hold it: read, it is dropped, so that
        # what they held goes now, not at the cyclic collector's next pass.
        exc.__traceback__ = None


def task_name(probe: Probe, target: ProbeTarget) -> str:
    """A probe run's task name, e.g. ``snmp-login 192.0.2.7 udp/161``: what debug mode's slow-callback log names."""
    service = target.service
    return f"{probe.name} {target.address} {service.key}" if service else f"{probe.name} {target.address}"
