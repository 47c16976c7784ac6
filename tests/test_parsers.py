"""Bounded hand-written parsers reject malformed, truncated and oversized input."""

from __future__ import annotations

import pytest

from probes.ntp import build_request, parse_reply
from probes.sip import sipmsg
from probes.snmp import build_v3_discovery, parse_v3_message
from probes.wire import ber
from profiles.errors import MalformedResponse

GOOD_SIP = (
    b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport, SIP/2.0/UDP 10.0.0.9;branch=x\r\n"
    b"Via: SIP/2.0/TCP 10.0.0.8;branch=y\r\ni: call-1@x\r\nCSeq: 1 OPTIONS\r\nf: <sip:a@b>;tag=1\r\n"
    b"t: <sip:c@d>\r\nUser-Agent: Foo\r\n  Bar\r\nAllow: INVITE, ACK,\r\n OPTIONS\r\nl: 4\r\n\r\nbodyEXTRA"
)


def test_sip_compact_folding_and_many_vias() -> None:
    msg = sipmsg.parse(GOOD_SIP)
    assert msg.status == 200 and msg.get("call-id") == "call-1@x"
    assert len(msg.values("via")) == 3 and sipmsg.param(msg.values("via")[0], "branch") == "z9hG4bKabc"
    assert msg.get("user-agent") == "Foo Bar"
    assert msg.values("allow") == ["INVITE", "ACK", "OPTIONS"]
    assert msg.body == b"body"  # datagram bytes past Content-Length are discarded


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"SIP/2.0 200 OK\r\n",  # no end of headers
        b"HTTP/1.1 200 OK\r\nVia: x\r\nCall-ID: 1\r\nCSeq: 1 A\r\n\r\n",
        b"SIP/2.0 999 Nope\r\nVia: x\r\nCall-ID: 1\r\nCSeq: 1 A\r\n\r\n",
        b"SIP/2.0 200 OK\r\n folded first\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: x\r\nCall-ID: 1\r\nCSeq: 1 A\r\nContent-Length: 10\r\n\r\nshort",
        b"SIP/2.0 200 OK\r\nVia: x\r\nCall-ID: 1\r\nCSeq: 1 A\r\nContent-Length: -1\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: x\r\nCall-ID: 1\r\nCSeq: 1 A\r\nBad Header\r\n\r\n",
        b"SIP/2.0 200 OK\r\nCall-ID: 1\r\nCSeq: 1 A\r\n\r\n",  # no Via
        b"SIP/2.0 200 OK\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
        b"SIP/2.0 200 OK\r\nVia: " + b"a" * 9000 + b"\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: x\r\n\xff\xfe: y\r\n\r\n",
        b"X" * 70_000,
    ],
)
def test_sip_rejects_malformed(data: bytes) -> None:
    with pytest.raises(MalformedResponse):
        sipmsg.parse(data)


def test_sip_stream_requires_content_length() -> None:
    raw = b"SIP/2.0 200 OK\r\nVia: x\r\nCall-ID: 1\r\nCSeq: 1 A\r\n\r\n"
    assert sipmsg.parse(raw).status == 200
    with pytest.raises(MalformedResponse):
        sipmsg.parse(raw, stream=True)


def test_sip_transaction_matching() -> None:
    tx = sipmsg.Transaction.new("OPTIONS", "127.0.0.1")
    req = sipmsg.build_options(tx, "127.0.0.2", 5060, ("127.0.0.1", 40000), "UDP")
    parsed = sipmsg.parse(req)
    vias = parsed.values("via")
    reply = (f"SIP/2.0 200 OK\r\nVia: {vias[0]}\r\nCall-ID: {tx.call_id}\r\nCSeq: 1 OPTIONS\r\n\r\n").encode()
    assert tx.matches(sipmsg.parse(reply))
    other = reply.replace(tx.branch.encode(), b"z9hG4bKother")
    assert not tx.matches(sipmsg.parse(other))
    wrong_cseq = reply.replace(b"1 OPTIONS", b"1 INVITE")
    assert not tx.matches(sipmsg.parse(wrong_cseq))


def _ntp_reply(origin: int, mode: int = 4, stratum: int = 2, leap: int = 0) -> bytes:
    import struct

    return struct.pack(
        "!BBbb4s4s4sQQQQ",
        (leap << 6) | (4 << 3) | mode,
        stratum,
        6,
        -20,
        b"\0" * 4,
        b"\0" * 4,
        b"\x7f\0\0\1",
        0,
        origin,
        origin,
        origin,
    )


def test_ntp_reply_parsing_and_rejections() -> None:
    origin = 0xE000_0000_0000_1234
    info = parse_reply(_ntp_reply(origin), origin, 0.0)
    assert info.stratum == 2 and info.synchronized
    assert not parse_reply(_ntp_reply(origin, stratum=16, leap=3), origin, 0.0).synchronized
    with pytest.raises(MalformedResponse, match="bytes"):
        parse_reply(_ntp_reply(origin)[:47], origin, 0.0)
    with pytest.raises(MalformedResponse, match="mode"):
        parse_reply(_ntp_reply(origin, mode=3), origin, 0.0)
    with pytest.raises(MalformedResponse, match="origin"):
        parse_reply(_ntp_reply(origin + 1), origin, 0.0)
    with pytest.raises(MalformedResponse, match="large"):
        parse_reply(_ntp_reply(origin) + b"\0" * 2000, origin, 0.0)
    assert len(build_request(origin)) == 48


def test_ber_roundtrip_and_bounds() -> None:
    msg = build_v3_discovery(1234, 99)
    msg_id, engine, tag, rid = parse_v3_message(msg)
    assert (msg_id, engine, tag, rid) == (1234, b"", ber.GET_REQUEST, 99)
    for cut in range(1, len(msg)):
        with pytest.raises(MalformedResponse):
            parse_v3_message(msg[:cut])
    with pytest.raises(MalformedResponse, match="trailing"):
        parse_v3_message(msg + b"\0")
    with pytest.raises(MalformedResponse):
        ber.Reader(b"\x30\x85\x01\x00\x00\x00\x00").read()  # 5 length octets
    assert ber.dec_oid(ber.enc_oid("1.3.6.1.4.1.99999.1")[2:]) == "1.3.6.1.4.1.99999.1"
    with pytest.raises(MalformedResponse):
        ber.dec_oid(b"\x2b\x86")  # ends inside an arc
