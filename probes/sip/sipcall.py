"""Unauthenticated INVITE and REGISTER tests over UDP, TCP or TLS (CIAJ part 2), which never complete a call.

INVITE (toll fraud / open relay): one request to a number in an unassigned
country code, or to a random extension as the baseline, with no SDP. The
dialog is ended at once, whatever happens:
- the first provisional reply other than 100 Trying (which is hop-by-hop)
  gets a CANCEL; 100 alone for ``RING_WAIT`` seconds gets one too;
- every final reply to the INVITE is ACKed;
- a 200 gets its ACK and a BYE immediately.
The transcript of the dialog is kept as evidence.

REGISTER: no Contact header, so it is a binding query (RFC 3261 10.2.3) that
registers nothing; a 200 without a challenge shows the registrar takes
REGISTER from anyone.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.observations import Observation, Risk, Service, SipCallTest, SipRegisterTest
from probes.options import OptionSet, option, option_set
from probes.sip import sipmsg, sipnet
from probes.sip.sipnet import T1
from profiles.errors import ProbeError, Timeout, UsageError

RING_WAIT = 4.0  # seconds a 100 Trying may stand alone before the scanner CANCELs anyway
FINAL_WAIT = 4.0  # seconds to wait for the final reply after a CANCEL or BYE
UNASSIGNED_CC = "999"  # ITU-T E.164: country code 999 is spare (unassigned)
MAX_PREFIXES = 6  # international INVITEs per PBX, at most


def parse_prefixes(text: str) -> tuple[str, ...]:
    """--sip-dial-prefixes: '+,00,010' -> ('+', '00', '010')."""
    items = tuple(p.strip() for p in text.split(",") if p.strip())
    if not items or len(items) > MAX_PREFIXES or not all(re.fullmatch(r"[+0-9*#]{1,6}", p) for p in items):
        raise UsageError(f"--sip-dial-prefixes takes 1 to 6 prefixes of +, digits, * and #, not {text!r}")
    return items


@option_set
@dataclass(frozen=True)
class SipCallOptions(OptionSet):
    """The international prefixes the open-relay INVITEs use."""

    name: ClassVar[str] = "sip-call"
    title: ClassVar[str] = "SIP open relay"

    sip_dial_prefixes: tuple[str, ...] = option(
        ("+", "00", "010"),  # E.164 '+', ITU '00', Japan '010'
        flag="--sip-dial-prefixes",
        metavar="LIST",
        help="international dialling prefixes the relay test puts before the spare country code 999, "
        "comma-separated (default: +,00,010; a matched profile's own are added; at most 6 in all)",
        parse=parse_prefixes,
        legacy="sip_dial_prefixes",
    )


@dataclass
class _Dialog:
    transcript: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    ended: str = "not ended"

    def sent(self, what: str) -> None:
        self.transcript.append(f"> {what}")

    def got(self, msg: sipmsg.SipMessage) -> None:
        cseq = (msg.get("cseq") or "").split()
        self.transcript.append(f"< {msg.status} {msg.reason} ({cseq[-1] if cseq else '?'})")


def _to_tag(msg: sipmsg.SipMessage) -> str | None:
    return sipmsg.param(msg.get("to") or "", "tag")


def _is(msg: sipmsg.SipMessage, tx: sipmsg.Transaction, method: str, cseq: int) -> bool:
    parts = (msg.get("cseq") or "").split()
    return (
        msg.is_response
        and msg.get("call-id") == tx.call_id
        and len(parts) == 2
        and parts[0] == str(cseq)
        and parts[1].upper() == method
    )


# Finals that refuse the request itself: the caller (403), the number (404, 484, 485, 604) or the method.
# Anything else after the authentication step means the dial plan took the call: a real Asterisk
# with allowguest=yes answers a guest's call abroad 100/180/183 at once and 503 when its Dial
# times out (4 s), so a trunk's or a later stage's refusal is still a relayed call.
REFUSALS = frozenset({400, 403, 404, 405, 416, 420, 484, 485, 501, 604})


def classify(statuses: Sequence[int]) -> str:
    """The outcome of an INVITE from the statuses it drew (in order)."""
    finals = [s for s in statuses if s >= 200]
    if any(200 <= s < 300 for s in finals):
        return "answered"
    if any(s in (180, 181, 182, 183) for s in statuses):
        return "routed"
    first = finals[0] if finals else None
    if first is None:
        return "no-final"
    if first in (401, 407):
        return "challenged"
    if first == 487:
        return "no-final"  # our own CANCEL ended it before the PBX decided
    if first in REFUSALS:
        return "rejected"
    return "routed"


async def invite(target: ProbeTarget, number: str, ctx: ProbeContext) -> tuple[str, _Dialog]:
    """One INVITE dialog to ``number`` at the target's SIP service, ended at once; (outcome, dialog)."""
    assert target.service is not None
    loop = asyncio.get_running_loop()
    channel = await sipnet.open_channel(target, ctx)
    dialog = _Dialog()
    try:
        local, via = channel.local, channel.transport
        tx = sipmsg.Transaction.new("INVITE", local[0])
        uri = f"sip:{number}@{sipmsg.host_port(target.address, target.service.port)}"
        contact = f"Contact: <{sipnet.contact_uri(channel)}>"
        request = sipmsg.build_request("INVITE", uri, tx, local, via, to=uri, extra=(contact,))
        cancelled = False

        def send(data: bytes, what: str) -> None:
            channel.send(data)
            dialog.sent(what)

        def cancel() -> None:
            nonlocal cancelled
            if not cancelled:
                cancelled = True
                # CANCEL: same branch, Request-URI, Call-ID, From, To (no tag) and CSeq number as the INVITE.
                send(sipmsg.build_request("CANCEL", uri, tx, local, via, to=uri), "CANCEL")
                dialog.ended = "CANCEL"

        send(request, "INVITE")
        start = loop.time()
        deadline = min(ctx.deadline, start + RING_WAIT + FINAL_WAIT + 2.0)
        next_resend, interval = start + T1, T1
        got_any = False
        trying_since: float | None = None
        final: sipmsg.SipMessage | None = None
        while final is None:
            now = loop.time()
            if now >= deadline:
                break
            if trying_since is not None and not cancelled and now - trying_since >= RING_WAIT:
                cancel()  # 100 Trying alone for too long: it may be ringing somewhere
            wake = deadline
            if not got_any and not channel.reliable:
                wake = min(wake, next_resend)
            elif trying_since is not None and not cancelled:
                wake = min(wake, trying_since + RING_WAIT)
            try:
                msg = await channel.next(wake)
            except TimeoutError:
                if not got_any and not channel.reliable and loop.time() >= next_resend:
                    send(request, "INVITE (retransmit)")  # RFC 3261 timer A (UDP only)
                    interval *= 2
                    next_resend = loop.time() + interval
                continue
            except ProbeError:
                if not got_any:
                    raise
                break  # the connection broke mid-dialog: what was seen is the evidence
            if _is(msg, tx, "CANCEL", tx.cseq):
                dialog.got(msg)
                continue
            if not _is(msg, tx, "INVITE", tx.cseq) or msg.status is None:
                continue
            got_any = True
            dialog.got(msg)
            dialog.statuses.append(msg.status)
            if msg.status == 100:
                trying_since = trying_since or loop.time()
            elif msg.status < 200:
                cancel()
            else:
                final = msg
        if final is None:
            if not cancelled and got_any:
                cancel()
            if dialog.ended == "not ended" and not got_any:
                raise Timeout(f"{channel.what}: no reply to INVITE")
            return classify(dialog.statuses), dialog
        to_tag = _to_tag(final)
        assert final.status is not None
        if final.status >= 300:
            # ACK for a non-2xx final: same branch as the INVITE, the response's To tag.
            send(sipmsg.build_request("ACK", uri, tx, local, via, to=uri, to_tag=to_tag), "ACK")
            if dialog.ended == "not ended":
                dialog.ended = "final reply"
        else:
            # A call was answered: ACK it (new transaction) and hang up at once.
            remote = _contact_uri(final) or uri
            ack_branch = "z9hG4bK" + secrets.token_hex(10)
            send(sipmsg.build_request("ACK", remote, tx, local, via, to=uri, to_tag=to_tag, branch=ack_branch), "ACK")
            bye_branch = "z9hG4bK" + secrets.token_hex(10)
            bye = sipmsg.build_request(
                "BYE", remote, tx, local, via, to=uri, to_tag=to_tag, branch=bye_branch, cseq=tx.cseq + 1
            )
            send(bye, "BYE")
            dialog.ended = "BYE"
            bye_deadline = min(ctx.deadline, loop.time() + FINAL_WAIT)
            resend = loop.time() + T1
            while loop.time() < bye_deadline:
                try:
                    msg = await channel.next(min(bye_deadline, resend) if not channel.reliable else bye_deadline)
                except TimeoutError:
                    if not channel.reliable and loop.time() >= resend:
                        send(bye, "BYE (retransmit)")
                        resend = loop.time() + T1 * 2
                    continue
                except ProbeError:
                    break
                if _is(msg, tx, "BYE", tx.cseq + 1) and msg.status and msg.status >= 200:
                    dialog.got(msg)
                    break
        return classify(dialog.statuses), dialog
    finally:
        await channel.aclose()


