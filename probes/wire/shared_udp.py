"""The sweep's UDP sockets: one unconnected socket carries every exchange with every host.

A UDP exchange used to open a connected socket of its own, so a /24 sweep opened and
registered thousands of them. Here a sweep opens one socket per source address (a second
only while two exchanges talk to the same peer at once, so that each keeps a local port of
its own, as with a connected socket) and hands each exchange a ``SharedEndpoint`` that
looks like asyncio's datagram transport: ``sendto``, ``close``, ``get_extra_info``.

Replies are dispatched by their source (address, port) to the one exchange talking to that
peer on that socket; the exchange's own ``accept`` matches the transaction id. A datagram
from anyone else is dropped and counted.

An unconnected socket hears no ICMP error by default. With ``IP_RECVERR`` (ip(7)) the
kernel queues each error with the original datagram and its destination; reading the
queue (``recvmsg`` with ``MSG_ERRQUEUE``) gives the exchange its "port unreachable" as
the same ``ConnectionRefusedError`` a connected socket reports, so a closed port stays
closed, not silent. Without ``IP_RECVERR`` (not Linux) or for a link-local IPv6 address
with a zone, exchanges open their own connected socket as before.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import errno
import functools
import ipaddress
import os
import socket
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from probes import options
from probes.options import OptionSet, option, option_set

MAX_DATAGRAM = 65_535

# linux/in.h, linux/in6.h, linux/errqueue.h (the Python 3.11 socket module names neither)
IP_RECVERR = 11
_IPV6_RECVERR = 25
MSG_ERRQUEUE = 0x2000
SOCK_EXTENDED_ERR = struct.Struct("=IBBBBII")  # ee_errno, ee_origin, ee_type, ee_code, ee_pad, ee_info, ee_data
ERR_ANCILLARY = 512  # sock_extended_err and the offender's sockaddr fit
_BACKLOG = 4096  # datagrams held while the socket's send buffer is full, then dropped (UDP may lose them anyway)

P = TypeVar("P", bound=asyncio.DatagramProtocol)

SUPPORTED = sys.platform.startswith("linux")


@option_set
@dataclass(frozen=True)
class UdpOptions(OptionSet):
    """How fast the sweep's UDP stage asks (SIP OPTIONS, SNMP, NTP, DNS and SSDP discovery)."""

    name: ClassVar[str] = "udp"
    title: ClassVar[str] = "UDP discovery"

    udp_rate: float = option(
        2500.0,
        flag="--udp-rate",
        metavar="PER_SECOND",
        help="first UDP discovery requests per second for the whole sweep (default 2500): hosts start in the "
        "UDP stage at this rate divided by the UDP discovery probes run (5 by default) and at most a tenth of "
        "the kernel's neighbour table limit (102 a second by default), a silent service's retransmits follow on "
        "their own timers",
        parse=options.number("--udp-rate", float, 1, "must be at least 1 request per second"),
    )


_ACTIVE: contextvars.ContextVar[SharedUdp | None] = contextvars.ContextVar("edgeaudit_shared_udp", default=None)


def active() -> SharedUdp | None:
    """The sweep's shared sockets, when the running sweep opened them."""
    return _ACTIVE.get()


@contextlib.contextmanager
def shared() -> Iterator[SharedUdp | None]:
    """Open the sweep's shared sockets for the code (and the tasks it starts) inside; closed on exit.

    None where the platform cannot report ICMP errors on an unconnected socket: exchanges then
    keep their own connected sockets."""
    if not SUPPORTED:
        yield None
        return
    pool = SharedUdp()
    token = _ACTIVE.set(pool)
    try:
        yield pool
    finally:
        _ACTIVE.reset(token)
        pool.close()


NEIGHBOUR_LIMIT = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3")


def neighbour_limit() -> int:
    """The kernel's neighbour table limit (gc_thresh3; 1,024 by default).

    Each on-link destination takes an entry, and the kernel evicts none updated in the last 5 s:
    a sweep that reaches more new destinations than that in 5 s gets ENOBUFS on every send (seen on
    a 1,000-device fleet with the UDP stage unpaced by it)."""
    try:
        return max(64, int(NEIGHBOUR_LIMIT.read_text(encoding="ascii").split()[0]))
    except (OSError, ValueError, IndexError):
        return 1024


