"""Sweep-wide ARP: one raw packet socket per interface, paced, for the whole scope at once.

The per-host ARP probe (probes.l2) asks scapy for batches of the hosts in flight: a dead on-link
address then costs its host slot for two rounds of a second, about 30 addresses a second.
This screen instead streams the scope through one non-blocking ``AF_PACKET`` socket per
interface (packet(7)): who-has requests go out at a fixed rate (a token bucket, ``--arp-rate``),
each unanswered address is asked once more after ``wait`` seconds (as nmap -PR retransmits), and
replies are matched by sender protocol address as they arrive, from the event loop's reader
callback (no thread, nothing blocking). The in-flight window is bounded, so memory does not grow
with the scope, and time per dead address is constant: its two frames at the pacing rate.

Frames follow RFC 826 for Ethernet/IPv4: hardware type 1, protocol 0x0800, lengths 6 and 4,
opcode 1 (request) or 2 (reply). Only replies whose sender address is one we asked count:
a request a device sends on its own, or a reply for an address we did not ask, is not presence.

An address the kernel would not reach on-link (behind a gateway, IPv6, or no route: probes.wire.route)
is not screened: it goes on to per-host ICMP/TCP/UDP discovery. So does every address of an
interface whose socket cannot be opened (no CAP_NET_RAW, interface gone): unclear is never "down".
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import socket
import struct
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field

from probes.base import Screened
from probes.observations import HostAlive
from probes.wire import route

ETH_P_ARP = 0x0806
_BROADCAST = b"\xff" * 6
_ARP_FIXED = struct.pack("!HHBB", 1, 0x0800, 6, 4)  # Ethernet, IPv4, hlen 6, plen 4 (RFC 826)
_FRAME_MIN = 42  # 14 Ethernet + 28 ARP
DOWN_REASON = "no ARP answer (an on-link address: ARP decides presence)"


def request_frame(source_mac: bytes, source_ip: bytes, target_ip: bytes) -> bytes:
    """A broadcast who-has for ``target_ip`` (4 bytes) from ``source_mac``/``source_ip``."""
    ether = _BROADCAST + source_mac + struct.pack("!H", ETH_P_ARP)
    return ether + _ARP_FIXED + struct.pack("!H", 1) + source_mac + source_ip + b"\x00" * 6 + target_ip


def parse_reply(frame: bytes) -> tuple[int, bytes] | None:
    """(sender IPv4 as int, sender MAC) of an Ethernet ARP reply; None for anything else.

    Bounded: a frame shorter than Ethernet + ARP, of another type, hardware or protocol, or not
    a reply is None (a packet socket sees every ARP frame on the link, ours included)."""
    if len(frame) < _FRAME_MIN or frame[12:14] != b"\x08\x06" or frame[14:20] != _ARP_FIXED:
        return None
    if frame[20:22] != b"\x00\x02":
        return None
    return int.from_bytes(frame[28:32], "big"), bytes(frame[22:28])


def mac_text(mac: bytes) -> str:
    """aa:bb:cc:dd:ee:ff."""
    return ":".join(f"{b:02x}" for b in mac)


@dataclass
class _Link:
    """One interface's socket and our addresses on it."""

    sock: socket.socket
    mac: bytes
    sources: dict[str, bytes] = field(default_factory=dict)  # route's source address -> packed


@dataclass
class _Asked:
    link: _Link
    source: bytes
    target: bytes
    sent_at: float
    tries: int


RCVBUF = 4 * 1024 * 1024  # asked; the kernel caps it at net.core.rmem_max
# The longest the screen works in one step of the event loop before it lets others run: each new
# address costs a route lookup (a netlink round trip, 50 us, but 1.5-2.5 ms each at a /20 sweep's
# start while a worker thread imported scapy: 50 of them held the loop 0.1-0.2 s).
STEP_S = 0.02


