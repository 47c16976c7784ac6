"""The sweep's shared UDP sockets and its UDP stage, on loopback.

One unconnected socket carries every exchange; replies reach only the exchange talking to their
source; a closed port is still "closed" (ICMP port unreachable, read from the socket's error
queue), not silence; and the UDP stage asks every address before the first one's wait is over,
whatever --concurrency is.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncGenerator
from typing import cast

import pytest

import probes
import profiles
from probes.base import Phase, ProbeConfig, Screened, Timeouts
from probes.observations import PortState
from probes.wire import shared_udp, udp
from profiles.errors import MalformedResponse, Refused, Timeout
from scanner import pipeline
from scanner.orchestrator import Engine, HostResult, SweepConfig
from scanner.udp_stage import UdpStage

pytestmark = pytest.mark.skipif(not shared_udp.SUPPORTED, reason="IP_RECVERR is Linux's")


class _Echo(asyncio.DatagramProtocol):
    """Answers each datagram with its own bytes; ``garbage`` first sends one it does not match."""

    def __init__(self, garbage: bool = False) -> None:
        self.garbage = garbage

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.garbage:
            self.transport.sendto(b"\x00garbage", addr)
        self.transport.sendto(data, addr)


async def _echo(address: str, garbage: bool = False) -> tuple[asyncio.DatagramTransport, int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Echo(garbage), local_addr=(address, 0))
    return transport, int(transport.get_extra_info("sockname")[1])


def _closed_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
    return port


def _ask(address: str, port: int, tag: bytes) -> asyncio.Future[udp.Collected]:
    return asyncio.ensure_future(
        udp.collect(address, port, lambda _local: tag, lambda data: data == tag, read_s=1.0, schedule=(0.0,))
    )


async def test_one_socket_for_every_peer_and_each_reply_to_its_exchange() -> None:
    servers = [await _echo(f"127.0.219.{i}") for i in range(1, 6)]
    try:
        with shared_udp.shared() as pool:
            assert pool is not None
            asks = [_ask(f"127.0.219.{i}", port, b"q%d" % i) for i, (_t, port) in enumerate(servers, 1)]
            got = await asyncio.gather(*asks)
            assert [g.kept for g in got] == [[b"q%d" % i] for i in range(1, 6)]
            assert pool.opened == 1
    finally:
        for transport, _ in servers:
            transport.close()


async def test_two_exchanges_with_one_peer_keep_a_local_port_each() -> None:
    transport, port = await _echo("127.0.219.10")
    try:
        with shared_udp.shared() as pool:
            assert pool is not None
            got = await asyncio.gather(*(_ask("127.0.219.10", port, b"same-peer-%d" % i) for i in range(3)))
            # each got its own answer (a shared port would hand one exchange's reply to the other)
            assert [g.kept for g in got] == [[b"same-peer-%d" % i] for i in range(3)]
            assert [g.rejected for g in got] == [0, 0, 0]
            assert pool.opened == 3
    finally:
        transport.close()


async def test_a_closed_port_is_refused_not_silent() -> None:
    closed = _closed_port("127.0.219.20")
    transport, port = await _echo("127.0.219.21")
    try:
        with shared_udp.shared():
            refused = _ask("127.0.219.20", closed, b"anyone")
            answered = _ask("127.0.219.21", port, b"echo")
            with pytest.raises(Refused):
                await refused
            assert (await answered).kept == [b"echo"]  # the other exchange on the socket is untouched
    finally:
        transport.close()


async def test_garbage_from_the_peer_is_not_silence_and_strangers_are_dropped() -> None:
    transport, port = await _echo("127.0.219.30", garbage=True)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with shared_udp.shared() as pool:
            assert pool is not None
            asked = _ask("127.0.219.30", port, b"real")
            await asyncio.sleep(0)
            local = pool.endpoint(asyncio.DatagramProtocol, "127.0.219.31", 9)
            assert local is not None
            name = local[0].get_extra_info("sockname")
            local[0].close()
            stranger.sendto(b"unsolicited", name)
            got = await asked
            assert got.kept == [b"real"] and got.rejected == 1
            await asyncio.sleep(0.05)
            assert pool.dropped >= 1
    finally:
        stranger.close()
        transport.close()


async def test_exchange_reports_garbage_only_as_malformed() -> None:
    """exchange() on the shared socket keeps telling garbage from silence, as on a connected one."""

    class _Garbage(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.DatagramTransport, transport)

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(b"\xffnot-an-answer", addr)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Garbage, local_addr=("127.0.219.40", 0))
    port = transport.get_extra_info("sockname")[1]
    ctx = _ctx(read=0.3)
    try:
        with shared_udp.shared():
            with pytest.raises(MalformedResponse):
                await udp.exchange("127.0.219.40", port, lambda _l: b"ask", lambda d: d == b"ok", ctx, (0.0,))
            with pytest.raises(Timeout):  # a silent port (nothing bound, ICMP would refuse: so a sink)
                sink, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.219.41", 0))
                try:
                    silent = sink.get_extra_info("sockname")[1]
                    await udp.exchange("127.0.219.41", silent, lambda _l: b"ask", lambda d: True, ctx, (0.0,))
                finally:
                    sink.close()
    finally:
        transport.close()


def _ctx(read: float) -> probes.base.ProbeContext:
    from probes.base import ProbeContext
    from probes.observations import Mode

    loop = asyncio.get_running_loop()
    return ProbeContext(
        timeouts=Timeouts(connect=read, read=read, probe=5.0), mode=Mode.DEFAULT, config=ProbeConfig(),
        deadline=loop.time() + 5.0,
    )  # fmt: skip


async def _items(n: int, down_every: int = 0) -> AsyncGenerator[Screened, None]:
    for i in range(n):
        if down_every and i % down_every == 0:
            yield Screened(f"10.0.0.{i}", down="no ARP answer")
        else:
            yield Screened(f"10.0.0.{i}")


async def test_pipeline_hands_items_on_at_once_and_its_window_bounds_the_work() -> None:
    running, peak, seen = 0, 0, []

    async def work(item: Screened) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return item.address

    stage = pipeline.ahead(
        _items(40, down_every=4), work, lambda i: i.down is None, window=5, paces=[pipeline.steady(1e6)]
    )
    async for item, task in stage:
        seen.append((item, task))
    assert peak <= 5
    assert [i.address for i, _ in seen] == [f"10.0.0.{n}" for n in range(40)]  # the upstream's order
    assert all((task is None) == (item.down is not None) for item, task in seen)
    assert [await t for i, t in seen if t is not None] == [i.address for i, t in seen if t is not None]


async def test_the_window_counts_work_taken_until_it_is_done() -> None:
    """A taker slower than the stage: the stage never has more than ``window`` started and unfinished."""
    started: list[str] = []
    gate = asyncio.Event()

    async def work(item: Screened) -> str:
        started.append(item.address)
        await gate.wait()
        return item.address

    taken = []
    async with contextlib.aclosing(
        pipeline.ahead(_items(20), work, lambda i: True, window=3, paces=[pipeline.steady(1e6)])
    ) as stage:
        async for _item, task in stage:
            taken.append(task)
            await asyncio.sleep(0.05)
            if len(taken) == 3:
                break
        assert len(started) == 3  # three started and none done: the stage waits for its window
    gate.set()
    assert [await t for t in taken[:2] if t is not None] == ["10.0.0.0", "10.0.0.1"]
    assert taken[2] is not None and taken[2].cancelled()  # the taker stopped at it: nobody would await it


async def test_pipeline_paces_its_starts_and_raises_what_failed() -> None:
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    async def work(item: Screened) -> None:
        starts.append(loop.time())

    async for _item, task in pipeline.ahead(
        _items(21), work, lambda i: True, window=100, paces=[pipeline.steady(100.0)]
    ):
        assert task is not None
        await task
    # 21 starts at 100 a second, bursts of 2: at least 0.18 s from the first to the last
    assert starts[-1] - starts[0] >= 0.17

    # Two paces, both kept: the neighbour table's (10 a second after 5 at once) and a fast user rate.
    starts.clear()
    paces = [pipeline.steady(1e6), pipeline.Pace(10.0, 5)]
    async for _item, task in pipeline.ahead(_items(8), work, lambda i: True, window=100, paces=paces):
        assert task is not None
        await task
    assert starts[4] - starts[0] < 0.05  # the burst: at once
    assert starts[7] - starts[4] >= 0.28  # then 10 a second

    async def broken_upstream() -> AsyncGenerator[Screened, None]:
        yield Screened("10.0.0.1")
        raise RuntimeError("upstream bug")

    with pytest.raises(RuntimeError, match="upstream bug"):
        async for _ in pipeline.ahead(broken_upstream(), work, lambda i: True, window=2, paces=[pipeline.steady(1e6)]):
            pass


class _Sink:
    def __init__(self) -> None:
        self.results: list[HostResult] = []

    def host_done(self, result: HostResult) -> None:
        self.results.append(result)


class _Silent(asyncio.DatagramProtocol):
    """A SIP port that reads and never answers (UDP silently dropped): records when each request came."""

    def __init__(self, arrivals: dict[str, float], counts: dict[str, int]) -> None:
        self.arrivals, self.counts = arrivals, counts

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.arrivals.setdefault(self.address, time.monotonic())
        self.counts[self.address] = self.counts.get(self.address, 0) + 1

    address = ""


async def test_the_udp_stage_asks_every_host_before_the_first_wait_ends_whatever_the_concurrency() -> None:
    probes.load_all()
    loop = asyncio.get_running_loop()
    addresses = [f"127.0.219.{50 + i}" for i in range(8)]
    arrivals: dict[str, float] = {}
    counts: dict[str, int] = {}
    sinks = []
    port = _closed_port("127.0.219.50")
    for address in addresses:

        def factory(a: str = address) -> _Silent:
            proto = _Silent(arrivals, counts)
            proto.address = a
            return proto

        transport, _ = await loop.create_datagram_endpoint(factory, local_addr=(address, port))
        sinks.append(transport)
    config = SweepConfig(
        timeouts=Timeouts(connect=0.3, read=0.5, probe=4.0, host=20.0),
        probe_config=ProbeConfig(sip_port=port, tcp_ports=()),
        max_hosts=1,  # one host at a time in the host phases
        per_host=1,
        phases=(Phase.PRESENCE, Phase.DISCOVERY),
        probes=frozenset({"sip-options"}),
    )
    sink = _Sink()
    try:
        await Engine(config, profiles.load_all()).sweep(addresses, sink, asyncio.Event())
    finally:
        for transport in sinks:
            transport.close()
    assert sorted(arrivals) == addresses
    # A request waits 0.5 s plus three timer-E retransmits: every host was asked well inside the first wait.
    assert max(arrivals.values()) - min(arrivals.values()) < 0.5, arrivals
    states = {r.address: r.state for r in sink.results}
    assert set(states) == set(addresses)
    for result in sink.results:
        assert result.state == "down"  # silence read as silence ("filtered"), not as a device
    # One OPTIONS transaction per address (the first send and timer E's retransmits within 0.5 s + 3 T1):
    # the host phase did not run sip-options a second time after the stage.
    assert set(counts.values()) <= {3, 4}, counts


async def test_the_stage_finds_what_the_host_phase_finds() -> None:
    """A closed SIP port seen by the stage reaches the host's observations as "closed"."""
    probes.load_all()
    port = _closed_port("127.0.219.70")
    config = SweepConfig(
        timeouts=Timeouts(connect=0.3, read=0.5, probe=4.0, host=20.0),
        probe_config=ProbeConfig(sip_port=port, tcp_ports=()),
        phases=(Phase.PRESENCE, Phase.DISCOVERY),
        probes=frozenset({"sip-options"}),
    )
    engine = Engine(config, profiles.load_all())
    stage = UdpStage([engine.registry.get("sip-options")()], config.probe_config, config.per_host, engine._context)
    with shared_udp.shared():
        found = await engine._ahead(stage, Screened("127.0.219.70", screened=False))
    assert [o for o in found if isinstance(o, PortState)] == [PortState(found[0].service, state="closed")]