def _contact_uri(msg: sipmsg.SipMessage) -> str | None:
    contact = msg.get("contact") or ""
    if "<" in contact and ">" in contact:
        return contact[contact.index("<") + 1 : contact.index(">")]
    return contact.split(";")[0].strip() or None


async def ask(
    target: ProbeTarget,
    ctx: ProbeContext,
    method: str,
    user: str,
    *,
    authorization: str | None = None,
    extra: tuple[str, ...] = (),
    contact: bool = False,
) -> sipmsg.SipMessage:
    """One out-of-dialog non-INVITE transaction about ``user``; the final reply.

    REGISTER goes to the registrar (From = To = the user's AOR, no Contact: a
    binding query that binds nothing); OPTIONS and REFER go to the user's URI.
    """
    assert target.service is not None
    host = sipmsg.host_port(target.address, target.service.port)
    aor = f"sip:{user}@{host}"
    uri = f"sip:{host}" if method == "REGISTER" else aor
    channel = await sipnet.open_channel(target, ctx)
    try:

        def build(tx: sipmsg.Transaction) -> bytes:
            headers = (*extra, *((f"Authorization: {authorization}",) if authorization else ()))
            if contact:
                headers = (f"Contact: <{sipnet.contact_uri(channel)}>", *headers)
            from_uri = aor if method == "REGISTER" else None
            return sipmsg.build_request(
                method, uri, tx, channel.local, channel.transport, to=aor, from_uri=from_uri, extra=headers
            )

        return await sipnet.request(channel, build, method, ctx)
    finally:
        await channel.aclose()


