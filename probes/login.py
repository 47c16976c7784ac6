"""The login engine shared by the credential probes: candidates, caps, pacing, stop rules.

Field-safety rules, enforced here for every protocol:
- a random user with a random password goes first: a device that accepts it
  accepts anything, and nothing else is tried or trusted on that service;
- at most ``max_attempts`` attempts per account per window on one host, all its
  services together, of which at most ``max_attempts - 1`` may fail (a device may
  lock at the Nth failure; a profile's declared threshold lowers it further),
  the count kept for the whole process, across probes, and with other sweeps
  through the attempt ledger file next to the history database;
- a pause of ``login_pace_s`` between two attempts on one host;
- the first success stops the series;
- a pair one service of the host refused is not tried on its other services
  (one account database, one lockout counter: asking again only spends the cap);
- a lockout or ban signal (the protocol's own, or a profile's lockout text)
  stops the series at once and is recorded.

What the cap counts is failures: a success resets the account's count, as
devices reset their lockout counters.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from probes.base import ProbeContext, ProbeTarget
from scanner.errors import AuthRejected, LockedOut, ProbeError, UsageError
from scanner.model import LoginResult


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
def generic_list() -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(username, password, protocols) from profiles/credentials/generic.yaml: short, guessable, widely tried."""
    text = resources.files("profiles").joinpath("credentials/generic.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    return tuple((str(c["username"]), str(c["password"]), tuple(c["protocols"])) for c in raw["generic"])


@cache
def user_list(path: str) -> tuple[tuple[str, str, str | None], ...]:
    """USER:PASSWORD lines (optionally PROTOCOL:USER:PASSWORD) from --credentials; # starts a comment."""
    out: list[tuple[str, str, str | None]] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"--credentials {path}: {exc.strerror}") from exc
    for n, line in enumerate(lines, 1):
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


def candidates(protocol: str, ctx: ProbeContext) -> list[Candidate]:
    """Profile defaults first, then the generic list, then the user's list; duplicates dropped."""
    out: list[Candidate] = []
    seen: set[tuple[str, str]] = set()

    def add(user: str, password: str, source: str) -> None:
        if (user, password) not in seen:
            seen.add((user, password))
            out.append(Candidate(user, password, source))

    proto = "http" if protocol == "https" else protocol
    if ctx.profile is not None:
        for cred in ctx.profile.default_credentials:
            if cred.protocol in (proto, protocol):
                add(cred.username, cred.password, f"profile:{ctx.profile.id}")
    generic = [(u, p) for u, p, protocols in generic_list() if proto in protocols]
    for user, password in generic:  # anonymous FTP is a factory default: before the guessing
        if proto == "ftp" and user in ("anonymous", "ftp"):
            add(user, password, "anonymous")
    for user, password in generic:  # public/private are every SNMP agent's factory defaults
        add(user, password, "snmp-default" if proto == "snmp" else "generic")
    if ctx.config.credentials_file:
        for user, password, only in user_list(ctx.config.credentials_file):
            if only is None or only in (proto, protocol):
                add(user, password, "user")
    return out


