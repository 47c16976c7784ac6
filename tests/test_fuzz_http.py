"""Fuzz: HTTP header helpers (probes/http.py), SSDP and the UPnP description (probes/upnp.py), IPP
responses (probes/ipp.py), PJL INFO ID (probes/pjl.py) and the clock parsers (probes/clock.py).

Each either parses into something bounded or raises MalformedResponse (the
HTTP helpers never raise); a date is read only when it says exactly one
instant, in the one RFC 1123 form.
"""

from __future__ import annotations

import email.utils
import struct
import time

from hypothesis import example, given
from hypothesis import strategies as st

from probes import clock, http, ipp, pjl, upnp
from profiles.errors import MalformedResponse
from tests.fuzzing import budget, inputs, mutated, parse_or_malformed

PAGE = b'<html><head><TITLE lang="en">\n  Router  Login </title></head><body><input type="password"></body></html>'


@given(inputs((PAGE,), max_size=1024))
@budget(300)
def test_parse_title(body: bytes) -> None:
    title = http.parse_title(body)
    assert title is None or (0 < len(title) <= 200 and title == title.lstrip() and "  " not in title)


def test_parse_title_is_linear() -> None:
    """'<title' 10,922 times (a 64 KiB body) cost 0.47 s of event loop with an unbounded attribute match."""
    started = time.perf_counter()
    assert http.parse_title(b"<title" * 10_922) is None
    assert time.perf_counter() - started < 0.15


@given(st.none() | st.text(max_size=300) | st.from_regex(r'\A(Basic|Digest) realm\s*=\s*"[^"]{0,250}"', fullmatch=True))
@budget(300)
def test_parse_auth(header: str | None) -> None:
    scheme, realm = http.parse_auth(header)
    assert scheme is None or (scheme == scheme.lower() and " " not in scheme)
    assert realm is None or len(realm) <= 200


SSDP = (
    b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: http://192.168.1.1:1900/rootDesc.xml\r\n"
    b"SERVER: Linux/3.14 UPnP/1.0 MiniUPnPd/2.1\r\nST: upnp:rootdevice\r\nUSN: uuid:abc::upnp:rootdevice\r\n\r\n"
)


@given(inputs((SSDP,), max_size=1024))
@budget(300)
def test_parse_ssdp(data: bytes) -> None:
    headers = parse_or_malformed(lambda: upnp.parse_ssdp(data))
    if headers is not None:
        assert data.split(b" ", 2)[1] == b"200"
        assert all(n == n.lower() and len(v) <= 2 * upnp.MAX_TEXT for n, v in headers.items())
        location = headers.get("location", "")
        assert isinstance(upnp.same_host(location, "192.168.1.1"), bool)


DESCRIPTION = (
    b'<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major></specVersion>'
    b"<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>"
    b"<friendlyName>Router</friendlyName><manufacturer>EdgeLab</manufacturer><modelName>EL-R100</modelName>"
    b"<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType></service>"
    b"</serviceList></device></root>"
)
DTD = '<!DOCTYPE root [<!ENTITY a "AAAA">]><root><deviceType>&a;</deviceType></root>'


@given(inputs((DESCRIPTION,), max_size=1024))
@example(DESCRIPTION.replace(b'version="1.0"', b'version="1.0" encoding="UTF-32"'))  # ValueError from expat
@budget(300)
def test_parse_description(body: bytes) -> None:
    desc = parse_or_malformed(lambda: upnp.parse_description(body))
    if desc is not None:
        assert desc["deviceType"]
        assert all(len(text) <= upnp.MAX_TEXT for texts in desc.values() for text in texts)