async def register_once(
    target: ProbeTarget, ctx: ProbeContext, user: str, authorization: str | None = None
) -> sipmsg.SipMessage:
    """One REGISTER transaction for ``user`` (no Contact: nothing is bound); the final reply."""
    return await ask(target, ctx, "REGISTER", user, authorization=authorization)


def numbers(prefixes: Sequence[str]) -> list[str]:
    """International numbers in the unassigned country code, one per dialling prefix."""
    subscriber = "".join(secrets.choice("0123456789") for _ in range(8))
    return [f"{p}{UNASSIGNED_CC}{subscriber}" for p in prefixes]


@register
class SipRelay(Probe):
    """Unauthenticated INVITEs: a random extension, then an unassigned international number per prefix."""

    name = "sip-relay"
    risk = Risk.ACCESS
    phase = Phase.ASSESS
    services = frozenset({"sip", "sips"})
    description = "Unauthenticated INVITE to a random extension and to +999 numbers; CANCEL/ACK/BYE at once"
    deadline_s: ClassVar[float | None] = 60.0

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """One SIP service (UDP first) on a host identified as a PBX or gateway (an INVITE to a phone would ring it)."""
        return sipnet.access_targets(host, servers_only=True)

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Baseline first; every dialog ends before the next starts."""
        assert target.service is not None
        out: list[Observation] = []
        baseline = "ea" + secrets.token_hex(4)  # letters: no dial plan routes it as a number
        profile = ctx.profile.sip_dial_prefixes if ctx.profile is not None else ()
        ours = ctx.config.options(SipCallOptions).sip_dial_prefixes
        prefixes = tuple(dict.fromkeys((*ours, *profile)))[:MAX_PREFIXES]
        plan = [(baseline, "baseline"), *((n, "international") for n in numbers(prefixes))]
        for number, purpose in plan:
            outcome, dialog = await invite(target, number, ctx)
            out.append(
                SipCallTest(
                    target.service,
                    number=number,
                    purpose=purpose,
                    outcome=outcome,
                    statuses=tuple(dialog.statuses),
                    transcript=tuple(dialog.transcript),
                    ended=dialog.ended,
                )
            )
        return out


@register
class SipRegisterNoAuth(Probe):
    """A REGISTER with no credentials and no Contact, for a random user."""

    name = "sip-register"
    risk = Risk.ACCESS
    # READ, before ASSESS: it asks nothing of any account, and the INVITE and secret tests
    # need its answer to tell a registrar (a PBX whose Server header names nothing) from a phone.
    phase = Phase.READ
    services = frozenset({"sip", "sips"})
    description = "REGISTER without credentials or Contact (a binding query) for a random user"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The one SIP service that answered OPTIONS first (UDP before TCP before TLS)."""
        return sipnet.access_targets(host, servers_only=False)

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One transaction, retransmitted on timer E; the final reply is kept."""
        user = "ea" + secrets.token_hex(4)
        msg = await register_once(target, ctx, user)
        return [SipRegisterTest(target.service, user=user, status=msg.status or 0, reason=msg.reason[:100])]


@register
class SipRefer(Probe):
    """An out-of-dialog REFER asking the PBX to call an unassigned international number (--intrusive)."""

    name = "sip-refer"
    risk = Risk.INTRUSIVE
    phase = Phase.ASSESS
    services = frozenset({"sip", "sips"})
    description = "Unauthenticated REFER (transfer) to a +999 number: accepted means a stranger can make it dial out"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The one SIP service the INVITE tests use, on a PBX or gateway."""
        return sipnet.access_targets(host, servers_only=True)

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One REFER; 202/200 is a transfer the PBX took from nobody (it will try to dial a spare country code)."""
        assert target.service is not None
        number = numbers(("+",))[0]
        host = sipmsg.host_port(target.address, target.service.port)
        referee = "ea" + secrets.token_hex(4)
        refer_to = (f"Refer-To: <sip:{number}@{host}>", f"Referred-By: <sip:{referee}@{host}>")
        msg = await ask(target, ctx, "REFER", referee, extra=refer_to, contact=True)
        status = msg.status or 0
        if 200 <= status < 300:
            outcome = "accepted"
        elif status in (401, 407):
            outcome = "challenged"
        else:
            outcome = "rejected"
        return [
            SipCallTest(
                target.service,
                number=number,
                purpose="transfer",
                outcome=outcome,
                statuses=(status,),
                transcript=("> REFER", f"< {status} {msg.reason[:60]} (REFER)"),
                ended="final reply",
            )
        ]
