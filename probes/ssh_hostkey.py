"""The SSH host key (asyncssh): key exchange only; outside safe mode, also the offered auth methods.

The methods are what the server lists after an auth request of method "none"
for a random user: no password, no real account (OpenSSH does not count
"none" toward MaxAuthTries). Safe mode sends no user name at all.

Two devices with the same host key share a private key (a cloned image or a
vendor default key): CIAJ-1.2-REUSED-CREDENTIAL compares them across a sweep.
"""

from __future__ import annotations

import asyncio
import secrets

from probes.base import Probe, ProbeContext, ProbeTarget, map_errors, register
from probes.observations import HostKey, Observation, Risk
from profiles.errors import MalformedResponse, ProbeError


@register
class SshHostKey(Probe):
    """Key exchange up to the server's host key, then disconnect."""

    name = "ssh-hostkey"
    imports = ("asyncssh",)
    services = frozenset({"ssh"})
    description = "SSH host key fingerprint (key exchange only)"

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One key exchange within the deadline."""
        import asyncssh  # local import: slow to load; only this module, probes.login.ssh and .cli_read need it

        assert target.service is not None
        what = f"ssh {target.address}:{target.service.port}"
        try:
            with map_errors(what):
                async with asyncio.timeout(ctx.budget(ctx.timeouts.connect + ctx.timeouts.read)):
                    key = await asyncssh.get_server_host_key(target.address, target.service.port)
        except asyncssh.Error as exc:
            raise MalformedResponse(f"{what}: {exc.reason}") from exc
        if key is None:
            raise MalformedResponse(f"{what}: no host key offered")
        methods: tuple[str, ...] = ()
        if ctx.mode.allows(Risk.CREDENTIAL):
            try:
                with map_errors(what):
                    async with asyncio.timeout(ctx.budget(ctx.timeouts.connect + ctx.timeouts.read)):
                        user = "ea-" + secrets.token_hex(4)
                        found = await asyncssh.get_server_auth_methods(target.address, target.service.port, user)
                        methods = tuple(sorted(found))
            except (asyncssh.Error, ProbeError):
                methods = ()  # the key stands on its own; methods are a bonus
        fingerprint = key.get_fingerprint("sha256")
        return [HostKey(target.service, algorithm=key.get_algorithm(), fingerprint=fingerprint, auth_methods=methods)]
