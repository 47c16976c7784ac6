"""The SIP side of the PBX and phone personas: a real Asterisk 20 (chan_sip) as recorded, weak or hardened.

The behaviour follows ../shared/real-world/asterisk-20-chan_sip/ (tests/test_sip_replay.py
replays it against this persona). What the spec controls, all visible on the wire:
- ``guest_calls`` (``allowguest=yes``): an INVITE without credentials reaches the
  guest dial plan. A number matching a ``guest_routes`` prefix goes out a trunk:
  100 Trying, 180 Ringing and 183 Session Progress (with SDP) at once, then 503
  when the dial plan's Dial times out (``DIAL_TIMEOUT_S``), or 200 after
  ``answer_after_s`` when that is set and shorter; a CANCEL gets 487, then its 200.
  Other numbers get 404 (Asterisk logs FailedACL, no_extension_match).
- ``auth_reject_uniform`` (``alwaysauthreject=yes``): an unknown user is challenged
  like a real one and refused with 403 after the answer; otherwise it gets 404
  (REGISTER: "Not found", as chan_sip spells it) without a challenge.
- ``extensions``: user -> secret for digest REGISTER/INVITE (MD5, RFC 2617, no qop).
  The nonce belongs to the dialog (Call-ID) it was sent in and is taken once: an
  answer with another dialog's nonce, or one already used, gets a fresh 401 (no
  ``stale``), never 403; a checked answer gets 200 (right) or 403 (wrong).
- ``sip_dialplan``: the guest context's extension patterns (``_X.``, ``100``...);
  OPTIONS sip:USER@ answers 200 when one matches, 404 otherwise. Default: each
  extension and ``_<prefix>.`` for each guest route. ``options_reveal_users``
  instead answers by the account list (res_pjsip: 404 for no such endpoint).

Every call is kept in ``calls`` and every security event Asterisk would log in
``events`` so tests can prove a scanner never leaves a call up or locks an account.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from probes.sip import sipmsg

if TYPE_CHECKING:
    from lab.emulator.spec import DeviceSpec

REALM = "asterisk"
ALLOW = "INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE"  # chan_sip's list
SUPPORTED = "replaces, timer"
DIAL_TIMEOUT_S = 4.0  # the recorded dial plan's Dial(..., 4): a dead trunk gives the guest 503 at ~4 s
USER_RE = re.compile(r"sips?:([^@;>]+)@")
MAX_DIALOGS = 1000  # challenged dialogs remembered (the oldest are forgotten first)


@dataclass
class Call:
    """One INVITE transaction and what became of it."""

    call_id: str
    number: str
    answered: bool = False
    cancelled: bool = False
    acked: bool = False
    ended: bool = False  # BYE received after an answer
    rejected: int | None = None  # final status when not answered


def _user(uri: str | None) -> str:
    match = USER_RE.search(uri or "")
    return match.group(1) if match else ""


def device_date(skew_s: float) -> str:
    """The device clock as an HTTP Date / SIP-date (RFC 1123 form, GMT)."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + skew_s))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def pattern_matches(pattern: str, number: str) -> bool:
    """Whether an Asterisk extension pattern matches a number (``_`` patterns: X N Z [..] . !; else literal)."""
    if not pattern.startswith("_"):
        return pattern == number
    out, i, body = [], 0, pattern[1:]
    while i < len(body):
        ch = body[i]
        if ch in "xX":
            out.append("[0-9]")
        elif ch in "zZ":
            out.append("[1-9]")
        elif ch in "nN":
            out.append("[2-9]")
        elif ch == ".":
            out.append(".+")
        elif ch == "!":
            out.append(".*")
        elif ch == "[" and "]" in body[i:]:
            end = body.index("]", i)
            out.append("[" + re.escape(body[i + 1 : end]).replace("\\-", "-") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(out), number) is not None


SDP = (
    "v=0\r\no=root 1 1 IN IP4 {a}\r\ns=Asterisk PBX\r\nc=IN IP4 {a}\r\nt=0 0\r\n"
    "m=audio 20894 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"
)


