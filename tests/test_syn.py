"""The sweep's SYN knocks (probes.wire.syn): segments, answers, and knocks on loopback.

The segments and answers are checked against scapy's own TCP/IP code, an implementation
nobody here wrote. The knocks need CAP_NET_RAW (CI runs as root) and are checked against a
plain connect() to the same ports; the lab test (tests/test_lab.py) does the same against
the lab's real daemons.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP, IPOption_NOP

from probes import tcp
from probes.base import REGISTRY as PROBES
from probes.base import HostSnapshot, Phase, ProbeConfig, ProbeContext, ProbeTarget, Registry, Timeouts
from probes.observations import Mode, PortState
from probes.wire import syn
from profiles.errors import Refused, Unreachable
from scanner.orchestrator import Engine, HostResult, SweepConfig

needs_raw = pytest.mark.skipif(
    os.geteuid() != 0 or not syn.SUPPORTED, reason="a raw socket needs CAP_NET_RAW on Linux (CI runs as root)"
)


@pytest.mark.parametrize(
    ("src", "dst", "sport", "dport", "seq"),
    [("198.18.1.254", "198.18.4.7", 40000, 22, 0), ("10.0.0.1", "10.0.0.2", 65535, 9100, 0xFFFFFFFF)],
)
def test_syn_segment_is_what_scapy_builds(src: str, dst: str, sport: int, dport: int, seq: int) -> None:
    segment = syn.syn_segment(socket.inet_aton(src), socket.inet_aton(dst), sport, dport, seq)
    packet = IP(src=src, dst=dst) / TCP(segment)
    parsed = packet[TCP]
    assert (parsed.sport, parsed.dport, parsed.seq, parsed.ack) == (sport, dport, seq, 0)
    assert parsed.flags == "S"
    assert ("MSS", 1460) in parsed.options
    ours = parsed.chksum
    del packet[TCP].chksum  # scapy computes its own over the pseudo-header
    assert IP(bytes(packet))[TCP].chksum == ours


def _answer(flags: str, ack: int, dport: int = 40000, options: bool = False) -> bytes:
    ip = IP(src="198.18.4.7", dst="198.18.1.254", options=[IPOption_NOP()] * 4 if options else [])
    return bytes(ip / TCP(sport=22, dport=dport, flags=flags, seq=1234, ack=ack))


def test_answers_parse_as_scapy_wrote_them() -> None:
    value = int.from_bytes(socket.inet_aton("198.18.4.7"), "big")
    assert syn.parse_answer(_answer("SA", 101), 40000) == syn.Answer(value, 22, 101, True)
    assert syn.parse_answer(_answer("RA", 101), 40000) == syn.Answer(value, 22, 101, False)
    assert syn.parse_answer(_answer("SA", 101, options=True), 40000) == syn.Answer(value, 22, 101, True)
    assert syn.parse_answer(_answer("R", 0), 40000) is None  # a RST answering a SYN acknowledges it
    assert syn.parse_answer(_answer("A", 101), 40000) is None
    assert syn.parse_answer(_answer("S", 0), 40000) is None  # a SYN of its own: not an answer
    assert syn.parse_answer(_answer("SA", 101, dport=40001), 40000) is None
    assert syn.parse_answer(b"\x60" + bytes(59), 40000) is None  # IPv6


def test_every_truncated_answer_is_none_never_an_error() -> None:
    full = _answer("SA", 101, options=True)
    whole = syn.parse_answer(full, 40000)
    for n in range(len(full)):
        got = syn.parse_answer(full[:n], 40000)
        assert got is None or got == whole  # the fields read are there, or nothing is said
    bad_ihl = bytes([0x41]) + full[1:]  # a header length under 20
    assert syn.parse_answer(bad_ihl, 40000) is None


def test_port_filter_tests_the_destination_port() -> None:
    insns = [struct.unpack("HBBI", syn.port_filter(4242)[i : i + 8]) for i in range(0, 40, 8)]
    assert insns[2] == (0x15, 0, 1, 4242)
    assert insns[3] == (0x06, 0, 0, syn.SNAPLEN) and insns[4] == (0x06, 0, 0, 0)


@pytest.fixture
def listening() -> Iterator[tuple[socket.socket, int, int]]:
    """A listening loopback socket (its port) and a port nothing listens on."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    try:
        yield server, server.getsockname()[1], closed.getsockname()[1]
    finally:
        server.close()
        closed.close()


@needs_raw
async def test_knocks_agree_with_connect_and_hear_nothing_else(listening: tuple[socket.socket, int, int]) -> None:
    server, open_port, closed_port = listening
    with syn.shared(True):
        knocker = syn.active()
        assert knocker is not None
        assert await knocker.knock_all("127.0.0.1", [open_port, closed_port], 2.0) == {
            open_port: "open",
            closed_port: "closed",
        }
        await tcp.connect_only("127.0.0.1", open_port, 2.0)
        with pytest.raises(Refused):
            await tcp.connect_only("127.0.0.1", closed_port, 2.0)
        assert knocker.sent == 2
        # Other TCP traffic on the host never reaches the knocker's socket (its BPF filter).
        heard = knocker.heard
        _reader, writer = await asyncio.open_connection("127.0.0.1", open_port)
        accepted, _ = server.accept()
        writer.write(b"x" * 100_000)
        await writer.drain()
        writer.close()
        accepted.close()
        await asyncio.sleep(0.05)
        assert knocker.heard == heard
        for other in ("::1", "localhost"):  # IPv6 and names are connect()'s
            with pytest.raises(Unreachable):
                await knocker.knock_all(other, [open_port], 1.0)


