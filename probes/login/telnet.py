"""Telnet logins: a login-prompt state machine with bounded reads and IAC refusals.

After the password, the reply decides: a shell prompt (``>``, ``#``, ``$``,
``%``) without a failure text is a success; a new login prompt or a failure
text is a rejection; a profile's lockout text stops the series.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

from probes.banner import PROMPT_RE, clean, read_telnet
from probes.base import Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, Timeouts, register
from probes.login import Candidate, run_series, series_deadline
from probes.observations import Observation, Risk
from probes.tcp import close_stream, open_stream
from profiles.errors import LockedOut, MalformedResponse, Timeout

if TYPE_CHECKING:
    from profiles import Profile

PASSWORD_RE = re.compile(rb"password\s*:\s*$", re.IGNORECASE)
SHELL_RE = re.compile(rb"[>#$%]\s*$")
FAILED_RE = re.compile(rb"incorrect|invalid|failed|denied|bad password|error", re.IGNORECASE)
LOCK_RE = re.compile(rb"locked|too many", re.IGNORECASE)
# What a successful login says about earlier failures (pam_lastlog showfailed, login's faillog):
# "Last failed login: ...", "There were 2 failed login attempts since the last successful login."
EARLIER_FAILURES_RE = re.compile(
    rb"^.*(last failed login|failed login attempts? since|failures? since last login).*$", re.IGNORECASE | re.MULTILINE
)


@register
class TelnetLogin(Probe):
    """Username/password at a Telnet login prompt, one connection per attempt."""

    name = "telnet-login"
    risk = Risk.CREDENTIAL
    phase = Phase.ASSESS
    services = frozenset({"telnet"})
    description = "Capped Telnet logins at the login prompt"
    deadline_s: ClassVar[float | None] = 60.0

    def deadline(self, timeouts: Timeouts, config: ProbeConfig, profile: Profile | None) -> float:
        """Long enough for the whole series when every refusal comes at the login timeout."""
        return max(super().deadline(timeouts, config, profile), series_deadline("telnet", timeouts, config, profile))

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Run the capped series."""
        lock_texts = [t.encode() for t in (ctx.profile.lockout_texts if ctx.profile else ())]

        def locked(text: bytes) -> bool:
            low = text.lower()
            return bool(LOCK_RE.search(text)) or any(t in low for t in lock_texts)

        async def attempt(cand: Candidate) -> bool:
            reader, writer = await open_stream(target, ctx)
            try:
                text = await read_telnet(reader, writer, ctx, PROMPT_RE)
                if locked(text):
                    raise LockedOut(f"telnet: {clean(text)[-120:]}")
                if not PROMPT_RE.search(text.rstrip()):
                    raise Timeout("telnet: no login prompt before the read timeout")
                if not PASSWORD_RE.search(text.rstrip()):
                    writer.write(cand.username.encode() + b"\r\n")
                    text = await read_telnet(reader, writer, ctx, PASSWORD_RE, SHELL_RE)
                    if not PASSWORD_RE.search(text.rstrip()):
                        raise MalformedResponse("telnet: no password prompt after the username")
                writer.write(cand.password.encode() + b"\r\n")
                # /bin/login refuses after 2.2-4.3 s (pam_faildelay): wait the login timeout, not one read's
                text = await read_telnet(reader, writer, ctx, SHELL_RE, PROMPT_RE, wait=ctx.timeouts.login)
                tail = text.rstrip()
                if locked(text):
                    raise LockedOut(f"telnet: {clean(text)[-120:]}")
                if FAILED_RE.search(EARLIER_FAILURES_RE.sub(b"", text)) or PROMPT_RE.search(tail):
                    return False
                if SHELL_RE.search(tail):
                    return True
                raise Timeout(
                    f"telnet: neither a prompt nor a failure within the login timeout ({ctx.timeouts.login:g}s)"
                )
            finally:
                await close_stream(writer)

        return [await run_series("telnet", target, ctx, attempt)]
