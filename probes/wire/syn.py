"""The sweep's TCP SYN knocks: one raw socket asks every host's ports whether they are open.

A discovery connect opens a socket, registers it with the event loop, completes a handshake
and closes it again: 24 ports on each of 254 hosts cost about a second of CPU, on the loop.
When the sweep is privileged, this module instead sends each port one SYN from a raw IPv4
socket (raw(7)), as ``nmap -sS`` does, and reads the answer (RFC 9293, 3.5 and 3.10.7.1):

* a SYN-ACK acknowledging our SYN (ack = our sequence number + 1): the port is open;
* a RST acknowledging it: closed, refused;
* nothing within the wait: the caller retries once, then calls the port filtered;
* an ICMP error for the destination (``IP_RECVERR``, ip(7)): unreachable, as connect() says.

Nothing completes a connection. Our kernel answers the device's SYN-ACK with a RST, since no
socket of ours listens on, or is connected from, the source port: that port is held by a bound,
never-listening TCP socket for the sweep, so no other local socket can take it meanwhile.
Only segments to that port reach the socket (a classic BPF filter, socket(7) SO_ATTACH_FILTER),
so a busy host's other traffic costs the sweep nothing; a segment is matched by its source
address and port, and by the acknowledgement of the random sequence number of that one knock
(a spoofed answer must guess 32 bits).

Anything this cannot do (no CAP_NET_RAW, IPv6, a name, not Linux, the same port asked twice
at once) is left to connect(): ``active()`` is None, or ``knock_all`` leaves the port out.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import ipaddress
import os
import secrets
import socket
import struct
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from probes.wire import shared_udp
from profiles.errors import Unreachable

SUPPORTED = sys.platform.startswith("linux")

_SO_ATTACH_FILTER = 26  # asm-generic/socket.h (the Python 3.11 socket module does not name it)

_SYN, _RST, _ACK = 0x02, 0x04, 0x10
_TCP = struct.Struct("!HHIIBBHHH")  # source port, destination port, seq, ack, offset, flags, window, checksum, urgent
_MSS = b"\x02\x04\x05\xb4"  # MSS 1460: a SYN with no option at all stands out (and some stacks drop it)
_HEADER_LEN = _TCP.size + len(_MSS)
_WINDOW = 64240
RCVBUF = 4 * 1024 * 1024  # asked; capped at net.core.rmem_max (the default 208 KiB holds about 270 answers)
SNAPLEN = 80  # bytes of each segment the filter passes up: an IP header (at most 60) and the TCP fields read
_RECV = 128


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_segment(source: bytes, destination: bytes, source_port: int, port: int, seq: int) -> bytes:
    """A SYN from ``source``:``source_port`` to ``destination``:``port`` (4-byte addresses), checksummed."""
    header = _TCP.pack(source_port, port, seq, 0, (_HEADER_LEN // 4) << 4, _SYN, _WINDOW, 0, 0) + _MSS
    pseudo = source + destination + struct.pack("!BBH", 0, socket.IPPROTO_TCP, _HEADER_LEN)
    value = checksum(pseudo + header)
    return header[:16] + struct.pack("!H", value) + header[18:]


@dataclass(frozen=True, slots=True)
class Answer:
    """What one TCP segment to our port says: who sent it, and whether it opens or refuses."""

    source: int  # IPv4 address as an integer
    port: int  # the device's port
    ack: int
    open: bool  # SYN-ACK (else RST)


def parse_answer(packet: bytes, our_port: int) -> Answer | None:
    """The answer an IPv4 packet carries to a knock from ``our_port``; None for anything else.

    Bounded: too short for its IP header and the TCP fields read, not IPv4 TCP, another
    destination port, or neither a SYN-ACK nor a RST with ACK (RFC 9293: a RST answering a SYN
    acknowledges it) is None."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_TCP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20 or len(packet) < ihl + 14:
        return None
    port, dport, _seq, ack, _offset, flags = struct.unpack_from("!HHIIBB", packet, ihl)
    if dport != our_port or not flags & _ACK:
        return None
    if flags & _RST:
        is_open = False
    elif flags & (_SYN | _ACK) == _SYN | _ACK:
        is_open = True
    else:
        return None
    return Answer(int.from_bytes(packet[12:16], "big"), port, ack, is_open)


