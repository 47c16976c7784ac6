"""SSH password logins (asyncssh), under the login engine's caps; records the host key fingerprint.

Disconnects before authentication on two attempts in a row are read as a ban
(fail2ban-style or MaxStartups), and stop the series.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ClassVar

from probes.base import Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, Timeouts, map_errors, register
from probes.login import Candidate, run_series, series_deadline
from probes.observations import Observation, Risk
from profiles.errors import LockedOut, Unreachable

if TYPE_CHECKING:
    from profiles import Profile


async def ssh_login(
    address: str, port: int, ctx: ProbeContext, username: str, password: str | None, key_file: str | None = None
) -> Any:
    """An authenticated asyncssh connection (no agent, no known_hosts), bounded by the probe's deadline.

    asyncssh's PermissionDenied, DisconnectError and ConnectionLost pass through for the
    caller to read; socket errors become profiles.errors.
    """
    import asyncssh

    try:
        with map_errors(f"ssh {address}:{port}"):
            return await asyncssh.connect(
                address,
                port,
                client_factory=_client_type(),
                username=username,
                password=password,
                client_keys=[key_file] if key_file else None,
                known_hosts=None,
                agent_path=None,
                preferred_auth="publickey" if key_file else "password,keyboard-interactive",
                connect_timeout=ctx.budget(ctx.timeouts.connect + ctx.timeouts.read),
                login_timeout=ctx.budget(ctx.timeouts.read + ctx.timeouts.login),  # a PAM refusal takes 2-4 s
            )
    except asyncssh.Error as exc:
        # The traceback holds asyncssh's frames, which hold the connection, whose waiter holds this
        # error: without this, every refused login is a cycle only the cyclic collector frees.
        exc.__traceback__ = None
        raise


def _nothing_more() -> bool:
    """A closed connection's packet handler: no more input."""
    return False


@functools.cache
def _client_type() -> type[Any]:
    """asyncssh's client with one addition: a lost connection drops its reference to itself.

    asyncssh keeps its packet handler as a bound method of the connection (a cycle per
    connection, with the ciphers, keys and options hanging off it); after the connection is
    lost nothing reads it, so it is replaced by a function that holds nothing.
    """
    import asyncssh

    class _Client(asyncssh.SSHClient):
        _conn: Any = None

        def connection_made(self, conn: Any) -> None:
            self._conn = conn

        def connection_lost(self, exc: Exception | None) -> None:
            conn, self._conn = self._conn, None
            if conn is not None and hasattr(conn, "_recv_handler"):
                conn._recv_handler = _nothing_more

    return _Client


@register
class SshLogin(Probe):
    """Password (and keyboard-interactive) logins over SSH."""

    name = "ssh-login"
    imports = ("asyncssh",)
    risk = Risk.CREDENTIAL
    phase = Phase.ASSESS
    services = frozenset({"ssh"})
    description = "Capped SSH password logins: profile defaults, generic list, user list"
    deadline_s: ClassVar[float | None] = 60.0

    def deadline(self, timeouts: Timeouts, config: ProbeConfig, profile: Profile | None) -> float:
        """Long enough for the whole series when every refusal comes at the login timeout."""
        return max(super().deadline(timeouts, config, profile), series_deadline("ssh", timeouts, config, profile))

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Run the capped series; one connection per attempt."""
        import asyncssh

        assert target.service is not None
        port = target.service.port
        drops = 0

        async def attempt(cand: Candidate) -> bool:
            nonlocal drops
            try:
                conn = await ssh_login(target.address, port, ctx, cand.username, cand.password)
            except asyncssh.PermissionDenied:
                drops = 0
                return False
            except (asyncssh.DisconnectError, asyncssh.ConnectionLost, Unreachable) as exc:
                drops += 1
                if drops >= 2:
                    raise LockedOut(f"ssh: the server dropped {drops} connections in a row ({exc})") from exc
                return False
            drops = 0
            conn.close()
            return True

        return [await run_series("ssh", target, ctx, attempt)]
