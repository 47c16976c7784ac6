"""The login engine shared by the credential probes: candidates, caps, pacing, stop rules.

Field-safety rules, enforced here for every protocol:
- a random user with a random password goes first: a device that accepts it
  accepts anything, and nothing else is tried or trusted on that service;
- at most ``max_attempts`` attempts per account per window on one host, all its
  services together, of which at most ``max_attempts - 1`` may fail (a device may
  lock at the Nth failure; a profile's declared threshold lowers it further),
  the count kept for the whole sweep, across probes, and with other sweeps
  through the attempt ledger's file (``probes/login/ledger.py``, the sweep's
  own: ``ctx.ledger``); the window is the profile's declared lockout window,
  else ``--attempt-window``, and a family that never forgets failures has them
  counted until a success;
- a pause of ``login_pace_s`` between two attempts on one host;
- the first success stops the series;
- a pair one service of the host refused is not tried on its other services
  (one account database, one lockout counter: asking again only spends the cap);
- a lockout or ban signal (the protocol's own, or a profile's lockout text)
  stops the series at once and is recorded.

What the cap counts is failures: a success resets the account's count, as
devices reset their lockout counters. With ``--extended-credentials`` a series is a
walk across sweeps (see ``run_series``).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar

from probes.base import ProbeConfig, ProbeContext, ProbeTarget, Timeouts
from probes.login.ledger import DAY_S, Ledger, pair_digest
from probes.observations import LoginResult
from probes.options import OptionSet, input_file, number, option, option_set, read_lines
from profiles import yamltext
from profiles.errors import AuthRejected, LockedOut, ProbeError, UsageError

if TYPE_CHECKING:
    from profiles import Profile


@dataclass(frozen=True)
class Candidate:
    """One username/password pair to try, and where it came from."""

    username: str
    password: str
    source: str  # "profile:<id>", "generic", "anonymous", "snmp-default", "user"

    @property
    def entry(self) -> tuple[str, str]:
        """(username, source): what a LoginResult lists of a candidate (never the password)."""
        return (self.username, self.source)


Attempt = Callable[[Candidate], Awaitable[bool]]  # True: logged in; False: rejected; LockedOut: stop


class NotChecked(Exception):
    """The device answered without checking the secret (SIP: a fresh challenge to a digest answer).

    Neither a failure toward the cap nor a refused pair: ``capped_attempt`` records
    nothing and lets it through, so the caller can say the guess is still open.
    """


CLASSES = (("digits", 10, str.isdigit), ("lower", 26, str.islower), ("upper", 26, str.isupper))


def assess_password(password: str, username: str, known: set[str]) -> tuple[int, tuple[str, ...], float, str | None]:
    """(length, character classes, search-space bits, weakness) of a password the operator gave.

    The bits are length x log2(the size of the classes used): the brute-force
    measure of the NISC handbook (8 characters of digits and both cases: about
    2.2 x 10^14 = 47.6 bits). A weakness is something a dictionary finds first.
    """
    import math

    used = [name for name, _size, test in CLASSES if any(test(c) for c in password)]
    size = sum(n for name, n, _ in CLASSES if name in used)
    if any(not (c.isdigit() or c.islower() or c.isupper()) for c in password):
        used.append("symbols")
        size += 33
    bits = len(password) * math.log2(size) if size else 0.0
    weakness = None
    if password.lower() in {k.lower() for k in known}:
        weakness = "a published default or generic password"
    elif password and len(set(password)) == 1:
        weakness = "one character repeated"
    elif username and username.lower() in password.lower():
        rest = len(password) - len(username)
        if rest < 8:  # the user name and a few more characters: what a dictionary tries right after it
            weakness = f"the user name plus {rest} character(s)"
    return len(password), tuple(used), round(bits, 1), weakness


@cache
def _credential_file(name: str) -> dict[str, Any]:
    """A list under profiles/credentials/, checked against its schema (a bad file is a usage error)."""
    import json

    import jsonschema

    base = resources.files("profiles").joinpath("credentials")
    data = yamltext.safe_load(base.joinpath(name).read_text(encoding="utf-8"))
    schema = json.loads(base.joinpath("schema.json").read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=str)
    if errors:
        raise UsageError(f"profiles/credentials/{name}: {errors[0].message}")
    return dict(data)


@cache
def generic_list() -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(username, password, protocols) from profiles/credentials/generic.yaml: short, guessable, widely tried."""
    raw = _credential_file("generic.yaml")
    return tuple((str(c["username"]), str(c["password"]), tuple(c["protocols"])) for c in raw["generic"])