@given(st.sampled_from(("utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "latin-1")), st.booleans())
@example("utf-16", False)  # the DOCTYPE check looked for ASCII bytes: a UTF-16 document's entities were expanded
@budget(30)
def test_description_dtd_refused(encoding: str, declaration: bool) -> None:
    """The documented contract: a document with a DOCTYPE is refused, whatever its encoding."""
    text = (f'<?xml version="1.0" encoding="{encoding}"?>' if declaration else "") + DTD
    try:
        upnp.parse_description(text.encode(encoding))
    except MalformedResponse:
        return
    raise AssertionError(f"a DOCTYPE in {encoding} was parsed")


def _ipp_attr(tag: int, name: bytes, value: bytes) -> bytes:
    return struct.pack(">BH", tag, len(name)) + name + struct.pack(">H", len(value)) + value


IPP = (
    struct.pack(">BBHI", 2, 0, 0, 7)
    + bytes([ipp.TAG_OPERATION])
    + _ipp_attr(ipp.T_CHARSET, b"attributes-charset", b"utf-8")
    + bytes([ipp.TAG_PRINTER])
    + _ipp_attr(0x41, b"printer-make-and-model", b"EdgeLab MFP 9000")
    + _ipp_attr(ipp.T_URI, b"printer-uri-supported", b"ipp://192.0.2.5/ipp/print")
    + _ipp_attr(ipp.T_URI, b"", b"ipps://192.0.2.5/ipp/print")
    + _ipp_attr(ipp.T_KEYWORD, b"uri-authentication-supported", b"none")
    + _ipp_attr(0x22, b"printer-is-accepting-jobs", b"\x01")
    + _ipp_attr(0x23, b"printer-state", b"\x00\x00\x00\x03")
    + bytes([ipp.TAG_PRINTER])
    + _ipp_attr(ipp.T_URI, b"printer-uri-supported", b"ipp://192.0.2.5/printers/q")
    + bytes([ipp.TAG_END])
)


@given(inputs((IPP,)))
@budget(500)
def test_ipp_response(data: bytes) -> None:
    got = parse_or_malformed(lambda: ipp.parse_response(data))
    if got is not None:
        assert ipp.TAG_END in data
        values = [v for printer in got.printers for vs in printer.values() for v in vs]
        assert len(values) <= ipp.MAX_VALUES
        assert all(len(v) <= ipp.MAX_TEXT for v in values)
        assert all(p.startswith("/") for p in ipp.queue_paths(got))
        assert len(ipp.queue_paths(got)) <= ipp.MAX_QUEUES


PJL = b'\x1b%-12345X@PJL\r\n@PJL INFO ID\r\n"EdgeLab LaserJet 9000"\r\n\x0c\x1b%-12345X'


@given(inputs((PJL,), max_size=pjl.MAX_REPLY + 64))
@budget(300)
def test_pjl_info_id(data: bytes) -> None:
    model = parse_or_malformed(lambda: pjl.parse_info_id(data))
    if model is not None:
        assert 0 < len(model) <= 200 and not model.upper().startswith("@PJL")


DATE = "Sun, 06 Nov 1994 08:49:37 GMT"


@st.composite
def dates(draw: st.DrawFn) -> str:
    """An IMF-fixdate with a few characters replaced or inserted (any script's digits among them)."""
    text = list(email.utils.formatdate(draw(st.integers(0, 2**35)), usegmt=True))
    chars = st.characters(codec="utf-8") | st.sampled_from("0123456789 ,:")
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(text) - 1))
        op = draw(st.sampled_from(("replace", "insert", "script")))
        if op == "replace":
            text[pos] = draw(chars)
        elif op == "insert":
            text.insert(pos, draw(chars))
        elif text[pos] in "0123456789":  # the same digit in another script: the same number to int()
            zero = draw(st.sampled_from("٠۰߀०০੦૦୦௦౦೦൦෦๐໐༠၀႐០᠐᥆０"))
            text[pos] = chr(ord(zero) + int(text[pos]))
    return "".join(text)


@given(dates() | st.text(max_size=80))
@example("Sun, ٠٦ Nov 1994 08:49:37 GMT")  # Arabic-Indic digits were read as a date
@example(DATE.replace("37", "60"))
@budget(400)
def test_parse_http_date(text: str) -> None:
    unix = parse_or_malformed(lambda: clock.parse_http_date(text))
    if unix is not None:
        # exactly one instant in exactly one form: the date formats back to the text (a leap second reads as :59)
        assert email.utils.formatdate(unix, usegmt=True) == text.strip().replace(":60 GMT", ":59 GMT")


DATE_AND_TIME = bytes.fromhex("07ca0b0a0d1e0f032b0900")


@given(st.binary(max_size=16) | mutated((DATE_AND_TIME, DATE_AND_TIME[:8]), max_ops=2))
@budget(300)
def test_parse_date_and_time(raw: bytes) -> None:
    unix = parse_or_malformed(lambda: clock.parse_date_and_time(raw))
    if unix is not None:
        assert len(raw) in (8, 11)
        assert -15 * 3600 <= unix <= 253_402_300_800 + 15 * 3600  # 1970 to the end of 9999, give or take a zone
        assert 1970 <= int.from_bytes(raw[:2], "big") <= 9999
