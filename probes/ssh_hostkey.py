"""The SSH host key (asyncssh): key exchange only, no authentication attempted.

Two devices with the same host key share a private key (a cloned image or a
vendor default key): CIAJ-1.2-REUSED-CREDENTIAL compares them across a sweep.
"""

from __future__ import annotations

from probes.base import Probe, ProbeContext, ProbeTarget, map_errors, register
from scanner.errors import MalformedResponse
from scanner.model import HostKey, Observation


@register
class SshHostKey(Probe):
    """Key exchange up to the server's host key, then disconnect."""

    name = "ssh-hostkey"
    services = frozenset({"ssh"})
    description = "SSH host key fingerprint (key exchange only)"

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One key exchange within the deadline."""
        import asyncio

        import asyncssh

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
        return [HostKey(target.service, algorithm=key.get_algorithm(), fingerprint=key.get_fingerprint("sha256"))]
