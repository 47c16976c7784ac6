"""DHCP (--dhcp, root): the DNS servers a router's DHCP server hands out, and what they answer.

A router whose settings were changed from outside hands its LAN clients the
attacker's resolver (CIAJ 3.4 case 1; DNSChanger, the 2018 router DNS
hijacks). Asking the router's own resolver does not show that: what the
clients are told to use does. With ``--dhcp``, on a router whose resolver
answered (udp/53), the probe asks its DHCP server as a new client would:

- a DHCPDISCOVER, broadcast on the segment the kernel routes the target
  through (on-link only: DHCP does not cross routers), sent once more after a
  silence; then, if still nothing came from the target, a DHCPINFORM from the
  scanner's own address (RFC 2131 3.4: options for a client that already has
  an address).
- Only answers whose server identifier (or source) is the target count.
- Never a DHCPREQUEST: no lease is ever taken, and nothing on the server
  changes. The client hardware address is the scanner interface's own MAC,
  the same every sweep (one client to the server, and DHCP snooping's
  source-MAC check passes).

Each handed-out resolver other than the device itself is then asked the
canary names (probes.dns_query); the device's own resolver is already asked
by the dns probe. Replies are parsed here with probes.wire: a truncated option,
an option past the packet's end, anything but pad after the end option or a
reply over MAX_REPLY bytes is malformed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from probes import wire
from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.dns_query import ask_canary, canaries
from probes.observations import DhcpOffer, DnsAnswer, Observation, PortState, Service
from probes.options import OptionSet, option, option_set
from probes.wire import route
from profiles.errors import MalformedResponse, ProbeError, Refused, Timeout, Unreachable

SERVER_PORT, CLIENT_PORT = 67, 68
MAGIC = b"\x63\x82\x53\x63"
MAX_REPLY = 1500  # one Ethernet frame's worth; DHCP replies over it are not ones we will read
MIN_REPLY = 240  # BOOTP fixed part (236) and the magic cookie
DISCOVER, OFFER, ACK, INFORM, NAK = 1, 2, 5, 8, 6
PARAMS = bytes([1, 3, 6, 15, 51, 54])  # subnet mask, router, DNS, domain, lease time, server id
LISTEN_S = 2.0  # how long one DHCP message's answers are awaited

_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeaudit-dhcp")  # one exchange on the wire at a time


@dataclass(frozen=True)
class Reply:
    """The parts of a DHCP reply this probe reads."""

    xid: int
    message: int
    source: str  # the IP source of the packet
    server_id: str
    dns_servers: tuple[str, ...]
    routers: tuple[str, ...]
    domain: str
    lease_s: int | None


def _addresses(value: bytes, what: str) -> tuple[str, ...]:
    if not value or len(value) % 4:
        raise MalformedResponse(f"DHCP option {what}: {len(value)} bytes is not a list of IPv4 addresses")
    r = wire.Reader(value, f"DHCP option {what}")
    return tuple(str(ipaddress.IPv4Address(r.take(4, "address"))) for _ in range(len(value) // 4))


def parse_reply(payload: bytes, source: str) -> Reply:
    """A BOOTREPLY's DHCP options (RFC 2131/2132), strictly: anything truncated or out of bounds is malformed.

    After the end option only pad octets may follow (RFC 2132 3.2: what follows End should be Pad;
    BOOTP's 300-octet minimum, RFC 1542 2.1, is why servers send them); anything else is malformed.
    """
    r = wire.Reader(payload, "DHCP reply", max_size=MAX_REPLY)
    if r.remaining < MIN_REPLY:
        raise MalformedResponse(f"DHCP reply of {len(payload)} bytes")
    if r.u8("op") != 2:
        raise MalformedResponse("not a BOOTREPLY")
    r.skip(3, "htype, hlen, hops")
    xid = r.u32("xid")
    r.skip(MIN_REPLY - 12, "BOOTP fixed fields")  # secs .. file: what this probe reads comes from options
    if r.take(4, "magic cookie") != MAGIC:
        raise MalformedResponse("DHCP reply without the magic cookie")
    options: dict[int, bytes] = {}
    while True:
        if r.at_end:
            raise MalformedResponse("DHCP options without an end option")
        code = r.u8("option code")
        if code == 255:
            break
        if code == 0:
            continue
        value = r.counted(1, f"option {code}", short=f"DHCP option {code} runs past the end of the packet")
        options[code] = options.get(code, b"") + value  # RFC 3396: repeats concatenate
    if r.rest().strip(b"\x00"):
        raise MalformedResponse("DHCP reply with bytes other than pad after its end option")
    message = options.get(53, b"")
    if len(message) != 1:
        raise MalformedResponse("DHCP reply without a message type")
    lease = options.get(51)
    if lease is not None and len(lease) != 4:
        raise MalformedResponse("DHCP lease time is not 4 bytes")
    server = options.get(54)
    return Reply(
        xid=xid,
        message=message[0],
        source=source,
        server_id=_addresses(server, "server identifier")[0] if server else "",
        dns_servers=_addresses(options[6], "DNS servers") if 6 in options else (),
        routers=_addresses(options[3], "routers") if 3 in options else (),
        domain=options.get(15, b"").decode("ascii", "replace").rstrip("\x00")[:253],
        lease_s=int.from_bytes(lease, "big") if lease is not None else None,
    )


def request(message: int, xid: int, mac: str, ciaddr: str = "0.0.0.0") -> bytes:
    """A BOOTREQUEST carrying a DHCPDISCOVER or DHCPINFORM, broadcast flag set (RFC 2131 4.1)."""
    if message not in (DISCOVER, INFORM):
        raise ValueError("this probe sends DISCOVER and INFORM only")
    chaddr = bytes.fromhex(mac.replace(":", ""))
    fixed = struct.pack(">BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000)
    fixed += ipaddress.IPv4Address(ciaddr).packed + bytes(12) + chaddr.ljust(16, b"\x00") + bytes(192)
    options = bytes([53, 1, message, 55, len(PARAMS)]) + PARAMS + bytes([255])
    return fixed + MAGIC + options


def _exchange(iface: str, payload: bytes, ip_src: str, server: str, listen_s: float) -> list[Reply]:
    """Broadcast one DHCP request on iface; the replies to its xid, until the server's own or listen_s passes."""
    from scapy.arch import get_if_hwaddr
    from scapy.config import conf
    from scapy.error import Scapy_Exception
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.sendrecv import sniff

    xid = wire.Reader(payload, "DHCP request").unpack(">4xI", "xid")[0]  # our own request's
    got: list[Reply] = []

    def keep(pkt: Any) -> bool:
        if IP not in pkt or UDP not in pkt or pkt[UDP].sport != SERVER_PORT or pkt[UDP].dport != CLIENT_PORT:
            return False
        try:
            reply = parse_reply(bytes(pkt[UDP].payload), str(pkt[IP].src))
        except MalformedResponse:
            return False
        if reply.xid != xid:
            return False
        got.append(reply)
        return server in (reply.server_id, reply.source)

    frame = (
        Ether(src=get_if_hwaddr(iface), dst="ff:ff:ff:ff:ff:ff")
        / IP(src=ip_src, dst="255.255.255.255")
        / UDP(sport=CLIENT_PORT, dport=SERVER_PORT)
        / payload
    )
    # No BPF filter: compiling one needs libpcap, which a scanner host need not have; keep() filters instead.
    try:
        sock = conf.L2socket(iface=iface)
        try:
            sock.send(frame)
            sniff(opened_socket=sock, timeout=listen_s, stop_filter=keep, store=False)
        finally:
            sock.close()
    except (OSError, Scapy_Exception) as exc:
        raise Unreachable(f"DHCP on {iface}: {exc}") from exc
    return got


def on_link(address: str) -> tuple[str, str, str]:
    """(interface, our address on it, its MAC) for a target on a directly attached IPv4 segment; else Unreachable."""
    from scapy.arch import get_if_hwaddr
    from scapy.error import Scapy_Exception

    if ipaddress.ip_address(address).version != 4:
        raise Unreachable("DHCP (v4) is asked of IPv4 targets only")
    found = route.lookup(address)
    if not found.on_link or not found.interface:
        why = found.reason or "no interface"
        raise Unreachable(f"{address} is not on a directly attached segment ({why}): DHCP broadcasts do not reach it")
    try:
        mac = str(get_if_hwaddr(found.interface))
    except (OSError, Scapy_Exception) as exc:
        raise Unreachable(f"no interface towards {address}: {exc}") from exc
    return found.interface, found.source or "0.0.0.0", mac


async def ask_server(address: str, ctx: ProbeContext) -> tuple[Reply, str] | None:
    """The target's DHCP answer and the message that got it (None: silence to DISCOVER twice and INFORM)."""
    loop = asyncio.get_running_loop()
    iface, own, mac = await loop.run_in_executor(_pool, on_link, address)
    attempts = [(DISCOVER, "0.0.0.0"), (DISCOVER, "0.0.0.0")]
    if ipaddress.IPv4Address(own) != ipaddress.IPv4Address(0):  # INFORM needs an address of our own on the segment
        attempts.append((INFORM, own))
    for message, ciaddr in attempts:
        listen = min(LISTEN_S, ctx.remaining() - 0.5)
        if listen <= 0:
            raise Timeout("DHCP: the probe deadline came before an answer")
        payload = request(message, secrets.randbits(32), mac, ciaddr)
        try:
            async with asyncio.timeout(listen + 5.0):  # the worker may wait behind another host's exchange
                replies = await loop.run_in_executor(_pool, _exchange, iface, payload, ciaddr, address, listen)
        except TimeoutError as exc:
            raise Timeout("DHCP: the capture did not finish") from exc
        mine = [r for r in replies if address in (r.server_id, r.source)]
        if any(r.message == NAK for r in mine):
            raise MalformedResponse("the DHCP server answered DHCPNAK")
        wanted = OFFER if message == DISCOVER else ACK
        for reply in mine:
            if reply.message == wanted:
                return reply, "discover" if message == DISCOVER else "inform"
    return None


async def ask_resolvers(
    resolvers: Sequence[str], device: str, service: Service, ctx: ProbeContext
) -> tuple[list[DnsAnswer], list[tuple[str, str]]]:
    """The canary answers of each handed-out resolver that is not the device itself; and those that gave none."""
    answers: list[DnsAnswer] = []
    unanswered: list[tuple[str, str]] = []
    for resolver in dict.fromkeys(resolvers):
        if resolver == device:
            continue
        try:
            for name in canaries(ctx.config):
                answers.append(await ask_canary(resolver, 53, name, service, ctx, resolver=resolver))
        except (Timeout, Refused, Unreachable, MalformedResponse) as exc:
            unanswered.append((resolver, str(exc)[:200] or type(exc).__name__))
    return answers, unanswered


@option_set
@dataclass(frozen=True)
class DhcpOptions(OptionSet):
    """Whether on-link routers' DHCP servers are asked at all."""

    name: ClassVar[str] = "dhcp"
    title: ClassVar[str] = "DHCP"

    dhcp: bool = option(
        False,
        flag="--dhcp",
        kind="flag",
        help="root, on-link targets: ask each host whose DNS resolver answered (a router) for the DNS servers its "
        "DHCP server hands out (a broadcast DHCPDISCOVER, then DHCPINFORM; never a REQUEST, no lease is taken), "
        "and ask those servers the canary names too",
        legacy="dhcp",
    )


@register
class DhcpServer(Probe):
    """DHCPDISCOVER/INFORM to a router's DHCP server, then the handed-out resolvers' canary answers."""

    name = "dhcp"
    phase = Phase.FINGERPRINT
    description = "DHCP DISCOVER/INFORM (--dhcp, root, on-link): the DNS servers handed out, asked the canary names"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """udp/67 of hosts whose resolver answered, only with --dhcp."""
        if not config.options(DhcpOptions).dhcp or not host.services_named(frozenset({"dns"})):
            return []
        return [Service(SERVER_PORT, "udp", "dhcp")]

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One answer from the target's server; silence is no DHCP server there, not a verdict."""
        assert target.service is not None
        if not ctx.config.privileged:
            raise ProbeError("--dhcp needs root (a raw socket to broadcast DHCPDISCOVER); not asked")
        got = await ask_server(target.address, ctx)
        if got is None:
            return [PortState(target.service, state="filtered")]
        reply, method = got
        offer = DhcpOffer(
            target.service,
            method=method,
            server_id=reply.server_id,
            dns_servers=reply.dns_servers,
            routers=reply.routers,
            domain=reply.domain,
            lease_s=reply.lease_s,
        )
        answers, unanswered = await ask_resolvers(reply.dns_servers, target.address, target.service, ctx)
        return [replace(offer, unanswered=tuple(unanswered)), *answers]
