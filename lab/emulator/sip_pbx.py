"""The SIP side of the PBX and phone personas: Asterisk's observable behaviour, weak or hardened.

What the spec controls (all visible on the wire, as a scanner sees it):
- ``guest_calls``: an INVITE without credentials reaches the guest dialplan
  (Asterisk ``allowguest=yes``); numbers starting with a ``guest_routes`` prefix
  go out an "international trunk": 100 Trying, 183 Session Progress, and 200 OK
  after ``answer_after_s`` seconds (default 1.5) unless CANCELled. Other numbers get 404.
- ``auth_reject_uniform``: unknown users and wrong passwords get the same 401
  (``alwaysauthreject=yes``); otherwise unknown users get 404 and wrong
  passwords 403, which lets a scanner enumerate extensions.
- ``extensions``: user -> password for digest REGISTER/INVITE (MD5, RFC 2617).

Every call is kept in ``calls`` so tests can prove a scanner never leaves one up.
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

from probes import sipmsg

if TYPE_CHECKING:
    from lab.emulator.devices import DeviceSpec

REALM = "asterisk"
ALLOW = "INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE, REGISTER"
USER_RE = re.compile(r"sips?:([^@;>]+)@")


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


class SipPersona:
    """Answers SIP requests for one emulated PBX or phone."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.calls: dict[str, Call] = {}
        self.registrations: dict[str, str] = {}  # user -> contact
        self.transfers: list[str] = []  # Refer-To of REFERs accepted
        self._nonces: set[str] = set()
        self._answer_timers: dict[str, asyncio.TimerHandle] = {}

    @property
    def agent(self) -> str:
        """What the device says in User-Agent/Server."""
        spec = self.spec
        if spec.sip_user_agent:
            return spec.sip_user_agent
        return (
            f"EdgeLab Phone {spec.model} {spec.firmware}" if spec.persona == "phone" else f"EdgeLab PBX {spec.firmware}"
        )

    def handle(self, data: bytes, send: Callable[[bytes], None]) -> None:
        """One datagram in; zero or more replies out through ``send`` (some later, from a timer)."""
        msg = sipmsg.parse(data)
        if msg.is_response or msg.method is None:
            return
        method = msg.method
        if method == "OPTIONS":
            user = _user(msg.uri)
            if self.spec.options_reveal_users and user and user not in self.spec.extensions:
                send(self.reply(msg, 404, "Not Found"))  # res_pjsip: no such endpoint
            else:
                send(self.reply(msg, 200, "OK", [f"Allow: {ALLOW}", "Accept: application/sdp"]))
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

    def reply(self, msg: sipmsg.SipMessage, code: int, reason: str, extra: list[str] | None = None) -> bytes:
        """A response echoing Via/From/To/Call-ID/CSeq, with our To tag."""
        to = msg.get("to") or ""
        if ";tag=" not in to:
            to += ";tag=as" + _md5(msg.get("call-id") or "")[:8]
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in msg.values("via")]
        lines += [
            f"From: {msg.get('from')}",
            f"To: {to}",
            f"Call-ID: {msg.get('call-id')}",
            f"CSeq: {msg.get('cseq')}",
            f"Server: {self.agent}",
            f"Date: {device_date(self.spec.clock_skew_s)}",
            *(extra or []),
            "Content-Length: 0",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    # authentication

    def _challenge(self, msg: sipmsg.SipMessage) -> bytes:
        nonce = secrets.token_hex(8)
        self._nonces.add(nonce)
        if len(self._nonces) > 1000:
            self._nonces.pop()
        header = f'WWW-Authenticate: Digest algorithm=MD5, realm="{REALM}", nonce="{nonce}"'
        return self.reply(msg, 401, "Unauthorized", [header])

    def _authenticate(self, msg: sipmsg.SipMessage, user: str) -> tuple[bool, bytes | None]:
        """(authenticated, reply to send when not): digest check with Asterisk's reject rules."""
        known = user in self.spec.extensions
        header = msg.get("authorization") or msg.get("proxy-authorization")
        if header is None:
            if not known and not self.spec.auth_reject_uniform:
                return False, self.reply(msg, 404, "Not Found")
            return False, self._challenge(msg)
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', header))
        if not known or params.get("nonce") not in self._nonces:
            if not known and not self.spec.auth_reject_uniform:
                return False, self.reply(msg, 404, "Not Found")
            return False, self._challenge(msg)
        ha1 = _md5(f"{user}:{REALM}:{self.spec.extensions[user]}")
        ha2 = _md5(f"{msg.method}:{params.get('uri', '')}")
        if params.get("qop"):
            expected = _md5(f"{ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}")
        else:
            expected = _md5(f"{ha1}:{params['nonce']}:{ha2}")
        if params.get("response") == expected:
            return True, None
        if self.spec.auth_reject_uniform:
            return False, self._challenge(msg)
        return False, self.reply(msg, 403, "Forbidden")

    def _register(self, msg: sipmsg.SipMessage) -> bytes:
        if self.spec.persona == "phone":
            return self.reply(msg, 405, "Method Not Allowed", [f"Allow: {ALLOW.replace(', REGISTER', '')}"])
        user = _user(msg.get("to"))
        ok, rejection = self._authenticate(msg, user)
        if not ok:
            assert rejection is not None
            return rejection
        contact = msg.get("contact") or ""
        if not contact:  # RFC 3261 10.2.3: no Contact is a query of the bindings; nothing changes
            return self.reply(msg, 200, "OK")
        self.registrations[user] = contact
        return self.reply(msg, 200, "OK", [f"Contact: {contact};expires=60"])

    # calls

    def _invite(self, msg: sipmsg.SipMessage, send: Callable[[bytes], None]) -> None:
        call_id = msg.get("call-id") or ""
        number = _user(msg.uri)
        call = self.calls.setdefault(call_id, Call(call_id, number))
        if self.spec.persona == "phone":
            call.rejected = 486
            send(self.reply(msg, 486, "Busy Here"))
            return
        authenticated = False
        if not self.spec.guest_calls:
            authenticated, rejection = self._authenticate(msg, _user(msg.get("from")))
            if not authenticated:
                assert rejection is not None
                call.rejected = int(rejection.split(b" ", 2)[1])
                send(rejection)
                return
        if any(number.startswith(p) for p in self.spec.guest_routes) or (authenticated and number):
            if self.spec.answer_after_s <= 0:  # answers at once: no provisional reply to CANCEL on
                self._answer(msg, call, send)
                return
            send(self.reply(msg, 100, "Trying"))
            send(self.reply(msg, 183, "Session Progress"))
            loop = asyncio.get_running_loop()
            self._answer_timers[call_id] = loop.call_later(self.spec.answer_after_s, self._answer, msg, call, send)
            return
        call.rejected = 404
        send(self.reply(msg, 404, "Not Found"))

    def _answer(self, msg: sipmsg.SipMessage, call: Call, send: Callable[[bytes], None]) -> None:
        self._answer_timers.pop(call.call_id, None)
        if call.cancelled:
            return
        call.answered = True
        send(self.reply(msg, 200, "OK", [f"Contact: <sip:{call.number}@{self.spec.address}>"]))

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
        send(self.reply(msg, 200, "OK"))
        cseq = (msg.get("cseq") or "1 CANCEL").split()[0]
        headers = [(n, f"{cseq} INVITE" if n == "cseq" else v) for n, v in msg.headers]
        invite = sipmsg.SipMessage(method="INVITE", headers=headers)
        send(self.reply(invite, 487, "Request Terminated"))

    def _refer(self, msg: sipmsg.SipMessage, send: Callable[[bytes], None]) -> None:
        """An out-of-dialog transfer request: taken from anyone when ``refer_allowed`` (then noted, never dialled)."""
        if not self.spec.refer_allowed:
            send(self._challenge(msg) if self.spec.extensions else self.reply(msg, 403, "Forbidden"))
            return
        self.transfers.append(msg.get("refer-to") or "")
        send(self.reply(msg, 202, "Accepted"))

    def close(self) -> None:
        """Cancel pending answer timers."""
        for timer in self._answer_timers.values():
            timer.cancel()
        self._answer_timers.clear()
