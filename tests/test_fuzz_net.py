"""Fuzz: DHCP replies (probes/dhcp.py), the rtnetlink route reply (probes/wire/route.py), the syslog message
check (scanner/syslog_listen.py) and what the DNS probe does with a datagram (probes/dns_query.py).

DHCP raises only MalformedResponse; route.parse_reply only ValueError (its
documented error, which the lookup turns into "not on-link"); is_syslog
only answers; a DNS datagram either is a message or a DNSException, the one
error the probe's accept() catches (dnspython's parser is not ours, the
catch is).
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import dns.exception
import dns.message
import dns.rrset
from hypothesis import example, given

from probes import dhcp, dns_query
from probes.wire import route
from scanner import syslog_listen
from tests.fuzzing import budget, inputs, parse_or_malformed


def _offer(options: bytes) -> bytes:
    fixed = struct.pack(">BBBBIHH", 2, 1, 6, 0, 0xDEADBEEF, 0, 0x8000) + bytes(16) + bytes(16) + bytes(192)
    return fixed + dhcp.MAGIC + options


OFFER = _offer(
    bytes([53, 1, 2, 54, 4, 192, 168, 1, 1, 6, 8, 192, 168, 1, 1, 8, 8, 8, 8, 3, 4, 192, 168, 1, 1])
    + bytes([15, 9]) + b"lan.local" + bytes([51, 4, 0, 1, 81, 128, 0, 0, 255, 0, 0])
)  # fmt: skip
DHCP_SEEDS = (OFFER, _offer(bytes([53, 1, 5, 6, 4, 10, 0, 0, 1, 6, 4, 10, 0, 0, 2, 255])))


@given(inputs(DHCP_SEEDS))
@budget(500)
def test_dhcp_reply(payload: bytes) -> None:
    reply = parse_or_malformed(lambda: dhcp.parse_reply(payload, "192.168.1.1"))
    if reply is not None:
        assert dhcp.MIN_REPLY <= len(payload) <= dhcp.MAX_REPLY
        assert b"\xff" in payload[240:]  # the end option is required
        assert 4 * (len(reply.dns_servers) + len(reply.routers)) <= len(payload) - 240
        assert len(reply.domain) <= 253
        assert reply.lease_s is None or 0 <= reply.lease_s < 2**32


def _netlink(kind: int, body: bytes, seq: int = 1) -> bytes:
    return route._NLMSG_HDR.pack(route._NLMSG_HDR.size + len(body), kind, 0, seq, 0) + body


def _attr(kind: int, value: bytes) -> bytes:
    raw = route._RTATTR.pack(route._RTATTR.size + len(value), kind) + value
    return raw + bytes(route._align(len(raw)) - len(raw))


ROUTE = _netlink(
    route._RTM_NEWROUTE,
    route._RTMSG.pack(socket.AF_INET, 32, 0, 0, 254, 2, 0, route._RTN_UNICAST, 0)
    + _attr(route._RTA_DST, bytes([192, 0, 2, 7]))
    + _attr(route._RTA_OIF, struct.pack("=I", 1))
    + _attr(route._RTA_PREFSRC, bytes([192, 0, 2, 1]))
    + _attr(route._RTA_GATEWAY, bytes([192, 0, 2, 254])),
)
ROUTE_SEEDS = (ROUTE, _netlink(route._NLMSG_ERROR, struct.pack("=i", -101) + bytes(16)))


@given(inputs(ROUTE_SEEDS))
@example(_netlink(route._NLMSG_ERROR, struct.pack("=i", -(2**31))))  # os.strerror(2**31): OverflowError
@budget(400)
def test_route_reply(data: bytes) -> None:
    try:
        got = route.parse_reply(data, 1)
    except ValueError:
        return
    assert got.on_link == (got.gateway is None and not got.reason)
    assert len(got.reason) <= 200


SYSLOG_SEEDS = (
    b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick",
    b"<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!\n",
    b"<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.",
)


@given(inputs(SYSLOG_SEEDS, max_size=600))
@budget(400)
def test_is_syslog(message: bytes) -> None:
    if syslog_listen.is_syslog(message):
        end = message.index(b">")
        assert message[:1] == b"<" and 0 <= int(message[1:end]) <= 191


def _dns_answer() -> bytes:
    query = dns.message.make_query("example.com", "A", want_dnssec=True)
    query.id = 0x4242
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text("example.com.", 60, "IN", "A", "192.0.2.80", "192.0.2.81"))
    reply.answer.append(dns.rrset.from_text("example.com.", 60, "IN", "TXT", '"v=spf1 -all"'))
    return bytes(reply.to_wire())


QUERY = dns.message.make_query("example.com", "A", want_dnssec=True)
QUERY.id = 0x4242


@given(inputs((_dns_answer(),), max_size=600))
@budget(500)
def test_dns_datagram(data: bytes) -> None:
    """What the probe's accept() does: a DNSException is the only error it catches, so the only one allowed."""
    reply: Any
    try:
        reply = dns.message.from_wire(data, ignore_trailing=True)
    except dns.exception.DNSException:
        return
    if QUERY.is_response(reply):
        found = dns_query.addresses(reply)
        assert len(found) <= len(data) // 4