class ArpScreen:
    """Screens a scope's on-link IPv4 addresses with paced ARP; see the module docstring."""

    def __init__(self, rate: float, wait: float = 1.0, retries: int = 1, window: int = 8192) -> None:
        if rate <= 0:
            raise ValueError("ARP rate must be positive")
        self.rate, self.wait, self.retries, self.window = rate, wait, retries, window
        self.sent = 0  # frames sent (retries included), for the benchmark and tests
        self._links: dict[str, _Link | None] = {}  # None: the interface's socket could not be opened
        self._asked: collections.OrderedDict[int, _Asked] = collections.OrderedDict()  # by last send time
        self._answered: collections.deque[tuple[int, bytes]] = collections.deque()
        self._wake = asyncio.Event()

    async def screen(self, addresses: Iterable[str]) -> AsyncGenerator[Screened, None]:
        """Each address once, in the order judged: alive (with its MAC), down, or not screened."""
        loop = asyncio.get_running_loop()
        pending = iter(addresses)
        exhausted = False
        tokens, last = 1.0, loop.time()
        burst = max(1.0, self.rate / 50)  # at most 20 ms of sending at once
        try:
            while True:
                while self._answered:
                    value, mac = self._answered.popleft()
                    address = str(ipaddress.IPv4Address(value))
                    yield Screened(address, (HostAlive(None, method="arp", mac=mac_text(mac)),))
                now = loop.time()
                tokens = min(burst, tokens + (now - last) * self.rate)
                last = now
                # Retries and verdicts for the oldest asks first (the dict is in send order).
                while self._asked:
                    value, asked = next(iter(self._asked.items()))
                    if now - asked.sent_at < self.wait:
                        break
                    if asked.tries > self.retries:
                        del self._asked[value]
                        yield Screened(str(ipaddress.IPv4Address(value)), down=DOWN_REASON)
                        continue
                    if tokens < 1:
                        break
                    tokens -= 1
                    self._send(asked)
                    asked.sent_at, asked.tries = now, asked.tries + 1
                    self._asked.move_to_end(value)
                while not exhausted and tokens >= 1 and len(self._asked) < self.window and loop.time() - now < STEP_S:
                    named = next(pending, None)
                    if named is None:
                        exhausted = True
                        break
                    new = self._ask(named, now)
                    if new is None:
                        yield Screened(named, screened=False)
                        continue
                    value = int.from_bytes(new.target, "big")
                    if value in self._asked:  # named twice in the scope: one ask
                        continue
                    tokens -= 1
                    self._send(new)
                    self._asked[value] = new
                if exhausted and not self._asked and not self._answered:
                    return
                await self._sleep(loop, tokens, exhausted)
        finally:
            self._close(loop)

    async def _sleep(self, loop: asyncio.AbstractEventLoop, tokens: float, exhausted: bool) -> None:
        """Until a reply, the next token or the oldest ask's wait, whichever comes first."""
        waits = [self.wait]
        if not exhausted or self._asked:
            waits.append(max(0.0, (1 - tokens) / self.rate))
        if self._asked:
            oldest = next(iter(self._asked.values()))
            waits.append(max(0.0, oldest.sent_at + self.wait - loop.time()))
        self._wake.clear()
        if self._answered:  # handed on at once, after the loop's other callbacks had their turn
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(min(waits), 0.001)):
                await self._wake.wait()

    def _ask(self, address: str, now: float) -> _Asked | None:
        """The ask for an on-link IPv4 address; None when this screen does not judge it."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if ip.version != 4:
            return None
        found = route.lookup(address)
        if not (found.on_link and found.interface and found.source):
            return None
        link = self._link(found.interface)
        if link is None:
            return None
        source = link.sources.setdefault(found.source, ipaddress.IPv4Address(found.source).packed)
        return _Asked(link, source, ip.packed, now, 1)

    def _link(self, interface: str) -> _Link | None:
        if interface in self._links:
            return self._links[interface]
        link: _Link | None = None
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        except OSError:
            self._links[interface] = None
            return None
        try:
            sock.bind((interface, ETH_P_ARP))
            sock.setblocking(False)
            # The socket also hears the kernel's own ARP (each TCP/UDP destination of the sweep is resolved
            # too); the default 208 KiB holds about 270 frames, too few for a burst while the loop is busy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            mac = sock.getsockname()[4]
            if len(mac) != 6:  # not Ethernet (a tunnel, loopback): ARP means nothing there
                raise OSError(f"{interface}: no Ethernet address")
            link = _Link(sock, bytes(mac))
            asyncio.get_running_loop().add_reader(sock.fileno(), self._receive, link)
        except OSError:
            sock.close()
            link = None
        self._links[interface] = link
        return link

    def _send(self, asked: _Asked) -> None:
        frame = request_frame(asked.link.mac, asked.source, asked.target)
        with contextlib.suppress(BlockingIOError, InterruptedError):  # a full queue: the retry covers it
            asked.link.sock.send(frame)
            self.sent += 1

    def _receive(self, link: _Link) -> None:
        """Reader callback: drain the socket, keep replies from addresses asked and not yet answered."""
        for _ in range(4096):  # bounded per callback: the loop stays responsive under a flood
            try:
                frame = link.sock.recv(128)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            reply = parse_reply(frame)
            if reply is None:
                continue
            value, mac = reply
            asked = self._asked.get(value)
            if asked is not None and asked.link is link:
                del self._asked[value]
                self._answered.append((value, mac))
                self._wake.set()

    def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        for link in self._links.values():
            if link is None:
                continue
            with contextlib.suppress(Exception):
                loop.remove_reader(link.sock.fileno())
            link.sock.close()
        self._links.clear()
        self._asked.clear()
