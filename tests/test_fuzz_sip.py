"""Fuzz: the SIP message parser, its stream framing and the Digest challenge reader (probes/sip/sipmsg.py).

Any bytes either parse into a message that keeps the parser's bounds and
contract (via, call-id and cseq present, a body no longer than what arrived
and exactly Content-Length when one is given) or raise MalformedResponse.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from probes.sip import sipmsg
from tests.fuzzing import budget, inputs, parse_or_malformed

OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKabc;rport=5060\r\n"
    b"From: <sip:edgeaudit@192.0.2.9>;tag=1\r\nTo: <sip:192.0.2.1>;tag=2\r\n"
    b"Call-ID: abc@192.0.2.9\r\nCSeq: 1 OPTIONS\r\nServer: Asterisk PBX 16.2\r\n"
    b'Allow: INVITE, ACK, "a,b" <sip:x,y>\r\nContent-Length: 4\r\n\r\nv=0\n'
)
CHALLENGE = (
    b"SIP/2.0 401 Unauthorized\r\nv: SIP/2.0/TCP h;branch=z9hG4bKx\r\ni: c1\r\nCSeq: 2 REGISTER\r\n"
    b'WWW-Authenticate: Digest realm="asterisk", nonce="6a3f", algorithm=MD5, qop="auth,auth-int",\r\n'
    b' opaque="op"\r\nl: 0\r\n\r\n'
)
REQUEST = b"OPTIONS sip:100@192.0.2.1 SIP/2.0\nVia: SIP/2.0/UDP a\nCall-ID: q\nCSeq: 7 OPTIONS\n\nbody-without-length"
SEEDS = (OK, CHALLENGE, REQUEST)


def _check(msg: sipmsg.SipMessage, data: bytes, stream: bool) -> None:
    assert msg.is_response != (msg.method is not None)
    if msg.status is not None:
        assert 100 <= msg.status <= 699
    assert len(msg.reason) <= 200
    assert len(msg.headers) <= sipmsg.MAX_HEADERS
    assert len(msg.body) <= len(data)
    for name in ("via", "call-id", "cseq"):
        assert msg.get(name) is not None
    length = msg.get("content-length")
    if length is None:
        assert not stream
    else:
        assert length.isascii() and length.isdigit()  # RFC 3261 DIGIT, not any script's
        assert len(msg.body) == int(length)
    # what the probes do with a reply next must not raise either
    for name, _ in msg.headers:
        for value in msg.values(name):
            sipmsg.param(value, "branch")
    tx = sipmsg.Transaction("z9hG4bKabc", "abc@192.0.2.9", "1", 1, "OPTIONS")
    tx.matches(msg)


_numbers = st.text(st.characters(categories=("Nd", "No", "Zs")), min_size=1, max_size=8)  # any script's digits


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """Well-framed SIP messages whose header values (Content-Length, CSeq ...) are anything, digits of any script."""
    start = draw(st.sampled_from(("SIP/2.0 200 OK", "SIP/2.0 401 Unauthorized", "REGISTER sip:h SIP/2.0")))
    names = st.sampled_from(("Via", "v", "Call-ID", "i", "CSeq", "Content-Length", "l", "Date", "Retry-After"))
    values = st.text(max_size=30) | _numbers | st.integers(0, 10**7).map(str)
    headers = draw(st.lists(st.tuples(names, values), max_size=10))
    base = [("Via", "SIP/2.0/UDP h;branch=z9hG4bKabc"), ("Call-ID", "abc@192.0.2.9"), ("CSeq", "1 OPTIONS")]
    text = "\r\n".join([start, *(f"{n}: {v}" for n, v in [*base, *headers])]) + "\r\n\r\n"
    return text.encode() + draw(st.binary(max_size=32))


@given(inputs(SEEDS) | messages(), st.booleans())
@example(OK.replace(b"Content-Length: 4", "Content-Length: ²".encode()), False)  # int() ValueError
@example(OK.replace(b"Content-Length: 4", "Content-Length: ٤".encode()), False)  # an Arabic-Indic 4
@budget(700)
def test_parse(data: bytes, stream: bool) -> None:
    msg = parse_or_malformed(lambda: sipmsg.parse(data, stream=stream))
    if msg is not None:
        _check(msg, data, stream)


@given(inputs(SEEDS))
@budget(300)
def test_content_length(data: bytes) -> None:
    head = data.split(b"\r\n\r\n", 1)[0]
    length = parse_or_malformed(lambda: sipmsg.content_length(head))
    if length is not None:
        assert 0 <= length <= 999_999


_token = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=12)
_value = st.text(max_size=40) | _token


@st.composite
def challenges(draw: st.DrawFn) -> str:
    """Digest challenges: mostly well-formed parameter lists, with arbitrary values and stray text."""
    names = st.sampled_from(("realm", "nonce", "algorithm", "qop", "opaque", "stale", "domain")) | _token
    params = draw(st.lists(st.tuples(names, _value, st.booleans()), max_size=8))
    if draw(st.booleans()):  # a realm and a nonce, so most challenges get past the first check
        params = [("realm", draw(_value), True), ("nonce", draw(_value), True), *params]
    rest = ", ".join(f'{n}="{v}"' if quoted else f"{n}={v}" for n, v, quoted in params)
    scheme = draw(st.sampled_from(("Digest", "digest", "Basic", "")) | _token)
    return draw(st.sampled_from((f"{scheme} {rest}", f" {scheme}  {rest}", rest))) + draw(st.text(max_size=8))


@given(challenges() | st.text(max_size=300))
@example('Digest realm="r", nonce="n\rInjected: x"')  # a bare CR echoed into our own request
@example('Digest realm="r\x00", nonce="n"')
@budget(400)
def test_digest_authorization(challenge: str) -> None:
    answer = parse_or_malformed(lambda: sipmsg.digest_authorization(challenge, "REGISTER", "sip:h", "100", "pw"))
    if answer is not None:
        assert answer.startswith("Digest ")
        # the answer is one header value of our own request: a device's text must not add lines or controls
        assert answer.isprintable(), answer
        assert len(answer) <= 2 * len(challenge) + 400
