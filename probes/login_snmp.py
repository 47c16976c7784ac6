"""SNMP v1/v2c community checks: a random community first, then the profile's and the well-known ones.

A community is a password without a user. Each candidate is one v2c GET of
sysDescr (v1 when the agent answered only v1 to `public`); an answer means it
was accepted, silence means it was not. A random community answered first
means the agent answers anything, and nothing else is trusted. Nothing is
written: whether an accepted community may write is not tested here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.login import Candidate, run_series
from probes.snmp import SYS_DESCR, snmp_get
from scanner.errors import Refused, Timeout
from scanner.model import Observation, Risk, Service, SnmpInfo


@register
class SnmpCommunities(Probe):
    """Community candidates on an SNMP agent, one GET each."""

    name = "snmp-login"
    risk = Risk.CREDENTIAL
    phase = Phase.ASSESS
    description = "SNMP v1/v2c community candidates (random first), one sysDescr GET each; nothing written"
    deadline_s: ClassVar[float | None] = 30.0

    def __init__(self) -> None:
        self._version = "v2c"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The SNMP service, when an agent showed itself (v3 discovery or a community answer)."""
        infos = [o for o in host.observations if isinstance(o, SnmpInfo) and o.service is not None]
        versions = {i.version for i in infos}
        self._version = "v1" if "v1" in versions and "v2c" not in versions else "v2c"
        return sorted({i.service for i in infos if i.service is not None})

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Run the series; a community is the candidate's password."""
        assert target.service is not None
        port = target.service.port

        async def attempt(cand: Candidate) -> bool:
            try:
                got = await snmp_get(
                    target.address, port, cand.password, self._version, (SYS_DESCR,), ctx.budget(ctx.timeouts.read)
                )
            except (Timeout, Refused):
                return False  # agents stay silent for a wrong community
            return bool(got)

        return [await run_series("snmp", target, ctx, attempt)]
