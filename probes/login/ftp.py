"""FTP logins: anonymous and default accounts (USER/PASS only; nothing is listed or fetched)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

from probes.base import Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, Timeouts, register
from probes.login import Candidate, run_series, series_deadline
from probes.observations import Observation, Risk
from probes.tcp import close_stream, open_stream, read_line
from profiles.errors import LockedOut, MalformedResponse, Timeout

if TYPE_CHECKING:
    from profiles import Profile

MAX_REPLY = 2048


async def _reply(reader: asyncio.StreamReader, ctx: ProbeContext, verdict: bool = False) -> tuple[int, str]:
    """One FTP reply (multi-line aware, bounded): (code, text). ``verdict``: PASS's, within the login timeout."""
    lines: list[str] = []
    wait, what = (ctx.timeouts.login, "login") if verdict else (ctx.timeouts.read, "read")
    while len(lines) < 20:
        try:
            line = (await read_line(reader, ctx.budget(wait), "ftp", MAX_REPLY)).decode("latin-1")
        except Timeout as exc:
            raise Timeout(f"ftp: no reply before the {what} timeout ({wait:g}s)") from exc
        if not line:
            raise MalformedResponse("ftp: connection closed mid-reply")
        lines.append(line.rstrip())
        if len(line) >= 4 and line[:3].isdigit() and line[3] != "-":
            break
    head = lines[0]
    if not head[:3].isdigit():
        raise MalformedResponse("ftp: reply without a code")
    return int(head[:3]), " ".join(lines)


@register
class FtpLogin(Probe):
    """USER/PASS with anonymous, profile defaults and the generic list."""

    name = "ftp-login"
    risk = Risk.CREDENTIAL
    phase = Phase.ASSESS
    services = frozenset({"ftp"})
    description = "Capped FTP logins, anonymous included"
    deadline_s: ClassVar[float | None] = 40.0

    def deadline(self, timeouts: Timeouts, config: ProbeConfig, profile: Profile | None) -> float:
        """Long enough for the whole series when every refusal comes at the login timeout."""
        return max(super().deadline(timeouts, config, profile), series_deadline("ftp", timeouts, config, profile))

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One connection per attempt: greeting, USER, PASS, QUIT."""

        async def attempt(cand: Candidate) -> bool:
            reader, writer = await open_stream(target, ctx)
            try:
                code, text = await _reply(reader, ctx)
                if code == 421:
                    raise LockedOut(f"ftp: {text[:120]}")
                writer.write(f"USER {cand.username}\r\n".encode())
                code, text = await _reply(reader, ctx)
                if code == 230:
                    return True
                verb = "USER"
                if code == 331:
                    verb = "PASS"
                    writer.write(f"PASS {cand.password}\r\n".encode())
                    code, text = await _reply(reader, ctx, verdict=True)  # vsftpd refuses after 2.6-3.1 s
                if code == 421:
                    raise LockedOut(f"ftp: {text[:120]}")
                writer.write(b"QUIT\r\n")
                if code in (230, 202):  # logged in (202: a password was superfluous)
                    return True
                if code == 530:  # RFC 959 "not logged in": the refusal
                    return False
                # vsftpd answers a right password "500 OOPS: cannot change directory" when the session
                # cannot start: that is no refusal, and reading it as one would pass a weak password.
                raise MalformedResponse(f"ftp: {verb} answered {text[:120]!r}: neither a login nor a refusal")
            finally:
                await close_stream(writer)

        return [await run_series("ftp", target, ctx, attempt)]