@cache
def extended_list() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(protocols, pairs) of profiles/credentials/extended.yaml, expanded by its rules (see that file).

    The documented defaults come from the built-in profiles.
    """
    from profiles import load_all

    raw = _credential_file("extended.yaml")
    defaults = [(c.username, c.password) for p in load_all() for c in p.default_credentials if c.protocol != "snmp"]
    default_passwords = list(dict.fromkeys(password for _user, password in defaults))
    words = [str(w) for group in raw["passwords"].values() for w in group]
    pairs: dict[tuple[str, str], None] = {}
    for user in raw["users"]:
        patterns = [str(t).replace("{user}", user) for t in raw["per_user"]]
        for password in (*patterns, *words, *default_passwords):
            pairs.setdefault((user, password), None)
    for pair in defaults:
        pairs.setdefault(pair, None)
    return tuple(str(p) for p in raw["protocols"]), tuple(pairs)


@cache
def user_list(path: str) -> tuple[tuple[str, str, str | None], ...]:
    """USER:PASSWORD lines (optionally PROTOCOL:USER:PASSWORD) from --credentials; # starts a comment."""
    out: list[tuple[str, str, str | None]] = []
    for n, line in enumerate(read_lines("--credentials", path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0] in ("ssh", "telnet", "http", "https", "ftp"):
            out.append((parts[1], parts[2], parts[0]))
        elif len(parts) >= 2:
            out.append((parts[0], line.split(":", 1)[1], None))
        else:
            raise UsageError(f"--credentials {path}:{n}: expected USER:PASSWORD")
    return tuple(out)


@option_set
@dataclass(frozen=True)
class LoginOptions(OptionSet):
    """What the login engine reads: the operator's extra pairs, the caps and the pace."""

    name: ClassVar[str] = "login"
    title: ClassVar[str] = "login attempts (SSH, Telnet, HTTP, FTP, SNMP, SIP secrets)"

    credentials_file: str | None = option(
        None,
        flag="--credentials",
        metavar="FILE",
        help="extra USER:PASSWORD (or PROTOCOL:USER:PASSWORD) lines to try after the defaults",
        parse=input_file("--credentials"),
        load=user_list,
        legacy="credentials_file",
    )
    max_attempts: int = option(
        3,
        flag="--max-attempts",
        help="login attempts per account per 15 minutes on one host, all services together (default 3); "
        "at most N-1 of them may fail, and never as many as a lockout threshold the profile declares",
        parse=number("--max-attempts", int, 0, "cannot be negative"),
        legacy="max_attempts",
    )
    attempt_window_s: float = option(
        900.0,
        flag="--attempt-window",
        metavar="SECONDS",
        help="how long a failed login counts toward --max-attempts (default 900, pam_faillock's default "
        "fail_interval); a lockout window the matched profile declares wins",
        parse=number("--attempt-window", float, 1, "must be at least 1 second"),
        legacy="attempt_window_s",
    )
    extended_credentials: bool = option(
        False,
        flag="--extended-credentials",
        kind="flag",
        help="also walk the extended list (about 600 ID/password pairs, the size of Japan's NOTICE survey, built "
        "by the rules in profiles/credentials/extended.yaml) after the others; under the same per-account cap, "
        "so it goes on across sweeps: pairs refused in an earlier sweep are not asked again (extended ones for "
        "30 days, the others for a day)",
        legacy="extended_credentials",
    )
    login_pace_s: float = option(
        0.5,
        flag="--login-pace",
        help="seconds between two login attempts on one host (default 0.5)",
        parse=number("--login-pace", float, 0, "cannot be negative"),
        legacy="login_pace_s",
    )


def candidates(protocol: str, ctx: ProbeContext) -> list[Candidate]:
    """Profile defaults first, then the generic list, the user's list, and (when asked) the extended list.

    Duplicates keep their first place and source. The extended list comes after the
    user's list, not before it as a longer generic list would: it is walked a few
    pairs per account per window, over many sweeps, and would hold the user's
    entries back for hours.
    """
    return _candidates(protocol, ctx.profile, ctx.config)


def _candidates(protocol: str, profile: Profile | None, config: ProbeConfig) -> list[Candidate]:
    out: list[Candidate] = []
    seen: set[tuple[str, str]] = set()

    def add(user: str, password: str, source: str) -> None:
        if (user, password) not in seen:
            seen.add((user, password))
            out.append(Candidate(user, password, source))

    proto = "http" if protocol == "https" else protocol
    if profile is not None:
        for cred in profile.default_credentials:
            if cred.protocol in (proto, protocol):
                add(cred.username, cred.password, f"profile:{profile.id}")
    generic = [(u, p) for u, p, protocols in generic_list() if proto in protocols]
    for user, password in generic:  # anonymous FTP is a factory default: before the guessing
        if proto == "ftp" and user in ("anonymous", "ftp"):
            add(user, password, "anonymous")
    for user, password in generic:  # public/private are every SNMP agent's factory defaults
        add(user, password, "snmp-default" if proto == "snmp" else "generic")
    opts = config.options(LoginOptions)
    if opts.credentials_file:
        for user, password, only in user_list(opts.credentials_file):
            if only is None or only in (proto, protocol):
                add(user, password, "user")
    if opts.extended_credentials:
        protocols, pairs = extended_list()
        if proto in protocols:
            for user, password in pairs:
                add(user, password, "extended")
    return out


def account_window(ctx: ProbeContext) -> float:
    """Seconds over which an account's failures count toward its cap.

    A lockout window the matched profile declares wins (0 there: the family never
    forgets failures, only a successful login resets its count, so neither does the
    ledger: inf); else ``--attempt-window`` (default 15 minutes, pam_faillock's
    default fail_interval).
    """
    if ctx.profile is not None and ctx.profile.lockout_window_s is not None:
        return ctx.profile.lockout_window_s or math.inf
    return ctx.config.options(LoginOptions).attempt_window_s


def account_cap(ctx: ProbeContext) -> int:
    """Failed attempts allowed per account and window.

    ``max_attempts`` (default 3) caps the attempts on an account, and a device may lock
    at exactly that many failures, so at most ``max_attempts - 1`` may fail; a lockout
    threshold the profile declares lowers it to one short of that threshold too.
    """
    return _cap(ctx.profile, ctx.config)


def _cap(profile: Profile | None, config: ProbeConfig) -> int:
    limit = config.options(LoginOptions).max_attempts
    if profile is not None and profile.lockout_attempts:
        limit = min(limit, profile.lockout_attempts)
    return max(limit - 1, 0)


def series_deadline(protocol: str, timeouts: Timeouts, config: ProbeConfig, profile: Profile | None) -> float:
    """Seconds a login series needs when every refusal takes the whole login timeout.

    Its attempts: the baseline, then each account's candidates up to the account's
    cap (extended pairs are not counted: the deadline ends only their walk). Each
    costs a connect, one read (greeting, prompt or key exchange), the wait for the
    verdict (``timeouts.login``) and the pace. Real PAM stacks refuse after 2-4.3 s
    (pam_faildelay, vsftpd's delay_failed_login), so a deadline made for 3 s reads
    cut a hardened server's series short and it never passed.
    """
    cap = _cap(profile, config)
    per_user = Counter(c.username for c in _candidates(protocol, profile, config) if c.source != "extended")
    attempts = 1 + sum(min(cap, n) for n in per_user.values())
    return attempts * (timeouts.connect + timeouts.read + timeouts.login + config.options(LoginOptions).login_pace_s)


def sweep_ledger(ctx: ProbeContext) -> Ledger:
    """The sweep's attempt ledger from a probe's context; no login is ever tried uncounted."""
    if ctx.ledger is None:
        raise ProbeError("no attempt ledger in the probe context: no login is tried uncounted")
    return ctx.ledger


async def capped_attempt(
    address: str,
    username: str,
    password: str | None,
    svc: str,
    limit: int,
    ctx: ProbeContext,
    attempt: Callable[[], Awaitable[bool]],
    skip: Callable[[], bool] | None = None,
    on_try: Callable[[], None] | None = None,
) -> bool | None:
    """One login under the account's lock, cap and the host's pacing; None when the account is at its cap.

    ``skip`` (checked under the lock) returns False without trying. ``password`` None (a key
    login) is never remembered as a refused pair. Every try is
    counted in the ledger before it is sent and settled after: a refusal stays
    counted, a success resets the account's count, an unchecked guess is taken
    back; a network error, a deadline or a cancellation leaves it counted (the
    device may have counted it).
    """
    ledger = sweep_ledger(ctx)
    key = (address, username)
    async with asyncio.timeout(ctx.remaining()), ledger.lock(key):
        if skip is not None and skip():
            return False
        window = account_window(ctx)
        if await ledger.used(key, window) >= limit:
            return None
        await ledger.pace(address, ctx.config.options(LoginOptions).login_pace_s, ctx.budget)
        # Counted before it is sent: an attempt cut off by the probe deadline, the host budget or a
        # cancelled sweep may have reached the device and been counted there, so it stays counted here.
        # The cap is checked again as it is counted: another sweep sharing the ledger file may have spent it.
        row = await ledger.begin(key, keep=math.isinf(window), limit=limit, window=window)
        if row is None:
            return None
        if on_try is not None:
            on_try()
        try:
            ok = await attempt()
        except AuthRejected:
            ok = False
        except NotChecked:
            await ledger.settle(key, row, "unchecked")  # the device counted nothing and refused nothing
            raise
        await ledger.settle(key, row, "accepted" if ok else "refused", password, svc)
        return ok


RECHECK_S = DAY_S  # --extended-credentials: a non-extended pair refused in an earlier sweep is asked again after


async def run_series(protocol: str, target: ProbeTarget, ctx: ProbeContext, attempt: Attempt) -> LoginResult:
    """Baseline, then candidates under the caps; stops at the first success or a lockout signal.

    With ``--extended-credentials`` the series is a walk that goes on across sweeps:
    pairs the account refused in an earlier sweep are not asked again (extended
    pairs while the ledger remembers them, the others for ``RECHECK_S``), so the cap
    is spent on pairs not yet asked. Extended pairs are listed in the result only
    when tried (the rest are counted), and a walk the probe's deadline cuts short
    leaves the judged lists complete.
    """
    service = target.service
    cap = account_cap(ctx)
    svc = service.key if service else protocol
    tried: list[tuple[str, str]] = []
    tried_elsewhere: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    rest: list[tuple[str, str]] = []
    before: list[tuple[str, str]] = []
    walk = ctx.config.options(LoginOptions).extended_credentials
    ledger = sweep_ledger(ctx)
    queue = candidates(protocol, ctx) if walk else []
    earlier = await ledger.refusals(target.address) if walk else {}

    def asked_earlier(cand: Candidate) -> bool:
        when = earlier.get(pair_digest(target.address, cand.username, cand.password))
        if when is None or when >= ledger.started:
            return False  # never refused, or refused in this sweep (the service check below says where)
        return cand.source == "extended" or time.time() - when < RECHECK_S

    async def progress() -> tuple[int, int, bool] | None:
        """(extended pairs refused so far, extended pairs for this service, whether later sweeps go on)."""
        extended = [pair_digest(target.address, c.username, c.password) for c in queue if c.source == "extended"]
        if not extended:
            return None
        done = await ledger.refusals(target.address)
        count = sum(1 for d in extended if d in done)
        return count, len(extended), count < len(extended) and not math.isinf(account_window(ctx))

    async def result(
        found: Candidate | None = None, stopped: str | None = None, *, anything: bool = False, complete: bool = True
    ) -> LoginResult:
        return LoginResult(
            service,
            protocol=protocol,
            username=found.username if found else None,
            password=found.password if found else None,
            source=found.source if found else None,
            tried=tuple(tried),
            refused_elsewhere=tuple(tried_elsewhere),
            refused_before=tuple(before),
            skipped=tuple(skipped),
            not_reached=tuple(rest),
            stopped=stopped,
            accepts_anything=anything,
            complete=complete,
            extended_progress=await progress(),
        )

    async def one(cand: Candidate, limit: int) -> bool | None:
        """One attempt under the account's lock; None when the account is at its cap."""

        def refused_elsewhere() -> bool:
            elsewhere = ledger.refused_on(target.address, (cand.username, cand.password))
            if elsewhere is not None and elsewhere != svc:
                tried_elsewhere.append(cand.entry)
                return True
            return False

        return await capped_attempt(
            target.address,
            cand.username,
            cand.password,
            svc,
            limit,
            ctx,
            lambda: attempt(cand),
            skip=refused_elsewhere,
            on_try=lambda: tried.append(cand.entry),
        )

    baseline = Candidate("ea-" + secrets.token_hex(4), secrets.token_urlsafe(12), "baseline")
    t = ctx.timeouts
    reserve = ctx.config.options(LoginOptions).login_pace_s + t.connect + t.read + t.login
    try:
        if await one(baseline, 1):
            return await result(stopped="a random user and password were accepted", anything=True)
        queue = queue or candidates(protocol, ctx)
        for i, cand in enumerate(queue):
            extended = cand.source == "extended"
            if walk and asked_earlier(cand):
                if not extended:
                    before.append(cand.entry)
                continue
            if extended and ctx.remaining() < reserve:
                break  # the deadline ends the walk only: its progress (in the result) says how far it got
            ok = await one(cand, cap)
            if ok is None:
                if not extended:
                    skipped.append(cand.entry)
            elif ok:
                rest.extend(c.entry for c in queue[i + 1 :] if c.source != "extended")
                return await result(cand, "success")
    except LockedOut as exc:
        return await result(stopped=f"lockout/ban signal: {exc}", complete=False)
    except TimeoutError:
        return await result(stopped="the probe's deadline came first", complete=False)
    except ProbeError:
        if len(tried) <= 1:
            raise  # nothing judged: the probe failed
        return await result(stopped="a later attempt failed on the network", complete=False)
    return await result(stopped="per-account cap reached" if skipped else None)