class Ledger:
    """Failed attempts per (address, account) in a sliding window; shared by every probe in the process.

    The count is per account across all of a host's services: devices usually keep one
    account database (and one lockout counter) behind SSH, Telnet and the web UI alike.
    Attempts on one account are serialised (a lock per account), so the count a probe
    checks is never stale: parallel probes cannot overshoot the cap between them.
    """

    def __init__(self) -> None:
        self._failures: dict[tuple[str, str], list[float]] = {}  # wall-clock times (shared with other sweeps)
        self._path: Path | None = None
        self._next: dict[str, float] = {}  # address -> earliest time of its next attempt (pacing)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refused: dict[str, dict[tuple[str, str], str]] = {}  # address -> (user, password) -> service

    def refused_on(self, address: str, pair: tuple[str, str]) -> str | None:
        """The service of this host that already refused this pair, if any."""
        return self._refused.get(address, {}).get(pair)

    def lock(self, key: tuple[str, str]) -> asyncio.Lock:
        """The account's lock (locks are per event loop: a new loop starts a new set)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._locks = loop, {}
        return self._locks.setdefault(key, asyncio.Lock())

    def attach(self, path: str | None) -> None:
        """Share failures with other sweeps through a file (ProbeConfig.attempt_ledger); None: this process only."""
        self._path = Path(path) if path else None

    def _sync(self, key: tuple[str, str], change: Callable[[list[float]], list[float]] | None = None) -> list[float]:
        """The account's failures, merged with the shared file (and changed there, under a file lock)."""
        mine = self._failures.get(key, [])
        if self._path is None:
            if change is not None:
                mine = change(mine)
                self._failures[key] = mine
            return mine
        import fcntl
        import json

        name = f"{key[0]} {key[1]}"
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                shared: dict[str, list[float]] = json.loads(fh.read() or "{}")
            except ValueError:
                shared = {}  # a damaged ledger only loses history; it never blocks a sweep
            times = sorted(set(shared.get(name, [])) | set(mine))
            if change is not None:
                times = change(times)
                horizon = time.time() - 86_400
                shared = {k: [t for t in v if t > horizon] for k, v in shared.items()}
                shared[name] = times
                shared = {k: v for k, v in shared.items() if v}
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps(shared))
        self._failures[key] = times
        return times

    def used(self, key: tuple[str, str], window: float) -> int:
        """Failed attempts on this account within the window (this sweep's and, when attached, others')."""
        now = time.time()
        return sum(1 for t in self._sync(key) if now - t < window)

    def failed(self, key: tuple[str, str], password: str | None = None, service: str = "") -> None:
        """Count one failed attempt (and remember a refused pair for the host's other services)."""
        now = time.time()
        self._sync(key, lambda times: [*times, now])
        if password is not None:
            self._refused.setdefault(key[0], {})[(key[1], password)] = service

    def succeeded(self, key: tuple[str, str]) -> None:
        """A login worked: devices reset an account's failure count then, and so does the ledger."""
        self._sync(key, lambda times: [])

    async def pace(self, address: str, gap: float, ctx: ProbeContext) -> None:
        """Take the host's next attempt slot (``gap`` seconds after the previous one) and wait for it."""
        now = time.monotonic()
        slot = max(now, self._next.get(address, now))
        self._next[address] = slot + gap  # reserved before waiting: concurrent probes queue up
        if slot > now:
            await asyncio.sleep(ctx.budget(slot - now))


LEDGER = Ledger()


def account_cap(ctx: ProbeContext) -> int:
    """Failed attempts allowed per account and window.

    ``max_attempts`` (default 3) caps the attempts on an account, and a device may lock
    at exactly that many failures, so at most ``max_attempts - 1`` may fail; a lockout
    threshold the profile declares lowers it to one short of that threshold too.
    """
    limit = ctx.config.max_attempts
    if ctx.profile is not None and ctx.profile.lockout_attempts:
        limit = min(limit, ctx.profile.lockout_attempts)
    return max(limit - 1, 0)


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
    counted in the ledger: a failure, or a network error that may have reached
    the device; a success resets the account's count.
    """
    LEDGER.attach(ctx.config.attempt_ledger)
    key = (address, username)
    async with asyncio.timeout(ctx.remaining()), LEDGER.lock(key):
        if skip is not None and skip():
            return False
        if LEDGER.used(key, ctx.config.attempt_window_s) >= limit:
            return None
        await LEDGER.pace(address, ctx.config.login_pace_s, ctx)
        if on_try is not None:
            on_try()
        try:
            ok = await attempt()
        except AuthRejected:
            ok = False
        except ProbeError:
            LEDGER.failed(key)  # it may have reached the device: count it
            raise
        if ok:
            LEDGER.succeeded(key)
        else:
            LEDGER.failed(key, password, svc)
        return ok


async def run_series(protocol: str, target: ProbeTarget, ctx: ProbeContext, attempt: Attempt) -> LoginResult:
    """Baseline, then candidates under the caps; stops at the first success or a lockout signal."""
    service = target.service
    cap = account_cap(ctx)
    svc = service.key if service else protocol
    tried: list[tuple[str, str]] = []
    tried_elsewhere: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    rest: list[tuple[str, str]] = []

    def result(
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
            skipped=tuple(skipped),
            not_reached=tuple(rest),
            stopped=stopped,
            accepts_anything=anything,
            complete=complete,
        )

    async def one(cand: Candidate, limit: int) -> bool | None:
        """One attempt under the account's lock; None when the account is at its cap."""

        def refused_elsewhere() -> bool:
            elsewhere = LEDGER.refused_on(target.address, (cand.username, cand.password))
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
    try:
        if await one(baseline, 1):
            return result(stopped="a random user and password were accepted", anything=True)
        queue = candidates(protocol, ctx)
        for i, cand in enumerate(queue):
            ok = await one(cand, cap)
            if ok is None:
                skipped.append(cand.entry)
            elif ok:
                rest.extend(c.entry for c in queue[i + 1 :])
                return result(cand, "success")
    except LockedOut as exc:
        return result(stopped=f"lockout/ban signal: {exc}", complete=False)
    except TimeoutError:
        return result(stopped="the probe's deadline came first", complete=False)
    except ProbeError:
        if len(tried) <= 1:
            raise  # nothing judged: the probe failed
        return result(stopped="a later attempt failed on the network", complete=False)
    return result(stopped="per-account cap reached" if skipped else None)
