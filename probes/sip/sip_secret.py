"""SIP extension enumeration and weak digest secrets (CIAJ part 2), under the login engine's rules.

Enumeration: an unauthenticated REGISTER (no Contact: a binding query) for a
random user, then for each candidate extension; a different answer (404 for
the random one, 401 for a real one: Asterisk's alwaysauthreject=no) tells
which exist. When REGISTER answers everyone alike, OPTIONS to each candidate's
URI is compared with random users of the candidates' own shape (digits, same
length): chan_sip answers OPTIONS from the dial plan, where a pattern such as
``_X.`` answers every number alike and letters 404, so a letters-only baseline
would make every number look like an extension. When two random users of one
shape answer differently, the answers tell nothing about that shape.
INVITE is never used to enumerate: it would ring the phones that exist.
Candidates: a short default list, or ``--sip-extensions`` (ranges, lists,
@wordlist files; at most ``MAX_EXTENSIONS``). Every request is paced like a
login attempt, and a run cut short by its deadline says how far it got.

Guessing, on extensions that were challenged: the extension as its own secret,
the profile's SIP defaults and one short guess, each under the per-account cap
and the host's pacing. Each guess is one dialog, as a phone registers: REGISTER,
the 401 challenge, and the answer in the same Call-ID and From tag with CSeq + 1
(chan_sip binds its nonce to the dialog and takes it once; an answer in a new
Call-ID only draws a fresh 401). The answer's reply decides:
- 2xx: the secret is right; that extension stops;
- 403: the pair is refused (chan_sip's answer to a wrong secret, and with
  alwaysauthreject=yes to an unknown user);
- a fresh 401/407 (not stale): refused on a device that refuses a random user's
  wrong answer that way (RFC 2617; Kamailio's auth module), seen first on a random
  user (``calibrate``, no real account is touched); elsewhere (chan_sip re-challenges
  an answer it did not check) not checked;
- anything else: the secret was not checked (``NotChecked``), neither a failure
  nor a refused pair; guessing stops, the verdict stays open.
Ban signals stop everything: a 429 or 503, a Retry-After on any reply, a 403
(or no answer at all) to an unauthenticated REGISTER that was challenged before.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.login import LoginOptions, NotChecked, account_cap, capped_attempt, sweep_ledger
from probes.observations import Observation, Risk, Service, SipSecretTest
from probes.options import OptionSet, option, option_set, read_lines
from probes.sip import sipmsg, sipnet
from probes.sip.sipcall import ask
from profiles.errors import LockedOut, ProbeError, UsageError

CANDIDATES = ("100", "101", "102", "200", "201", "1000", "1001", "2000")
MAX_EXTENSIONS = 1000
EXTENSION_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,32}$")


def parse_extensions(spec: str) -> tuple[str, ...]:
    """``--sip-extensions``: N, N-M ranges and @FILE wordlists (one per line, # comments), comma-separated.

    A bad word in a wordlist is a UsageError naming the file and line.
    """
    out: list[str] = []
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        if item.startswith("@"):
            for n, line in enumerate(read_lines("--sip-extensions", item[1:]), 1):
                word = line.split("#", 1)[0].strip()
                if word and not EXTENSION_RE.match(word):
                    raise UsageError(
                        f"--sip-extensions {item[1:]}:{n}: {word[:40]!r} is not an extension "
                        "(letters, digits, _.+- only)"
                    )
                if word:
                    out.append(word)
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


@option_set
@dataclass(frozen=True)
class SipSecretOptions(OptionSet):
    """Which extensions the enumeration asks for."""

    name: ClassVar[str] = "sip-secret"
    title: ClassVar[str] = "SIP extensions and secrets"

    sip_extensions: tuple[str, ...] = option(
        (),  # empty: the short default list (CANDIDATES)
        flag="--sip-extensions",
        metavar="LIST",
        help="extensions to enumerate on a PBX: N, N-M and @FILE items, comma-separated, at most 1000 "
        "(default: a short list of common ones); each is paced like a login attempt, so long lists need "
        "a larger --probe-timeout and --host-budget",
        parse=parse_extensions,
        legacy="sip_extensions",
    )


GUESS_WHEN_UNIFORM = 4  # a PBX that answers everyone alike hides which exist: guess on this many candidates
SHORT_LIST = ("1234",)
BAN = (429, 503)
CHALLENGES = (401, 407)
ENUMERATION_RESERVE_S = 15.0  # probe time kept back from enumeration for the guesses and their replies


def ban_signal(msg: sipmsg.SipMessage) -> str | None:
    """A rate-limit or ban signal in a reply: 429, 503, or a Retry-After on any status."""
    code = msg.status or 0
    if code in BAN or msg.get("retry-after") is not None:
        after = msg.get("retry-after")
        return f"{code} {msg.reason[:60]}" + (f" (Retry-After: {after[:20]})" if after is not None else "")
    return None


class Unchecked(NotChecked):
    """A guess the device did not check; ``stop``: no later guess would be checked either."""

    def __init__(self, reason: str, *, stop: bool) -> None:
        super().__init__(reason)
        self.stop = stop


async def answer_once(
    target: ProbeTarget, ctx: ProbeContext, ext: str, secret: str
) -> tuple[sipmsg.SipMessage, sipmsg.SipMessage | None]:
    """REGISTER for ``ext``, then the digest answer with ``secret`` in the challenge's own dialog (Call-ID,
    From tag, CSeq + 1): (the first reply, the answer's reply; None when there was no challenge to answer)."""
    assert target.service is not None
    host = sipmsg.host_port(target.address, target.service.port)
    aor, uri = f"sip:{ext}@{host}", f"sip:{host}"
    channel = await sipnet.open_channel(target, ctx)
    try:

        def build(header: str | None) -> Callable[[sipmsg.Transaction], bytes]:
            extra = (header,) if header else ()
            return lambda tx: sipmsg.build_request(
                "REGISTER", uri, tx, channel.local, channel.transport, to=aor, from_uri=aor, extra=extra
            )

        first = sipmsg.Transaction.new("REGISTER", channel.local[0])
        challenge = await sipnet.request(channel, build(None), "REGISTER", ctx, tx=first)
        status = challenge.status or 0
        name = "Proxy-Authorization" if status == 407 else "Authorization"
        header = challenge.get("proxy-authenticate" if status == 407 else "www-authenticate")
        if status not in CHALLENGES or header is None or ban_signal(challenge):
            return challenge, None
        answer = f"{name}: {sipmsg.digest_authorization(header, 'REGISTER', uri, ext, secret)}"
        return challenge, await sipnet.request(channel, build(answer), "REGISTER", ctx, tx=first.follow_up())
    finally:
        await channel.aclose()


def stale(msg: sipmsg.SipMessage) -> bool:
    """A challenge that says the nonce was stale (RFC 2617 3.2.1: the digest itself was valid)."""
    header = msg.get("www-authenticate") or msg.get("proxy-authenticate") or ""
    return re.search(r"\bstale\s*=\s*\"?true", header, re.IGNORECASE) is not None


async def guess(target: ProbeTarget, ctx: ProbeContext, ext: str, secret: str, refusal: int | None = None) -> bool:
    """One digest REGISTER dialog for ``ext``; True: registered, False: the secret was refused.

    ``refusal`` is how this device refuses a wrong answer, seen on a random user (``calibrate``): 403
    (chan_sip), or a fresh challenge (RFC 2617's way, as Kamailio's auth module does), which then counts
    as a refusal too. Raises LockedOut on a ban signal and Unchecked when the secret was not checked.
    """
    challenge, reply = await answer_once(target, ctx, ext, secret)
    status = challenge.status or 0
    signal = ban_signal(challenge) or (f"403 {challenge.reason[:60]}" if status == 403 else None)
    if signal:
        raise LockedOut(f"{signal} to an unauthenticated REGISTER for {ext}, which was challenged before: a ban")
    if 200 <= status < 300:
        return True  # it asks no secret of this extension now
    if reply is None:
        raise Unchecked(f"{status} {challenge.reason[:60]} to the REGISTER: no challenge to answer", stop=False)
    code = reply.status or 0
    if signal := ban_signal(reply):
        raise LockedOut(f"{signal} to a digest answer: guessing stops")
    if 200 <= code < 300:
        return True
    if code == 403 or (code in CHALLENGES and refusal in CHALLENGES and not stale(reply)):
        return False
    raise Unchecked(f"{code} {reply.reason[:60]} to an answer in the challenge's own dialog", stop=True)


async def calibrate(target: ProbeTarget, ctx: ProbeContext) -> tuple[int, int | None]:
    """A random user's REGISTER, and when it is challenged, the answer with a random secret in that dialog:
    (the REGISTER's status, the status a wrong answer gets on this device; None when there was none)."""
    import secrets

    challenge, reply = await answer_once(target, ctx, "ea" + secrets.token_hex(4), secrets.token_urlsafe(12))
    if reply is None or (reply.status in CHALLENGES and stale(reply)):
        return challenge.status or 0, None
    if signal := ban_signal(reply):
        raise LockedOut(f"{signal} to a digest answer for a random user: guessing stops")
    return challenge.status or 0, reply.status


def shape(ext: str) -> str:
    """What a dial plan pattern sees of a user part: N digits, or anything else."""
    return f"{len(ext)} digits" if ext.isdigit() else "other"


def random_like(ext: str, avoid: set[str]) -> str:
    """A random user of ``ext``'s shape that is none of ``avoid`` (letters-only for non-numeric shapes)."""
    import secrets

    if not ext.isdigit():
        return "ea" + secrets.token_hex(4)
    user = ext
    for _ in range(50):
        user = "".join(secrets.choice("0123456789") for _ in ext)
        if user not in avoid:
            break
    return user


@dataclass
class _Guesses:
    weak: list[tuple[str, str, str]] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)
    stopped: str | None = None
    refusal: int | None = None  # how this device refuses a wrong answer (``calibrate``)


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
        """The one SIP service that answered OPTIONS first (UDP before TCP before TLS), on a SIP server."""
        return sipnet.access_targets(host, servers_only=True)

    async def _enumerate(
        self, target: ProbeTarget, ctx: ProbeContext, method: str, candidates: Sequence[str]
    ) -> tuple[list[tuple[str, int]], str | None]:
        """(extension, status) per candidate, and why it stopped early (ban signal, deadline) or None."""
        probed: list[tuple[str, int]] = []
        for ext in candidates:
            if ctx.remaining() < ENUMERATION_RESERVE_S:
                return probed, f"deadline: {method} probed {len(probed)} of {len(candidates)} extensions"
            await sweep_ledger(ctx).pace(target.address, ctx.config.options(LoginOptions).login_pace_s, ctx.budget)
            reply = await ask(target, ctx, method, ext)
            probed.append((ext, reply.status or 0))
            if signal := ban_signal(reply):
                return probed, f"{signal}: rate limit or ban signal"
        return probed, None

    async def _options(
        self, target: ProbeTarget, ctx: ProbeContext, candidates: Sequence[str]
    ) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[str], str | None, str | None]:
        """OPTIONS: (baselines, probed, found, note, stopped); two random users per numeric shape, one otherwise."""
        baselines: list[tuple[str, int]] = []
        by_shape: dict[str, set[int]] = {}
        avoid = set(candidates)
        for first in {shape(ext): ext for ext in reversed(candidates)}.values():
            for _ in range(2 if first.isdigit() else 1):
                user = random_like(first, avoid)
                avoid.add(user)
                await sweep_ledger(ctx).pace(target.address, ctx.config.options(LoginOptions).login_pace_s, ctx.budget)
                reply = await ask(target, ctx, "OPTIONS", user)
                baselines.append((user, reply.status or 0))
                by_shape.setdefault(shape(first), set()).add(reply.status or 0)
                if signal := ban_signal(reply):
                    return baselines, [], [], None, f"{signal}: rate limit or ban signal"
        probed, stopped = await self._enumerate(target, ctx, "OPTIONS", candidates)
        unclear = {k: v for k, v in by_shape.items() if len(v) > 1}
        note = None
        if unclear:
            note = "; ".join(
                f"random users of {k} answered OPTIONS differently ({', '.join(map(str, sorted(v)))})"
                for k, v in unclear.items()
            )
            note += ": a dial plan pattern answers some of them, so OPTIONS tells nothing about those extensions"
        found = [ext for ext, status in probed if shape(ext) not in unclear and status not in by_shape[shape(ext)]]
        return baselines, probed, found, note, stopped

    async def _guess(self, target: ProbeTarget, ctx: ProbeContext, guess_on: Sequence[str], out: _Guesses) -> None:
        """Capped guesses per extension, in order; fills ``out`` (a ban or an unchecked answer stops all)."""
        assert target.service is not None
        cap = account_cap(ctx)
        profile = ctx.profile
        profile_secrets = (
            [(c.password, f"profile:{profile.id}") for c in profile.default_credentials if c.protocol == "sip"]
            if profile is not None
            else []
        )
        for ext in guess_on:
            guesses = [(ext, "extension"), *profile_secrets, *((s, "generic") for s in SHORT_LIST)]
            seen: set[str] = set()
            for secret, source in guesses:
                if secret in seen:
                    continue  # the same secret from two sources: asked once
                seen.add(secret)
                label = f"{ext} ({source})"
                try:
                    ok = await capped_attempt(
                        target.address,
                        ext,
                        secret,
                        target.service.key,
                        cap,
                        ctx,
                        functools.partial(guess, target, ctx, ext, secret, out.refusal),
                        on_try=functools.partial(out.tried.append, label),
                    )
                except Unchecked as exc:
                    out.tried.remove(label)
                    out.not_checked.append(f"{label}: {exc}")
                    if exc.stop:
                        out.stopped = f"not checked: {exc} (a fresh challenge is no refusal); guessing stops"
                        return
                    break  # this extension has nothing to answer
                if ok is None:
                    out.skipped.append(label)
                elif ok:
                    out.weak.append((ext, secret, source))
                    break

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Enumerate, then guess; every request paced like a login attempt."""
        assert target.service is not None
        base, refusal = await calibrate(target, ctx)
        if 200 <= base < 300:
            return [SipSecretTest(target.service, baseline_status=base, no_auth=True, stopped="no credentials asked")]
        candidates = ctx.config.options(SipSecretOptions).sip_extensions or CANDIDATES
        probed, stopped = await self._enumerate(target, ctx, "REGISTER", candidates)
        found = [ext for ext, status in probed if status != base]
        options_baselines: list[tuple[str, int]] = []
        options_probed: list[tuple[str, int]] = []
        note: str | None = None
        if not found and not stopped:
            options_baselines, options_probed, found, note, stopped = await self._options(target, ctx, candidates)
        challenged = {ext for ext, status in probed if status in CHALLENGES}
        if found:
            guess_on = [ext for ext in found if ext in challenged]
        elif base in CHALLENGES and not stopped:
            guess_on = list(candidates[:GUESS_WHEN_UNIFORM])  # everyone is challenged: which exist is hidden
        else:
            guess_on = []
        out = _Guesses(stopped=stopped, refusal=refusal)
        out.weak += [(ext, "", "none asked") for ext, status in probed if 200 <= status < 300]
        if not stopped:
            try:
                await self._guess(target, ctx, guess_on, out)
            except LockedOut as exc:
                out.stopped = str(exc)
            except ProbeError:
                if not out.tried:
                    raise
                out.stopped = "a later REGISTER got no answer or failed (silence after answers: a ban, or the network)"
        return [
            SipSecretTest(
                target.service,
                baseline_status=base,
                refusal_status=refusal,
                candidates=len(candidates),
                options_baseline_status=options_baselines[0][1] if options_baselines else None,
                options_baselines=tuple(options_baselines),
                options_probed=tuple(options_probed),
                enumeration_note=note,
                probed=tuple(probed),
                found=tuple(found),
                weak=tuple(out.weak),
                tried=tuple(out.tried),
                skipped=tuple(out.skipped),
                not_checked=tuple(out.not_checked),
                stopped=out.stopped,
                complete=out.stopped is None,
            )
        ]