def port_filter(port: int) -> bytes:
    """A classic BPF program passing the first SNAPLEN bytes of IPv4 segments to TCP ``port`` only.

    On a raw IPv4 socket a packet starts at its IP header: X = the header's length, then the
    TCP destination port is the half-word at X + 2 (bpf(4): ldxb 4*([0]&0xf); ldh [x+2])."""
    insns = (
        (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf)
        (0x48, 0, 0, 2),  # ldh [x + 2]
        (0x15, 0, 1, port),  # jeq #port, accept, drop
        (0x06, 0, 0, SNAPLEN),  # ret #SNAPLEN
        (0x06, 0, 0, 0),  # ret #0
    )
    return b"".join(struct.pack("HBBI", *insn) for insn in insns)


def _attach(sock: socket.socket, program: bytes) -> None:
    import ctypes  # here: only a privileged sweep pays its import

    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


@dataclass(slots=True)
class _Knock:
    seq: int
    done: asyncio.Future[bool]  # True open, False refused; an OSError for unreachable


class SynKnocker:
    """One raw socket and its reserved source port for a sweep; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sent = 0  # SYNs sent (tests, the benchmark)
        self.heard = 0  # segments the filter passed up
        self._knocks: dict[tuple[int, int], _Knock] = {}
        self._targets: dict[str, tuple[int, bytes, bytes] | None] = {}  # by address, as asked
        self._reserve = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock: socket.socket | None = None
        try:
            self._reserve.bind(("0.0.0.0", 0))  # never listens: the kernel refuses what reaches it with a RST
            self.port = int(self._reserve.getsockname()[1])
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
            self._sock = sock
            _attach(sock, port_filter(self.port))
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.setsockopt(socket.IPPROTO_IP, shared_udp.IP_RECVERR, 1)
            sock.setblocking(False)
            self._drain_stale()
            loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            self.close()
            raise

    def _target(self, address: str) -> tuple[int, bytes, bytes] | None:
        """(address as an integer, packed, our packed source for it), or None for anything not IPv4."""
        found = self._targets.get(address)
        if found is None and address not in self._targets:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                ip = None
            if ip is not None and ip.version == 4:
                try:
                    source = ipaddress.IPv4Address(shared_udp.source_for(address)).packed
                except OSError:  # no route: connect() says so in its own words
                    source = None
                if source is not None:
                    found = (int(ip), ip.packed, source)
            self._targets[address] = found
        return found

    async def knock_all(self, address: str, ports: Sequence[int], wait: float, tries: int = 2) -> dict[int, str]:
        """Every port of one host at once: port -> "open", "closed", "filtered" (silent ``tries`` times,
        ``wait`` seconds each) or the reason it is unreachable. A port asked already (another knock
        in flight) is left out: the caller asks it itself."""
        target = self._target(address)
        if target is None:
            raise Unreachable(f"SYN {address}: not an IPv4 address")
        mine: dict[int, _Knock] = {}
        for port in dict.fromkeys(ports):
            key = (target[0], port)
            if key not in self._knocks:
                mine[port] = self._knocks[key] = _Knock(secrets.randbits(32), self.loop.create_future())
        out: dict[int, str] = {}
        try:
            for _ in range(tries):
                waiting = [(port, knock) for port, knock in mine.items() if not knock.done.done()]
                if not waiting:
                    break
                for port, knock in waiting:  # a resend carries the same sequence number, as a retransmit
                    self._send(address, target, port, knock.seq)
                await asyncio.wait([k.done for _p, k in waiting], timeout=wait)
            for port, knock in mine.items():
                if not knock.done.done() or knock.done.cancelled():  # cancelled: the sweep closed the socket
                    out[port] = "filtered"
                elif (exc := knock.done.exception()) is not None:
                    out[port] = f"unreachable: {getattr(exc, 'strerror', None) or exc}"
                else:
                    out[port] = "open" if knock.done.result() else "closed"
        except OSError as exc:
            raise Unreachable(f"SYN {address}: {exc.strerror or exc}") from None
        finally:
            for port, knock in mine.items():
                if self._knocks.get((target[0], port)) is knock:
                    del self._knocks[(target[0], port)]
                if not knock.done.done():
                    knock.done.cancel()
        return out

    def _send(self, address: str, target: tuple[int, bytes, bytes], port: int, seq: int) -> None:
        assert self._sock is not None
        segment = syn_segment(target[2], target[1], self.port, port, seq)
        try:
            self._sock.sendto(segment, (address, 0))
            self.sent += 1
        except (BlockingIOError, InterruptedError):
            pass  # lost as a SYN may be on the wire: the caller's retry covers it
        except OSError as exc:
            if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                return  # the neighbour's queue is full while it resolves: lost, retried
            raise OSError(exc.errno, exc.strerror) from None

    def _readable(self) -> None:
        if self._sock is None:
            return
        for _ in range(1024):  # bounded per callback: the loop runs others between
            try:
                packet = self._sock.recv(_RECV)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drain_errors()
                continue
            self.heard += 1
            answer = parse_answer(packet, self.port)
            if answer is None:
                continue
            knock = self._knocks.get((answer.source, answer.port))
            if knock is None or knock.done.done() or answer.ack != (knock.seq + 1) & 0xFFFFFFFF:
                continue
            knock.done.set_result(answer.open)
        self._drain_errors()

    def _drain_errors(self) -> None:
        """Fail every knock to a destination an ICMP error (or the neighbour's failure) was reported for."""
        if self._sock is None:
            return
        for _ in range(256):
            try:
                _data, ancdata, _flags, addr = self._sock.recvmsg(0, shared_udp.ERR_ANCILLARY, shared_udp.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError, OSError):
                break
            code = shared_udp.errno_of(ancdata)
            if not code or not addr:
                continue
            with contextlib.suppress(ValueError):
                value = int(ipaddress.IPv4Address(addr[0]))
                for (dest, _port), knock in self._knocks.items():
                    if dest == value and not knock.done.done():
                        knock.done.set_exception(OSError(code, os.strerror(code)))

    def _drain_stale(self) -> None:
        """What reached the socket before its filter was attached."""
        assert self._sock is not None
        self._sock.setblocking(False)
        for _ in range(4096):
            try:
                self._sock.recv(_RECV)
            except OSError:
                break

    def close(self) -> None:
        """Stop hearing and release the source port; knocks still waiting end as silent."""
        if self._sock is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self._reserve.close()
        for knock in self._knocks.values():
            if not knock.done.done():
                knock.done.cancel()


class _Pool:
    """The sweep's knocker, opened on first use in the running loop (None when it cannot be)."""

    def __init__(self) -> None:
        self.knocker: SynKnocker | None = None
        self.failed: str | None = None  # why no raw socket could be opened

    def get(self) -> SynKnocker | None:
        if self.failed is not None:
            return None
        loop = asyncio.get_running_loop()
        if self.knocker is not None and self.knocker.loop is loop:
            return self.knocker
        self.close()
        try:
            self.knocker = SynKnocker(loop)
        except OSError as exc:
            self.failed = exc.strerror or str(exc)
            return None
        return self.knocker

    def close(self) -> None:
        if self.knocker is not None:
            self.knocker.close()
            self.knocker = None


_ACTIVE: contextvars.ContextVar[_Pool | None] = contextvars.ContextVar("edgeaudit_syn", default=None)


def active() -> SynKnocker | None:
    """The running sweep's knocker: None outside a privileged sweep, or where no raw socket opens."""
    pool = _ACTIVE.get()
    return pool.get() if pool is not None else None


@contextlib.contextmanager
def shared(enabled: bool) -> Iterator[None]:
    """Let the code inside (and the tasks it starts) knock with SYNs when ``enabled`` (root); closed on exit."""
    if not (enabled and SUPPORTED):
        yield
        return
    pool = _Pool()
    token = _ACTIVE.set(pool)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        pool.close()