def window(most: int = 1024) -> int:
    """How many addresses a sweep-wide stage may talk to at once: ``most``, and a quarter of the table."""
    return max(16, min(most, neighbour_limit() // 4))


def new_destinations_per_s() -> float:
    """How fast a stage may start new destinations once its first window is out: a tenth of the table
    a second. With that window (a quarter) at once, at most three quarters of the table in any 5 s."""
    return neighbour_limit() / 10


@functools.lru_cache(maxsize=8192)
def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address))


@functools.lru_cache(maxsize=4096)
def source_for(address: str) -> str:
    """The local address the kernel's routing picks for a destination (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((address, 9))
        return str(probe.getsockname()[0])


class SharedEndpoint(asyncio.DatagramTransport):
    """One exchange's view of a shared socket: it sends to and hears from its one peer."""

    def __init__(self, sock: _Socket, peer: tuple[str, int], protocol: asyncio.DatagramProtocol) -> None:
        super().__init__()
        self._sock, self._peer, self._protocol = sock, peer, protocol
        self._closed = False

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Send one datagram to the peer (``addr`` must be the peer or None)."""
        if self._closed:
            return
        self._sock.send(bytes(data), self._peer)

    def close(self) -> None:
        """Stop hearing the peer on this socket; the socket stays for the sweep's other exchanges."""
        if self._closed:
            return
        self._closed = True
        self._sock.leave(self._peer, self)
        protocol, self._protocol = self._protocol, _GONE
        protocol.connection_lost(None)  # and no longer held: a protocol holding its user holding us is no cycle

    def is_closing(self) -> bool:
        return self._closed

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self._sock.name
        if name == "peername":
            return self._peer
        return default

    def deliver(self, data: bytes, addr: tuple[str, int]) -> None:
        self._protocol.datagram_received(data, addr)

    def fail(self, exc: OSError) -> None:
        self._protocol.error_received(exc)


_GONE = asyncio.DatagramProtocol()


