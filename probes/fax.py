"""Fax safeguards (CIAJ 4.3/4.4) read from the MFP's own settings: one SNMP GET of the OIDs its profile declares.

Only for a matched profile that declares SNMP OIDs for its safeguards, and
only with a community already known: the operator's (``--auth-file`` entry with
``protocol = "snmp"``), else the one this sweep found answering (the SNMP
probes). No community is guessed here, nothing is written, no other OID is
asked, and nothing is sent under ``--safe`` (a community is a credential).
Safeguards a profile declares no OID for are not read: the checks turn them
into hand-off checklist items.
"""

from __future__ import annotations

from collections.abc import Sequence

from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.login import auth
from probes.login.auth import AuthOptions
from probes.observations import FaxSetting, LoginResult, Observation, Risk, Service, SnmpInfo
from probes.snmp import snmp_get
from profiles.errors import MalformedResponse, ProbeError


def known_community(host: HostSnapshot, config: ProbeConfig) -> tuple[str, str, str] | None:
    """(community, SNMP version, where it came from): the auth file's first, then one this sweep saw accepted."""
    auth_file = config.options(AuthOptions).auth_file
    if auth_file:
        profile_id = host.profile.id if host.profile else None
        entry = auth.lookup(auth.load(auth_file), host.address, profile_id, protocol="snmp")
        if entry is not None and entry.community:
            return entry.community, "v2c", "auth-file"
    for obs in host.observations:
        if isinstance(obs, SnmpInfo) and obs.version in ("v1", "v2c") and obs.community:
            return obs.community, obs.version, "found in this sweep"
    for obs in host.observations:
        if isinstance(obs, LoginResult) and obs.protocol == "snmp" and obs.password and not obs.accepts_anything:
            return obs.password, "v2c", "found in this sweep"
    return None


@register
class FaxSafeguards(Probe):
    """GET of the profile's fax-safeguard OIDs with a known community."""

    name = "fax-safeguards"
    risk = Risk.CREDENTIAL  # it sends a community: never under --safe, like the --auth-file SSH reads
    phase = Phase.ASSESS
    description = "Fax safeguards (CIAJ 4.3/4.4): one SNMP GET of the OIDs the profile declares, known community only"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The SNMP port of an MFP whose profile declares fax OIDs, when a community is known."""
        if host.profile is None or not any(f.oid for f in host.profile.fax_safeguards):
            return []
        if known_community(host, config) is None:
            return []
        return [Service(config.snmp_port, "udp", "snmp")]

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One GET; an object the agent does not have is recorded as such (the check cannot pass it)."""
        assert target.service is not None and ctx.profile is not None and ctx.host is not None
        known = known_community(ctx.host, ctx.config)
        if known is None:
            raise ProbeError("no SNMP community known for this host")
        community, version, origin = known
        wanted = [f for f in ctx.profile.fax_safeguards if f.oid]
        oids = [f.oid for f in wanted if f.oid]
        wait = ctx.budget(ctx.timeouts.read)
        if version == "v2c":  # v2c marks a missing object per varbind: one GET for all
            got = await snmp_get(target.address, target.service.port, community, version, oids, wait)
        else:  # v1 fails a whole GET on one missing object (noSuchName): one GET each
            got = {}
            for oid in oids:
                try:
                    got.update(await snmp_get(target.address, target.service.port, community, version, [oid], wait))
                except MalformedResponse:
                    continue
        out: list[Observation] = []
        for f in wanted:
            value = got.get(str(f.oid))
            out.append(
                FaxSetting(
                    target.service,
                    safeguard=f.name,
                    read_from=f"snmp {f.oid}",
                    value=value,
                    community_from=origin,
                )
            )
        return out
