"""SIP extension enumeration and weak digest secrets (CIAJ part 2), under the login engine's rules.

Enumeration: an unauthenticated REGISTER (no Contact: a binding query) for a
random user, then for each candidate extension; a different answer (404 for
the random one, 401 for a real one: Asterisk's alwaysauthreject=no) tells
which exist. When REGISTER answers everyone alike, OPTIONS to each candidate's
URI is compared the same way (res_pjsip answers 404 for no such endpoint).
INVITE is never used to enumerate: it would ring the phones that exist.
Candidates: a short default list, or ``--sip-extensions`` (ranges, lists,
@wordlist files; at most ``MAX_EXTENSIONS``). Every request is paced like a
login attempt, and a run cut short by its deadline says how far it got.
Guessing: digest REGISTERs with the extension as its own secret,
the profile's SIP defaults and one short guess, each under the per-account cap
and the host's pacing. A 403 to a guess, a 429 or a 503 stops everything
(lockout or ban signals); a success stops that extension.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from probes import sipmsg, sipnet
from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.ledger import LEDGER
from probes.login import account_cap, capped_attempt
from probes.sipcall import ask, register_once
from scanner.errors import LockedOut, ProbeError, UsageError
from scanner.model import Observation, Risk, Service, SipSecretTest

CANDIDATES = ("100", "101", "102", "200", "201", "1000", "1001", "2000")
MAX_EXTENSIONS = 1000
EXTENSION_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,32}$")


def parse_extensions(spec: str) -> tuple[str, ...]:
    """``--sip-extensions``: N, N-M ranges and @FILE wordlists (one per line, # comments), comma-separated."""
    out: list[str] = []
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        if item.startswith("@"):
            try:
                lines = Path(item[1:]).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise UsageError(f"--sip-extensions {item}: {exc.strerror or exc}") from exc
            words = [w.split("#", 1)[0].strip() for w in lines]
            out += [w for w in words if w]
        elif re.fullmatch(r"\d{1,12}-\d{1,12}", item):
            low, high = item.split("-")
            if int(high) < int(low) or int(high) - int(low) >= MAX_EXTENSIONS:
                raise UsageError(f"--sip-extensions {item}: not a range of at most {MAX_EXTENSIONS}")
            out += [str(n).zfill(len(low)) for n in range(int(low), int(high) + 1)]
        else:
            out.append(item)
        if len(out) > MAX_EXTENSIONS:
            raise UsageError(f"--sip-extensions: more than {MAX_EXTENSIONS} extensions")
    bad = [x for x in out if not EXTENSION_RE.match(x)]
    if bad:
        raise UsageError(f"--sip-extensions: {bad[0][:40]!r} is not an extension (letters, digits, _.+- only)")
    if not out:
        raise UsageError("--sip-extensions: no extension given")
    return tuple(dict.fromkeys(out))


GUESS_WHEN_UNIFORM = 4  # a PBX that answers everyone alike hides which exist: guess on this many candidates
SHORT_LIST = ("1234",)
BAN = (429, 503)
ENUMERATION_RESERVE_S = 15.0  # probe time kept back from enumeration for the guesses and their replies


@register
class SipSecrets(Probe):
    """Which extensions exist, and whether any registers with a guessable secret."""

    name = "sip-secrets"
    risk = Risk.CREDENTIAL
    phase = Phase.ASSESS
    services = frozenset({"sip", "sips"})
    description = "REGISTER-based extension enumeration, then capped digest guesses (extension = secret, defaults)"
    deadline_s: ClassVar[float | None] = 90.0

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The one SIP service that answered OPTIONS first (UDP before TCP before TLS), on a PBX or gateway."""
        return sipnet.access_targets(host, servers_only=True)

    async def _enumerate(
        self, target: ProbeTarget, ctx: ProbeContext, method: str, candidates: Sequence[str]
    ) -> tuple[list[tuple[str, int]], str | None]:
        """(extension, status) per candidate, and why it stopped early (ban signal, deadline) or None."""
        probed: list[tuple[str, int]] = []
        for ext in candidates:
            if ctx.remaining() < ENUMERATION_RESERVE_S:
                return probed, f"deadline: {method} probed {len(probed)} of {len(candidates)} extensions"
            await LEDGER.pace(target.address, ctx.config.login_pace_s, ctx)
            reply = await ask(target, ctx, method, ext)
            probed.append((ext, reply.status or 0))
            if (reply.status or 0) in BAN:
                return probed, f"{reply.status} {reply.reason}: rate limit or ban signal"
        return probed, None

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Enumerate, then guess; every request paced like a login attempt."""
        import secrets

        assert target.service is not None
        svc = target.service.key
        gap = ctx.config.login_pace_s
        baseline = await register_once(target, ctx, "ea" + secrets.token_hex(4))
        base = baseline.status or 0
        if 200 <= base < 300:
            return [SipSecretTest(target.service, baseline_status=base, no_auth=True, stopped="no credentials asked")]
        candidates = ctx.config.sip_extensions or CANDIDATES
        probed, stopped = await self._enumerate(target, ctx, "REGISTER", candidates)
        found = [ext for ext, status in probed if status != base]
        options_base: int | None = None
        options_probed: list[tuple[str, int]] = []
        if not found and not stopped:
            await LEDGER.pace(target.address, gap, ctx)
            options_base = (await ask(target, ctx, "OPTIONS", "ea" + secrets.token_hex(4))).status or 0
            options_probed, stopped = await self._enumerate(target, ctx, "OPTIONS", candidates)
            found = [ext for ext, status in options_probed if status != options_base]
        guess_on = found or ([] if stopped else list(candidates[:GUESS_WHEN_UNIFORM]))
        weak: list[tuple[str, str, str]] = []
        tried: list[str] = []
        skipped: list[str] = []
        complete = stopped is None
        cap = account_cap(ctx)
        profile = ctx.profile
        profile_secrets = (
            [(c.password, f"profile:{profile.id}") for c in profile.default_credentials if c.protocol == "sip"]
            if profile is not None
            else []
        )
        host = sipmsg.host_port(target.address, target.service.port)
        try:
            for ext in guess_on:
                if stopped:
                    break
                guesses = [(ext, "extension"), *profile_secrets, *((s, "generic") for s in SHORT_LIST)]
                seen: set[str] = set()
                for secret, source in guesses:
                    if secret in seen:
                        continue
                    seen.add(secret)

                    async def attempt(ext: str = ext, secret: str = secret) -> bool:
                        challenge = await register_once(target, ctx, ext)
                        status = challenge.status or 0
                        if status in BAN or status == 403:
                            raise LockedOut(f"{status} {challenge.reason} before any secret was sent")
                        if 200 <= status < 300:
                            return True  # no credentials asked for this one
                        header = challenge.get("www-authenticate") or challenge.get("proxy-authenticate")
                        if status not in (401, 407) or header is None:
                            return False  # 404: no such extension after all
                        auth = sipmsg.digest_authorization(header, "REGISTER", f"sip:{host}", ext, secret)
                        reply = await register_once(target, ctx, ext, authorization=auth)
                        code = reply.status or 0
                        if code == 403 or code in BAN:
                            raise LockedOut(f"{code} {reply.reason} to a wrong secret: guessing stops")
                        return 200 <= code < 300

                    label = f"{ext} ({source})"
                    ok = await capped_attempt(
                        target.address,
                        ext,
                        secret,
                        svc,
                        cap,
                        ctx,
                        attempt,
                        on_try=functools.partial(tried.append, label),
                    )
                    if ok is None:
                        skipped.append(label)
                        continue
                    if ok:
                        weak.append((ext, secret, source))
                        break
        except LockedOut as exc:
            stopped, complete = str(exc), False
        except ProbeError:
            if not tried:
                raise
            stopped, complete = "a later request failed on the network", False
        return [
            SipSecretTest(
                target.service,
                baseline_status=base,
                candidates=len(candidates),
                options_baseline_status=options_base,
                options_probed=tuple(options_probed),
                probed=tuple(probed),
                found=tuple(found),
                weak=tuple(weak),
                tried=tuple(tried),
                skipped=tuple(skipped),
                stopped=stopped,
                complete=complete,
            )
        ]