class _Socket:
    """One unconnected, non-blocking UDP socket bound to a source address, read by the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, source: str) -> None:
        v6 = ":" in source
        self.loop = loop
        self.sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setblocking(False)
            if v6:
                self.sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
            else:
                self.sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            self.sock.bind((source, 0))
        except BaseException:
            self.sock.close()
            raise
        self.name: tuple[str, int] = tuple(self.sock.getsockname()[:2])
        self.peers: dict[tuple[str, int], SharedEndpoint] = {}
        self.dropped = 0  # datagrams from no peer of ours (or one that has finished)
        self._backlog: collections.deque[tuple[bytes, tuple[str, int]]] = collections.deque()
        loop.add_reader(self.sock.fileno(), self._readable)

    def join(self, peer: tuple[str, int], endpoint: SharedEndpoint) -> None:
        self.peers[peer] = endpoint

    def leave(self, peer: tuple[str, int], endpoint: SharedEndpoint) -> None:
        if self.peers.get(peer) is endpoint:
            del self.peers[peer]

    def send(self, data: bytes, peer: tuple[str, int]) -> None:
        if self._backlog:
            self._hold(data, peer)
            return
        for _ in range(8):  # each pending error a send reports is drained, then the send is tried again
            try:
                self.sock.sendto(data, peer)
                return
            except (BlockingIOError, InterruptedError):
                self._hold(data, peer)
                return
            except OSError as exc:
                # An earlier datagram's ICMP error is reported by the next call on the socket: it is
                # in the error queue with its own destination; this datagram is not refused by it.
                if not self._drain_errors():
                    self._fail(peer, exc)
                    return
        self._fail(peer, OSError(errno.EIO, "send kept failing on the shared UDP socket"))

    def _hold(self, data: bytes, peer: tuple[str, int]) -> None:
        if len(self._backlog) >= _BACKLOG:
            return  # lost like any datagram: the exchange retransmits or reads silence
        if not self._backlog:
            self.loop.add_writer(self.sock.fileno(), self._writable)
        self._backlog.append((data, peer))

    def _writable(self) -> None:
        while self._backlog:
            data, peer = self._backlog[0]
            try:
                self.sock.sendto(data, peer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if not self._drain_errors():
                    self._backlog.popleft()
                    self._fail(peer, exc)
                continue
            self._backlog.popleft()
        self.loop.remove_writer(self.sock.fileno())

    def _fail(self, peer: tuple[str, int], exc: OSError) -> None:
        endpoint = self.peers.get(peer)
        if endpoint is not None:
            endpoint.fail(OSError(exc.errno, exc.strerror))  # a fresh error: no traceback holding our frames

    def _readable(self) -> None:
        for _ in range(256):  # at most this many datagrams per wake: the loop runs others between
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # the pending error of a queued ICMP message: read from the queue below
            peer = (str(addr[0]), int(addr[1]))
            endpoint = self.peers.get(peer)
            if endpoint is None:
                self.dropped += 1
                continue
            endpoint.deliver(data, peer)
        self._drain_errors()

    def _drain_errors(self) -> bool:
        """Hand each queued ICMP error to the exchange whose datagram it answers; whether any was queued."""
        found = False
        for _ in range(256):
            try:
                _data, ancdata, _flags, addr = self.sock.recvmsg(0, ERR_ANCILLARY, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            found = True
            code = errno_of(ancdata)
            if not code or not addr:
                continue
            peer = (str(addr[0]), int(addr[1]))
            endpoint = self.peers.get(peer)
            if endpoint is not None:
                endpoint.fail(_error(code))
        return found

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_reader(self.sock.fileno())
            self.loop.remove_writer(self.sock.fileno())
        self.sock.close()
        self.peers.clear()
        self._backlog.clear()


def errno_of(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The errno of the first ``sock_extended_err`` in a ``MSG_ERRQUEUE`` read's ancillary data (0: none)."""
    return next(
        (int(SOCK_EXTENDED_ERR.unpack_from(d)[0]) for _lvl, _typ, d in ancdata if len(d) >= SOCK_EXTENDED_ERR.size), 0
    )


def _error(code: int) -> OSError:
    if code == errno.ECONNREFUSED:
        return ConnectionRefusedError(code, os.strerror(code))
    return OSError(code, os.strerror(code))


class SharedUdp:
    """The sockets of one sweep, by source address; see the module docstring."""

    def __init__(self) -> None:
        self._sockets: dict[str, list[_Socket]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.opened = 0  # sockets opened (tests, the benchmark)

    def endpoint(self, factory: Callable[[], P], address: str, port: int) -> tuple[SharedEndpoint, P] | None:
        """An endpoint to address:port on a shared socket, or None when this address needs its own socket."""
        if "%" in address:
            return None  # a zone: the scope is the connected socket's to resolve
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self.close()
            self._loop = loop
        peer = (_canonical(address), port)
        source = source_for(peer[0])
        sockets = self._sockets.setdefault(source, [])
        sock = next((s for s in sockets if peer not in s.peers), None)
        if sock is None:
            sock = _Socket(loop, source)
            sockets.append(sock)
            self.opened += 1
        protocol = factory()
        endpoint = SharedEndpoint(sock, peer, protocol)
        sock.join(peer, endpoint)
        protocol.connection_made(endpoint)
        return endpoint, protocol

    @property
    def dropped(self) -> int:
        """Datagrams that came from no peer an exchange was talking to."""
        return sum(s.dropped for group in self._sockets.values() for s in group)

    def close(self) -> None:
        """Close every socket (each exchange has ended by now, or hears nothing more)."""
        for group in self._sockets.values():
            for sock in group:
                sock.close()
        self._sockets.clear()


async def open_datagram(factory: Callable[[], P], address: str, port: int) -> tuple[asyncio.DatagramTransport, P]:
    """A datagram transport to address:port: on the sweep's shared socket when one is open, else a
    connected socket of its own (``check`` of one device, tests, a zone-scoped IPv6 address)."""
    pool = active()
    if pool is not None:
        shared_one = pool.endpoint(factory, address, port)
        if shared_one is not None:
            return shared_one
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(factory, remote_addr=(address, port))
