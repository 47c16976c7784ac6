"""SNMP v1/v2c community checks: a random community first, then the profile's and the well-known ones.

A community is a password without a user. Each candidate is one v2c GET of
sysDescr (v1 when the agent answered only v1 to `public`); an answer means it
was accepted, silence means it was not. A random community answered first
means the agent answers anything, and nothing else is trusted. Silence is also
what a dead agent gives, so a series where nothing answered is only complete
when the agent still answers a v3 discovery afterwards; otherwise the series
is cut short (inconclusive), never a pass.

Nothing is written. Whether an accepted community may write is read from the
agent's own access tables (SNMP-VIEW-BASED-ACM-MIB, when the community may read
them): the groups of the v1/v2c security models and their write views. No
v1/v2c group with a write view: read-only. Exactly one v1/v2c group, with a
write view: the accepted community is in it, read-write. Several groups, one
with a write view: read-write possible. Tables not readable: unknown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.login import Candidate, run_series
from probes.observations import LoginResult, Observation, Risk, Service, SnmpInfo
from probes.snmp import SYS_DESCR, snmp_get, snmp_walk, v3_engine_id
from profiles.errors import ProbeError, Refused, Timeout

VACM_GROUP = "1.3.6.1.6.3.16.1.2.1.3"  # vacmGroupName, index securityModel.securityName
VACM_WRITE_VIEW = "1.3.6.1.6.3.16.1.4.1.6"  # vacmAccessWriteViewName, index groupName.context.model.level


def _decode_name(parts: list[int]) -> tuple[str, list[int]]:
    """A length-prefixed OCTET STRING from an OID index: (text, the rest)."""
    n = parts[0]
    return bytes(parts[1 : 1 + n]).decode("latin-1"), parts[1 + n :]


def judge_access(groups: dict[str, str], write_views: dict[str, str]) -> str:
    """Read-only / read-write / possible / unknown, from walked VACM columns."""
    v1v2: set[str] = set()
    for oid, group in groups.items():
        model = int(oid[len(VACM_GROUP) + 1 :].split(".")[0])
        if model in (1, 2):
            v1v2.add(group)
    if not v1v2:
        return "unknown: the agent's access tables are not readable with this community"
    writers = set()
    for oid, view in write_views.items():
        group, _rest = _decode_name([int(x) for x in oid[len(VACM_WRITE_VIEW) + 1 :].split(".")])
        if group in v1v2 and view not in ("", "none", '""'):
            writers.add(group)
    if not writers:
        return "read-only"
    if len(v1v2) == 1:
        return "read-write"
    return "read-write possible: another v1/v2c group of this agent can write"


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
        # A community the agent answered earlier in this sweep is a found credential even when the agent is
        # silent now (rate limited, a lost datagram): silence is no refusal of what already worked.
        answered = {
            o.community
            for o in (ctx.host.observations if ctx.host else ())
            if isinstance(o, SnmpInfo) and o.community and o.service == target.service
        }

        async def attempt(cand: Candidate) -> bool:
            if cand.password in answered:
                return True
            try:
                got = await snmp_get(
                    target.address, port, cand.password, self._version, (SYS_DESCR,), ctx.budget(ctx.timeouts.read)
                )
            except (Timeout, Refused):
                return False  # agents stay silent for a wrong community
            return bool(got)

        result = await run_series("snmp", target, ctx, attempt)
        if result.username is None:
            if result.complete and await v3_engine_id(target.address, port, ctx) is None:
                stopped = "the agent did not answer a v3 discovery after the series: silence proves nothing"
                result = dataclasses.replace(result, stopped=stopped, complete=False)
            return [result]
        if result.accepts_anything or result.password is None:
            return [result]
        return [await self._access(target, ctx, result)]

    async def _access(self, target: ProbeTarget, ctx: ProbeContext, result: LoginResult) -> LoginResult:
        assert target.service is not None and result.password is not None
        try:
            where = (target.address, target.service.port, result.password, self._version)
            groups = await snmp_walk(*where, VACM_GROUP, ctx.budget(ctx.timeouts.read))
            views = await snmp_walk(*where, VACM_WRITE_VIEW, ctx.budget(ctx.timeouts.read))
        except ProbeError as exc:
            return dataclasses.replace(result, access=f"unknown: {exc}")
        return dataclasses.replace(result, access=judge_access(groups, views))
