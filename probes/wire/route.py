"""Which addresses are on the scanner's link: the kernel's own route lookup (rtnetlink RTM_GETROUTE).

ARP decides presence only for an address the kernel would reach without a gateway; an address
behind a router never answers ARP, so judging it "down" for want of an ARP reply would drop every
host of a routed subnet (another floor, a branch office, a DMZ). The lookup is the one `ip route
get ADDR` makes (rtnetlink(7)), so policy routing, the local table and the namespace the scanner
runs in all count. It is a local syscall of microseconds, so it runs inline.

Anything unclear (no netlink, an error, a reply that does not parse) is "not on-link": the address
then goes through ICMP/TCP/UDP discovery, which can find a host ARP would have found, never the
other way round.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
import sys
from dataclasses import dataclass

from probes import wire
from profiles.errors import MalformedResponse

# linux/netlink.h, linux/rtnetlink.h
_NLMSG_ERROR = 2
_RTM_NEWROUTE = 24
_RTM_GETROUTE = 26
_NLM_F_REQUEST = 1
_RTA_DST = 1
_RTA_OIF = 4
_RTA_GATEWAY = 5
_RTA_PREFSRC = 7
_RTA_VIA = 18
_RTN_UNICAST = 1
_NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTATTR = struct.Struct("=HH")  # len, type
_MAX_REPLY = 65536


@dataclass(frozen=True, slots=True)
class Route:
    """What the kernel would do with a packet to one address."""

    on_link: bool  # unicast route with no gateway: a neighbour on the link (ARP/ND decides presence)
    interface: str | None = None
    gateway: str | None = None
    source: str | None = None  # the address this host sends from on that route
    reason: str = ""  # why it is not on-link, when it is not


def _align(n: int) -> int:
    return (n + 3) & ~3


def _request(address: ipaddress.IPv4Address | ipaddress.IPv6Address, seq: int) -> bytes:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    packed = address.packed
    attr = _RTATTR.pack(_RTATTR.size + len(packed), _RTA_DST) + packed
    body = _RTMSG.pack(family, len(packed) * 8, 0, 0, 0, 0, 0, 0, 0) + attr
    return _NLMSG_HDR.pack(_NLMSG_HDR.size + len(body), _RTM_GETROUTE, _NLM_F_REQUEST, seq, 0) + body


def parse_reply(data: bytes, seq: int) -> Route:
    """Read one RTM_NEWROUTE reply (bounds-checked); raises ValueError on anything malformed.

    ValueError stays this function's one error (lookup turns it into "not on-link"): the kernel is
    not a device answering a probe, so its reply is not a MalformedResponse of the sweep. Bytes after
    the first message are allowed (a netlink datagram may carry several, netlink(7)); inside it, each
    attribute is whole and padded to 4 bytes (RTA_ALIGN), and one that is not is malformed.
    """
    try:
        return _parse(data, seq)
    except MalformedResponse as exc:
        raise ValueError(str(exc)) from exc


def _parse(data: bytes, seq: int) -> Route:
    r = wire.Reader(data, "netlink reply")
    length, kind, _flags, got_seq, _pid = r.unpack(_NLMSG_HDR, "header", short="short netlink header")
    if length < _NLMSG_HDR.size:
        raise MalformedResponse("netlink length out of bounds")
    if got_seq != seq:
        raise MalformedResponse("reply to another request")
    with r.restrict_to(length - _NLMSG_HDR.size, "message", short="netlink length out of bounds"):
        if kind == _NLMSG_ERROR:
            (errno,) = r.unpack("=i", "error", short="short netlink error")
            if errno < -4095:  # the kernel's errnos are 1..4095; os.strerror(2**31) raised OverflowError
                return Route(False, reason=f"netlink error {errno}")
            return Route(False, reason=os.strerror(-errno) if errno < 0 else "no route")
        if kind != _RTM_NEWROUTE:
            raise MalformedResponse(f"unexpected netlink message type {kind}")
        *_head, route_type, _rflags = r.unpack(_RTMSG, "route message", short="short route message")
        oif: int | None = None
        gateway: str | None = None
        source: str | None = None
        via = False
        while not r.at_end:
            attr_len, attr_type = r.unpack(_RTATTR, "attribute header", short="truncated route attribute")
            if attr_len < _RTATTR.size:
                raise MalformedResponse("route attribute length out of bounds")
            value = r.take(attr_len - _RTATTR.size, "attribute", short="route attribute length out of bounds")
            if attr_type == _RTA_OIF and len(value) == 4:
                oif = int.from_bytes(value, sys.byteorder)  # rtnetlink is in host byte order
            elif attr_type == _RTA_GATEWAY:
                gateway = str(ipaddress.ip_address(value)) if len(value) in (4, 16) else "?"
            elif attr_type == _RTA_PREFSRC and len(value) in (4, 16):
                source = str(ipaddress.ip_address(value))
            elif attr_type == _RTA_VIA:
                via = True
            r.align(4, "the next attribute")
    interface = None
    if oif is not None:
        with contextlib.suppress(OSError):
            interface = socket.if_indextoname(oif)
    if route_type != _RTN_UNICAST:
        # RTN_LOCAL (the scanner's own address), broadcast, unreachable, blackhole, prohibit ...
        return Route(False, interface, source=source, reason=f"route type {route_type}, not a unicast neighbour")
    if gateway is not None or via:
        return Route(False, interface, gateway or "via", source, f"reached through the gateway {gateway or 'via'}")
    return Route(True, interface, source=source)


def lookup(address: str) -> Route:
    """The kernel's route to ``address`` from this network namespace (never raises)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return Route(False, reason="not an IP address")
    if ip.is_loopback:
        return Route(False, "lo", reason="loopback")
    return _lookup(ip)


def _lookup(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Route:
    seq = 1
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            sock.settimeout(1.0)
            sock.send(_request(ip, seq))
            return parse_reply(sock.recv(_MAX_REPLY), seq)
    except (OSError, AttributeError) as exc:  # AttributeError: no AF_NETLINK on this platform
        return Route(False, reason=f"route lookup failed: {exc}")
    except ValueError as exc:
        return Route(False, reason=f"route lookup unreadable: {exc}")


def on_link(address: str) -> bool:
    """Whether ``address`` is a neighbour on one of this host's links (IPv4 or IPv6)."""
    return lookup(address).on_link
