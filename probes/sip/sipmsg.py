"""A bounded SIP message parser and the OPTIONS request builder (RFC 3261).

Rejects, with MalformedResponse: oversized messages, too many or too long
header lines, a bad start line, a Content-Length that is not a number or that
promises more body than arrived. Handles header folding and compact names.

Bytes after the Content-Length body: over UDP they are discarded, as RFC 3261
18.3 requires; on a stream the framing (probes.sip.sipnet) hands over exactly one
message, so extra bytes there are malformed, never silently dropped (they
would be the next message). Text, so not read with probes.wire.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace

from profiles.errors import MalformedResponse

MAX_MESSAGE = 65_535
MAX_HEADERS = 128
MAX_LINE = 8192

COMPACT = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
}
TOKEN_RE = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
STATUS_RE = re.compile(r"^SIP/2\.0 ([1-6]\d\d) ?(.*)$")
REQUEST_RE = re.compile(r"^([A-Za-z]+) (\S+) SIP/2\.0$")


@dataclass
class SipMessage:
    """A parsed SIP request or response."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_response(self) -> bool:
        """True for a status line."""
        return self.status is not None

    def get(self, name: str) -> str | None:
        """First value of a header (name case-insensitive, long form)."""
        name = name.lower()
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def values(self, name: str) -> list[str]:
        """Every comma-separated value of a header, across repeated header lines."""
        name = name.lower()
        out: list[str] = []
        for n, v in self.headers:
            if n == name:
                out.extend(_split_commas(v))
        return out


def _split_commas(value: str) -> list[str]:
    parts: list[str] = []
    depth_quote = False
    angle = 0
    cur: list[str] = []
    for ch in value:
        if ch == '"':
            depth_quote = not depth_quote
        elif ch == "<" and not depth_quote:
            angle += 1
        elif ch == ">" and not depth_quote and angle:
            angle -= 1
        if ch == "," and not depth_quote and not angle:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return [p for p in parts if p]


def parse(data: bytes, *, stream: bool = False) -> SipMessage:
    """Parse one SIP message. ``stream`` (TCP) forbids a missing Content-Length."""
    if len(data) > MAX_MESSAGE:
        raise MalformedResponse("SIP message too large")
    sep = data.find(b"\r\n\r\n")
    if sep >= 0:
        head, body = data[:sep], data[sep + 4 :]
    else:
        sep = data.find(b"\n\n")
        if sep < 0:
            raise MalformedResponse("SIP message without end of headers")
        head, body = data[:sep], data[sep + 2 :]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedResponse("SIP headers are not UTF-8") from exc
    lines = text.replace("\r\n", "\n").split("\n")
    if any(len(line) > MAX_LINE for line in lines):
        raise MalformedResponse("SIP header line too long")
    msg = SipMessage()
    start = lines[0].strip()
    if m := STATUS_RE.match(start):
        msg.status = int(m.group(1))
        msg.reason = m.group(2)[:200]
    elif m := REQUEST_RE.match(start):
        msg.method, msg.uri = m.group(1).upper(), m.group(2)
    else:
        raise MalformedResponse("bad SIP start line")
    unfolded: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not unfolded:
                raise MalformedResponse("folded line before any header")
            unfolded[-1] += " " + line.strip()
        elif line:
            unfolded.append(line)
    if len(unfolded) > MAX_HEADERS:
        raise MalformedResponse("too many SIP headers")
    for line in unfolded:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not TOKEN_RE.match(name):
            raise MalformedResponse("bad SIP header line")
        lname = name.lower()
        msg.headers.append((COMPACT.get(lname, lname), value.strip()))
    length_text = msg.get("content-length")
    if length_text is None:
        if stream:
            raise MalformedResponse("Content-Length missing on a stream transport")
        msg.body = body
    else:
        length = _length_value(length_text)
        if length > len(body):
            raise MalformedResponse("SIP body shorter than Content-Length")
        if stream and length < len(body):
            raise MalformedResponse("SIP message with bytes after its Content-Length body on a stream")
        msg.body = body[:length]  # RFC 3261 18.3: extra datagram bytes are discarded
    for required in ("via", "call-id", "cseq"):
        if msg.get(required) is None:
            raise MalformedResponse(f"SIP message without {required}")
    return msg


def _length_value(text: str) -> int:
    """A Content-Length value: 1*DIGIT (RFC 3261 20.14), ASCII only (str.isdigit takes '²'), at most 6 digits."""
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise MalformedResponse("bad Content-Length")
    return int(text)


def content_length(head: bytes) -> int | None:
    """Content-Length (or compact ``l``) of a header block, for stream framing; None when absent."""
    for line in head.split(b"\n")[1 : MAX_HEADERS + 1]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            return _length_value(value.strip().decode("latin-1"))
    return None