class SipPersona:
    """Answers SIP requests for one emulated PBX or phone."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.calls: dict[str, Call] = {}
        self.registrations: dict[str, str] = {}  # user -> contact
        self.transfers: list[str] = []  # Refer-To of REFERs accepted
        self.events: list[tuple[str, str]] = []  # (SecurityEvent, AccountID) as res_security_log writes them
        self.ban_after: int | None = None  # tests: after this many InvalidPassword, 403 to everything (fail2ban-like)
        self._dialog_nonce: dict[str, str] = {}  # Call-ID -> its unused nonce
        self._answer_timers: dict[str, asyncio.TimerHandle] = {}  # calls about to be answered or to time out
        if spec.sip_dialplan is not None:
            self.dialplan = list(spec.sip_dialplan)
        else:
            self.dialplan = [*spec.extensions, *(f"_{p}." for p in spec.guest_routes)]

    @property
    def agent(self) -> str:
        """What the device says in User-Agent/Server."""
        spec = self.spec
        if spec.sip_user_agent:
            return spec.sip_user_agent
        return (
            f"EdgeLab Phone {spec.model} {spec.firmware}" if spec.persona == "phone" else f"EdgeLab PBX {spec.firmware}"
        )

    def invalid_passwords(self, account: str) -> int:
        """InvalidPassword events of one account: what a lockout or fail2ban rule would count."""
        return sum(1 for event, who in self.events if event == "InvalidPassword" and who == account)

    def handle(self, data: bytes, send: Callable[[bytes], None]) -> None:
        """One datagram in; zero or more replies out through ``send`` (some later, from a timer)."""
        msg = sipmsg.parse(data)
        if msg.is_response or msg.method is None:
            return
        method = msg.method
        if self.ban_after is not None and len([e for e, _ in self.events if e == "InvalidPassword"]) >= self.ban_after:
            if method != "ACK":
                send(self.reply(msg, 403, "Forbidden"))
            return
        if method == "OPTIONS":
            send(self._options(msg))
        elif method == "REGISTER":
            send(self._register(msg))
        elif method == "INVITE":
            self._invite(msg, send)
        elif method == "REFER":
            self._refer(msg, send)
        elif method == "CANCEL":
            self._cancel(msg, send)
        elif method == "ACK":
            call = self.calls.get(msg.get("call-id") or "")
            if call is not None:
                call.acked = True
        elif method == "BYE":
            call = self.calls.get(msg.get("call-id") or "")
            if call is not None and call.answered:
                call.ended = True
                send(self.reply(msg, 200, "OK"))
            else:
                send(self.reply(msg, 481, "Call/Transaction Does Not Exist"))
        else:
            send(self.reply(msg, 501, "Not Implemented"))

    def reply(
        self,
        msg: sipmsg.SipMessage,
        code: int,
        reason: str,
        extra: list[str] | None = None,
        body: str = "",
        *,
        tag: bool = True,
    ) -> bytes:
        """A response echoing Via/From/To/Call-ID/CSeq, with our To tag (none on 100 Trying, as Asterisk)."""
        to = msg.get("to") or ""
        if tag and ";tag=" not in to:
            to += ";tag=as" + _md5(msg.get("call-id") or "")[:8]
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in msg.values("via")]
        lines += [
            f"From: {msg.get('from')}",
            f"To: {to}",
            f"Call-ID: {msg.get('call-id')}",
            f"CSeq: {msg.get('cseq')}",
            f"Server: {self.agent}",
            f"Allow: {ALLOW}",
            f"Supported: {SUPPORTED}",
            f"Date: {device_date(self.spec.clock_skew_s)}",
            *(extra or []),
            *(["Content-Type: application/sdp"] if body else []),
            f"Content-Length: {len(body.encode())}",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def _options(self, msg: sipmsg.SipMessage) -> bytes:
        """chan_sip answers OPTIONS sip:USER@ from the dial plan, not from the account list."""
        user = _user(msg.uri)
        if self.spec.options_reveal_users:
            known = not user or user in self.spec.extensions
        else:
            known = not user or any(pattern_matches(p, user) for p in self.dialplan)
        if not known:
            return self.reply(msg, 404, "Not Found")
        return self.reply(msg, 200, "OK", [f"Contact: <sip:{self.spec.address}>", "Accept: application/sdp"])

    # authentication

    def _challenge(self, msg: sipmsg.SipMessage, account: str) -> bytes:
        """A 401 with a fresh nonce, bound to this dialog (it replaces any nonce the dialog had)."""
        call_id = msg.get("call-id") or ""
        nonce = secrets.token_hex(4)  # chan_sip's nonces: 8 hex digits
        self._dialog_nonce.pop(call_id, None)
        self._dialog_nonce[call_id] = nonce
        while len(self._dialog_nonce) > MAX_DIALOGS:
            del self._dialog_nonce[next(iter(self._dialog_nonce))]
        self.events.append(("ChallengeSent", account))
        header = f'WWW-Authenticate: Digest algorithm=MD5, realm="{REALM}", nonce="{nonce}"'
        return self.reply(msg, 401, "Unauthorized", [header])

    def _authenticate(self, msg: sipmsg.SipMessage, user: str, account: str) -> tuple[bool, bytes | None]:
        """(authenticated, reply to send when not): chan_sip's digest check and reject rules."""
        known = user in self.spec.extensions
        if not known and not self.spec.auth_reject_uniform:
            self.events.append(("InvalidAccountID", account))
            reason = "Not found" if msg.method == "REGISTER" else "Not Found"  # chan_sip's spelling for each
            return False, self.reply(msg, 404, reason)
        header = msg.get("authorization") or msg.get("proxy-authorization")
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', header or ""))
        call_id = msg.get("call-id") or ""
        nonce = self._dialog_nonce.get(call_id)
        if header is None or nonce is None or params.get("nonce") != nonce:
            return False, self._challenge(msg, account)  # no answer, another dialog's nonce, or a used one
        del self._dialog_nonce[call_id]  # checked once, right or wrong
        secret = self.spec.extensions.get(user)
        ha1 = _md5(f"{params.get('username', '')}:{REALM}:{secret}")
        ha2 = _md5(f"{msg.method}:{params.get('uri', '')}")
        expected = _md5(f"{ha1}:{nonce}:{ha2}")
        if secret is not None and params.get("username") == user and params.get("response") == expected:
            self.events.append(("SuccessfulAuth", account))
            return True, None
        self.events.append(("InvalidPassword", account))  # also for an unknown user under alwaysauthreject
        if self.spec.sip_wrong_secret == "challenge":
            return False, self._challenge(msg, account)  # RFC 2617's way, as Kamailio's auth module refuses
        return False, self.reply(msg, 403, "Forbidden")

    def _register(self, msg: sipmsg.SipMessage) -> bytes:
        if self.spec.persona == "phone":
            return self.reply(msg, 405, "Method Not Allowed")
        user = _user(msg.get("to"))
        ok, rejection = self._authenticate(msg, user, user)
        if not ok:
            assert rejection is not None
            return rejection
        contact = msg.get("contact") or ""
        if not contact:  # RFC 3261 10.2.3: no Contact is a query of the bindings; nothing changes
            return self.reply(msg, 200, "OK", ["Expires: 120", "Contact: <>;expires=120"])
        self.registrations[user] = contact
        return self.reply(msg, 200, "OK", ["Expires: 120", f"Contact: {contact};expires=120"])

    # calls

    def _invite(self, msg: sipmsg.SipMessage, send: Callable[[bytes], None]) -> None:
        call_id = msg.get("call-id") or ""
        number = _user(msg.uri)
        call = self.calls.setdefault(call_id, Call(call_id, number))
        if self.spec.persona == "phone":
            call.rejected = 486
            send(self.reply(msg, 486, "Busy Here"))
            return
        if call_id in self._answer_timers:
            return  # a retransmission of a call in progress: its provisional replies were sent
        authenticated = False
        if not self.spec.guest_calls:
            from_uri = (msg.get("from") or "").partition("<")[2].partition(">")[0]
            authenticated, rejection = self._authenticate(msg, _user(msg.get("from")), from_uri)
            if not authenticated:
                assert rejection is not None
                call.rejected = int(rejection.split(b" ", 2)[1])
                send(rejection)
                return
        if any(number.startswith(p) for p in self.spec.guest_routes) or (authenticated and number):
            if self.spec.answer_after_s is not None and self.spec.answer_after_s <= 0:
                self._answer(msg, call, send)  # answered at once: no provisional reply to CANCEL on
                return
            contact = [f"Contact: <sip:{number}@{self.spec.address}>"]
            send(self.reply(msg, 100, "Trying", contact, tag=False))
            send(self.reply(msg, 180, "Ringing", contact))  # the dial plan's Ringing(), then Progress()
            send(self.reply(msg, 183, "Session Progress", contact, SDP.format(a=self.spec.address)))
            loop = asyncio.get_running_loop()
            after = self.spec.answer_after_s
            if after is not None and after < DIAL_TIMEOUT_S:
                self._answer_timers[call_id] = loop.call_later(after, self._answer, msg, call, send)
            else:
                self._answer_timers[call_id] = loop.call_later(DIAL_TIMEOUT_S, self._give_up, msg, call, send)
            return
        if self.spec.guest_calls:
            self.events.append(("FailedACL", number))  # ACLName="no_extension_match"
        call.rejected = 404
        send(self.reply(msg, 404, "Not Found"))

    def _answer(self, msg: sipmsg.SipMessage, call: Call, send: Callable[[bytes], None]) -> None:
        self._answer_timers.pop(call.call_id, None)
        if call.cancelled:
            return
        call.answered = True
        send(self.reply(msg, 200, "OK", [f"Contact: <sip:{call.number}@{self.spec.address}>"]))

    def _give_up(self, msg: sipmsg.SipMessage, call: Call, send: Callable[[bytes], None]) -> None:
        """The trunk never answered: Dial times out and the guest gets 503 (Hangup cause 34)."""
        self._answer_timers.pop(call.call_id, None)
        if not call.cancelled:
            call.rejected = 503
            send(self.reply(msg, 503, "Service Unavailable"))

    def _cancel(self, msg: sipmsg.SipMessage, send: Callable[[bytes], None]) -> None:
        call_id = msg.get("call-id") or ""
        call = self.calls.get(call_id)
        timer = self._answer_timers.pop(call_id, None)
        if call is None or call.answered or timer is None:
            send(self.reply(msg, 481, "Call/Transaction Does Not Exist"))
            return
        timer.cancel()
        call.cancelled = True
        call.rejected = 487
        cseq = (msg.get("cseq") or "1 CANCEL").split()[0]
        headers = [(n, f"{cseq} INVITE" if n == "cseq" else v) for n, v in msg.headers]
        invite = sipmsg.SipMessage(method="INVITE", headers=headers)
        send(self.reply(invite, 487, "Request Terminated"))  # as recorded: the 487 first, then the CANCEL's 200
        send(self.reply(msg, 200, "OK"))

    def _refer(self, msg: sipmsg.SipMessage, send: Callable[[bytes], None]) -> None:
        """An out-of-dialog transfer request: taken from anyone when ``refer_allowed`` (then noted, never dialled)."""
        if not self.spec.refer_allowed:
            user = _user(msg.get("from"))
            send(self._challenge(msg, user) if self.spec.extensions else self.reply(msg, 403, "Forbidden"))
            return
        self.transfers.append(msg.get("refer-to") or "")
        send(self.reply(msg, 202, "Accepted"))

    def close(self) -> None:
        """Cancel pending answer and dial timers."""
        for timer in self._answer_timers.values():
            timer.cancel()
        self._answer_timers.clear()