@needs_raw
async def test_an_answer_counts_only_when_it_acknowledges_that_knock() -> None:
    """Forged answers (wrong ack, wrong port, a RST that acknowledges nothing) are not the device's."""
    with syn.shared(True):
        knocker = syn.active()
        assert knocker is not None
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        raw = knocker._sock
        assert raw is not None
        loop.remove_reader(raw.fileno())
        raw.close()
        ours.setblocking(False)
        knocker._sock = ours  # what "arrives" is what the test writes
        loop.add_reader(ours.fileno(), knocker._readable)
        seqs: list[int] = []
        knocker._send = lambda _address, _target, _port, seq: seqs.append(seq)  # type: ignore[method-assign,assignment]
        task = asyncio.create_task(knocker.knock_all("198.18.4.7", [22], 1.0, tries=1))
        await asyncio.sleep(0.01)
        (seq,) = seqs

        def arrive(flags: str, ack: int, sport: int = 22, dport: int = knocker.port) -> None:
            theirs.send(
                bytes(IP(src="198.18.4.7", dst="198.18.1.254") / TCP(sport=sport, dport=dport, flags=flags, ack=ack))
            )

        arrive("SA", seq)  # acknowledges seq, not seq + 1
        arrive("SA", (seq + 1) & 0xFFFFFFFF, sport=23)
        arrive("R", 0)
        arrive("SA", (seq + 1) & 0xFFFFFFFF, dport=knocker.port ^ 1)
        await asyncio.sleep(0.05)
        assert not task.done()
        arrive("RA", (seq + 1) & 0xFFFFFFFF)
        assert await task == {22: "closed"}
        assert await knocker.knock_all("198.18.4.7", [22], 0.2, tries=1) == {22: "filtered"}
        theirs.close()


@needs_raw
async def test_a_privileged_sweep_finds_ports_without_a_connection(listening: tuple[socket.socket, int, int]) -> None:
    server, open_port, closed_port = listening
    server.setblocking(False)
    config = SweepConfig(
        probe_config=ProbeConfig(tcp_ports=(open_port, closed_port), privileged=True),
        phases=(Phase.PRESENCE, Phase.DISCOVERY),
        probes=frozenset({"tcp-connect"}),
        timeouts=Timeouts(connect=1.0),
    )
    registry = Registry({"tcp-connect": PROBES.get("tcp-connect")})
    results: list[HostResult] = []

    class Sink:
        def host_done(self, result: HostResult) -> None:
            results.append(result)

    await Engine(config, [], registry=registry).sweep(["127.0.0.1"], Sink(), asyncio.Event())
    (result,) = results
    assert result.state == "up"
    assert [s.port for s in result.device.services] == [open_port]
    with pytest.raises(BlockingIOError):  # the handshake never completed: nothing to accept
        server.accept()
    # Unprivileged, the same sweep connects (and the listener has a connection to accept).
    plain = SweepConfig(
        probe_config=ProbeConfig(tcp_ports=(open_port,), privileged=False),
        phases=(Phase.PRESENCE, Phase.DISCOVERY),
        probes=frozenset({"tcp-connect"}),
    )
    results.clear()
    await Engine(plain, [], registry=registry).sweep(["127.0.0.1"], Sink(), asyncio.Event())
    await asyncio.sleep(0.05)
    accepted, _ = server.accept()
    accepted.close()


@needs_raw
async def test_knock_all_asks_every_port_and_leaves_out_one_in_flight(
    listening: tuple[socket.socket, int, int],
) -> None:
    _server, open_port, closed_port = listening
    with syn.shared(True):
        knocker = syn.active()
        assert knocker is not None
        got = await knocker.knock_all("127.0.0.1", [open_port, closed_port, open_port], 1.0)
        assert got == {open_port: "open", closed_port: "closed"}
        assert knocker.sent == 2  # a port named twice is asked once; nothing left to resend
        knocker._knocks[(0x7F000001, closed_port)] = syn._Knock(1, asyncio.get_running_loop().create_future())
        got = await knocker.knock_all("127.0.0.1", [open_port, closed_port], 1.0)
        assert got == {open_port: "open"}  # the one in flight is the caller's to ask


async def test_one_run_for_every_port_connects_when_no_raw_socket_opened(
    listening: tuple[socket.socket, int, int],
) -> None:
    """Root, but no knocker (a raw socket refused): the run that covers every port connects to each."""
    _server, open_port, closed_port = listening
    probe = tcp.TcpConnect()
    config = ProbeConfig(tcp_ports=(open_port, closed_port), privileged=True)
    host = HostSnapshot("127.0.0.1", frozenset(), ())
    assert probe.targets(host, config) == ([None] if syn.SUPPORTED else probe.targets(host, config))
    assert probe.targets(HostSnapshot("::1", frozenset(), ()), config) != [None]
    ctx = ProbeContext(
        timeouts=Timeouts(connect=1.0), mode=Mode.SAFE, config=config, deadline=asyncio.get_running_loop().time() + 5
    )
    with syn.shared(False):
        found = await probe.run(ProbeTarget("127.0.0.1"), ctx)
    assert {(o.service.port, o.state) for o in found if isinstance(o, PortState) and o.service} == {
        (open_port, "open"),
        (closed_port, "closed"),
    }