def param(header_value: str, name: str) -> str | None:
    """A ``;name=value`` parameter of a header value."""
    for part in header_value.split(";")[1:]:
        k, _, v = part.partition("=")
        if k.strip().lower() == name:
            return v.strip()
    return None


@dataclass(frozen=True)
class Transaction:
    """Identifiers of one client transaction; replies must match them."""

    branch: str
    call_id: str
    from_tag: str
    cseq: int
    method: str

    @classmethod
    def new(cls, method: str, local_host: str) -> Transaction:
        """Fresh random identifiers (branch carries the RFC 3261 magic cookie)."""
        return cls(
            branch="z9hG4bK" + secrets.token_hex(10),
            call_id=f"{secrets.token_hex(12)}@{local_host}",
            from_tag=secrets.token_hex(6),
            cseq=1,
            method=method,
        )

    def follow_up(self) -> Transaction:
        """The next request of the same dialog: same Call-ID and From tag, CSeq + 1, a new branch.

        How a challenge is answered (RFC 3261 22.2): a registrar such as chan_sip binds
        its nonce to the Call-ID that got it, so an answer in a new Call-ID is never checked.
        """
        return replace(self, branch="z9hG4bK" + secrets.token_hex(10), cseq=self.cseq + 1)

    def matches(self, msg: SipMessage) -> bool:
        """Whether a response belongs to this transaction (top Via branch, Call-ID, CSeq)."""
        if not msg.is_response:
            return False
        vias = msg.values("via")
        if not vias or param(vias[0], "branch") != self.branch:
            return False
        if msg.get("call-id") != self.call_id:
            return False
        cseq = (msg.get("cseq") or "").split()
        return len(cseq) == 2 and cseq[0] == str(self.cseq) and cseq[1].upper() == self.method


def host_port(host: str, port: int) -> str:
    """``host:port`` with IPv6 brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_request(
    method: str,
    uri: str,
    tx: Transaction,
    local: tuple[str, int],
    transport: str,
    *,
    to: str,
    from_uri: str | None = None,
    to_tag: str | None = None,
    branch: str | None = None,
    cseq: int | None = None,
    extra: tuple[str, ...] = (),
) -> bytes:
    """A body-less request in ``tx``'s dialog: its Call-ID and From tag; branch/CSeq overridable (CANCEL, ACK, BYE)."""
    lhost = host_port(*local)
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {lhost};branch={branch or tx.branch};rport",
        "Max-Forwards: 70",
        f"From: <{from_uri or f'sip:edgeaudit@{lhost}'}>;tag={tx.from_tag}",
        f"To: <{to}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {tx.call_id}",
        f"CSeq: {cseq if cseq is not None else tx.cseq} {method}",
        *extra,
        "User-Agent: edgeaudit/0.1",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def build_options(tx: Transaction, target: str, target_port: int, local: tuple[str, int], transport: str) -> bytes:
    """An OPTIONS request for ``tx`` (no body)."""
    lhost = host_port(*local)
    thost = host_port(target, target_port)
    return build_request(
        "OPTIONS",
        f"sip:{thost}",
        tx,
        local,
        transport,
        to=f"sip:{thost}",
        extra=(f"Contact: <sip:edgeaudit@{lhost}>", "Accept: application/sdp"),
    )


def digest_authorization(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    """An Authorization value answering a Digest challenge (RFC 2617/8760: MD5 or SHA-256, qop=auth or none)."""
    import hashlib

    scheme, _, rest = challenge.strip().partition(" ")
    if scheme.lower() != "digest":
        raise MalformedResponse(f"not a Digest challenge: {scheme[:20]!r}")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)\s*=\s*"?([^",]*)"?', rest)}
    realm, nonce = params.get("realm"), params.get("nonce")
    if realm is None or not nonce:
        raise MalformedResponse("Digest challenge without realm or nonce")
    if not all(v.isprintable() for v in (realm, nonce, params.get("opaque", ""))):
        # they are echoed into our own request: a CR or a control character there is not ours to send
        raise MalformedResponse("Digest challenge with a control character in realm, nonce or opaque")
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm not in ("MD5", "SHA-256"):
        raise MalformedResponse(f"unsupported Digest algorithm {algorithm[:20]}")

    def h(text: str) -> str:
        data = text.encode()
        if algorithm == "MD5":
            return hashlib.md5(data, usedforsecurity=False).hexdigest()
        return hashlib.sha256(data).hexdigest()

    ha1, ha2 = h(f"{user}:{realm}:{password}"), h(f"{method}:{uri}")
    fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"', f"algorithm={algorithm}"]
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        response = h(f"{ha1}:{nonce}:{ha2}")
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join([*fields, f'response="{response}"'])
