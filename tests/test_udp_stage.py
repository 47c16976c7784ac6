"""Issue 20: the sweep's UDP stage (callbacks and timers, a task only for an answered exchange) observes
what a host's own probe run observes (a coroutine awaiting each exchange on a connected socket).

Each sweep-wide probe (SIP OPTIONS, SNMP v3 discovery, NTP mode 3, the DNS canary, SSDP) meets a
service that answers (emulated devices, a fake resolver, a fake root device), one that is silent (UDP
dropped), a closed port (ICMP port unreachable) and one that answers garbage. Both forms run at once
against the same services and must reach the same observations, and those must be the right ones:
an answer is read, silence and refusal are port states or nothing as each probe defines them, garbage
is a failure (SIP ignores what is not its transaction, as RFC 3261 17.1.2 has a client do).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import gc
import os
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

import profiles
from probes.base import REGISTRY, HostSnapshot, Phase, Probe, ProbeConfig, ProbeTarget, Timeouts
from probes.datagram import DatagramProbe
from probes.observations import NtpInfo, Observation, PortState, ProbeFailure, Service, SipInfo, SnmpInfo, UpnpInfo
from probes.wire import shared_udp
from scanner import guard
from scanner.orchestrator import Engine, SweepConfig
from scanner.udp_stage import UdpStage
from tests.conftest import FakeResolver, StartDevice, fresh_address

READ_S = 0.5  # a silent exchange lasts 1.5 s (one resend a second later), SIP's 2.0 s (timer E)
NAMES = ("sip-options", "snmp-discovery", "ntp-query", "dns", "upnp")


def _on(name: str, port: int) -> Probe:
    """The registered probe, aimed at ``port`` (the fixed DNS and SSDP ports too)."""
    cls = REGISTRY.get(name)

    class At(cls):  # type: ignore[valid-type,misc]
        def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
            return [dataclasses.replace(s, port=port) for s in super().targets(host, config) if s is not None]

    At.name = name
    return At()


def _engine(per_host: int = 6) -> Engine:
    config = SweepConfig(
        timeouts=Timeouts(connect=0.5, read=READ_S, probe=4.0, host=20.0),
        probe_config=ProbeConfig(tcp_ports=()),
        per_host=per_host,
        phases=(Phase.PRESENCE, Phase.DISCOVERY),
    )
    return Engine(config, profiles.load_all())


async def _alone(engine: Engine, probe: Probe, address: str) -> list[Observation]:
    """A host's own run of the probe: awaited, on a connected socket of its own (no sweep)."""
    assert shared_udp.active() is None
    snapshot = HostSnapshot(address, frozenset(), ())
    [service] = probe.targets(snapshot, engine.config.probe_config)
    ctx, allowed = engine._context(probe, snapshot)
    target = ProbeTarget(address, service)
    return await guard.guarded(probe, target, probe.run(target, ctx), ctx.deadline, allowed)


def _same(found: Sequence[Observation]) -> list[dict[str, Any]]:
    """Observations as data, times left out (a clock read a moment apart, a Date header a second apart):
    ``_close`` compares those."""
    out = []
    for o in found:
        row = {"type": type(o).__name__, **dataclasses.asdict(o)}
        out.append({k: "time" if isinstance(v, float) or k == "date" else v for k, v in row.items()})
    return out


def _close(a: Sequence[Observation], b: Sequence[Observation]) -> bool:
    """The times of two runs' observations agree within the 1 s resolution of a Date header."""
    times = [[v for v in dataclasses.asdict(o).values() if isinstance(v, float)] for o in (*a, *b)]
    half = len(times) // 2
    return all(
        abs(x - y) <= 1.1 for t, u in zip(times[:half], times[half:], strict=True) for x, y in zip(t, u, strict=True)
    )


class _Junk(asyncio.DatagramProtocol):
    """Answers every datagram with bytes no protocol reads."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"\x00\xffjunk" * 4, addr)


class _Ssdp(asyncio.DatagramProtocol):
    """A root device's SSDP answer; by default its LOCATION is elsewhere (so nothing is fetched)."""

    def __init__(self, location: str = "http://192.0.2.1:5000/d.xml") -> None:
        self.location = location

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = "HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nUSN: uuid:1::upnp:rootdevice\r\n"
        answer += f"SERVER: Linux/5.10 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: {self.location}\r\n\r\n"
        self.transport.sendto(answer.encode(), addr)


class _Quiet(asyncio.DatagramProtocol):
    """Reads and never answers (UDP dropped); counts what came."""

    def __init__(self) -> None:
        self.count = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.count += 1


@pytest.fixture(autouse=True)
async def no_callback_errors() -> AsyncIterator[None]:
    """The stage's work runs in loop callbacks, where an exception is only logged: here it fails the test."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield
    loop.set_exception_handler(None)
    assert errors == [], errors


@pytest.fixture
async def udp_servers() -> AsyncIterator[list[asyncio.DatagramTransport]]:
    held: list[asyncio.DatagramTransport] = []
    yield held
    for transport in held:
        transport.close()


async def _serve(
    held: list[asyncio.DatagramTransport], proto: asyncio.DatagramProtocol, port: int = 0
) -> tuple[str, int]:
    return await _serve_at(held, proto, fresh_address(), port)


async def _serve_at(
    held: list[asyncio.DatagramTransport], proto: asyncio.DatagramProtocol, address: str, port: int
) -> tuple[str, int]:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: proto, local_addr=(address, port))
    held.append(transport)
    return address, int(transport.get_extra_info("sockname")[1])


def _closed_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


async def _cases(emulated: StartDevice, held: list[asyncio.DatagramTransport]) -> dict[str, tuple[str, str, int]]:
    """case -> (probe name, address, port)."""
    router = await emulated(persona="router", services=["snmp", "ntp"], communities=["public"])
    pbx = await emulated(persona="pbx", services=["sip"], sip_user_agent="Asterisk PBX 20.5.0")
    dns_at, _ = await _serve(held, FakeResolver({"example.com": "93.184.216.34"}, True, False), 53)
    ssdp_at, _ = await _serve(held, _Ssdp(), 1900)
    cases = {
        "sip-options answered": ("sip-options", pbx.spec.address, pbx.bound["sip"]),
        "snmp-discovery answered": ("snmp-discovery", router.spec.address, router.bound["snmp"]),
        "ntp-query answered": ("ntp-query", router.spec.address, router.bound["ntp"]),
        "dns answered": ("dns", dns_at, 53),
        "upnp answered": ("upnp", ssdp_at, 1900),
    }
    for name in NAMES:
        quiet_at, quiet_port = await _serve(held, _Quiet())
        junk_at, junk_port = await _serve(held, _Junk())
        closed_at = fresh_address()
        cases[f"{name} silent"] = (name, quiet_at, quiet_port)
        cases[f"{name} garbage"] = (name, junk_at, junk_port)
        cases[f"{name} closed"] = (name, closed_at, _closed_port(closed_at))
    return cases


def _expected(case: str, found: Sequence[Observation]) -> None:
    """What each case must observe, whichever form ran it."""
    name, kind = case.rsplit(" ", 1)
    kinds = [type(o) for o in found]
    if kind == "answered":
        want = {"sip-options": SipInfo, "snmp-discovery": SnmpInfo, "ntp-query": NtpInfo, "upnp": UpnpInfo}
        if name == "dns":
            assert [getattr(o, "addresses", None) for o in found] == [("93.184.216.34",)], found
        else:
            assert want[name] in kinds, found
        assert ProbeFailure not in kinds, found
    elif kind == "garbage" and name != "sip-options":
        assert [(o.error, o.probe) for o in found if isinstance(o, ProbeFailure)] == [("MalformedResponse", name)]
    elif name in ("snmp-discovery", "ntp-query"):
        assert found == [], found  # silence or refusal: no agent, no server (not a failure, not a device)
    else:
        state = "closed" if kind == "closed" else "filtered"  # SIP garbage: ignored, so silence
        assert [o.state for o in found if isinstance(o, PortState)] == [state], found


async def test_the_stage_observes_what_a_hosts_own_run_observes(
    emulated: StartDevice, udp_servers: list[asyncio.DatagramTransport]
) -> None:
    cases = await _cases(emulated, udp_servers)
    engine = _engine()

    async def staged() -> dict[str, list[Observation]]:
        out: dict[str, list[Observation]] = {}
        with shared_udp.shared():
            stages = {
                case: UdpStage([_on(n, port)], engine.config.probe_config, 6, engine._context)
                for case, (n, _a, port) in cases.items()
            }
            futures = {
                case: stages[case].start(HostSnapshot(address, frozenset(), ()))
                for case, (_n, address, _p) in cases.items()
            }
            for case, future in futures.items():
                out[case] = list(await asyncio.wait_for(future, 10))
        answered = {case for case in cases if case.endswith("answered")}
        for case, stage in stages.items():
            # per-host work only where the host answered: one task for an answered exchange, none otherwise
            assert stage.tasks == (1 if case in answered else 0), (case, stage.tasks)
        # and counted by the loop itself: every task made on the shared sockets' side is a probe run's
        assert sorted(made) == sorted(f"{cases[c][0]} {cases[c][1]}" for c in answered), made
        return out

    made: list[str] = []  # the probe and address of each task created where the shared sockets are open
    loop = asyncio.get_running_loop()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        if (
            shared_udp.active() is not None
            and getattr(coro, "__qualname__", "")
            != "test_the_stage_observes_what_a_hosts_own_run_observes.<locals>.staged"
        ):
            frame = coro.cr_frame
            made.append(f"{frame.f_locals['probe'].name} {frame.f_locals['target'].address}")
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)

    async def alone() -> dict[str, list[Observation]]:
        runs = {case: _alone(engine, _on(n, port), address) for case, (n, address, port) in cases.items()}
        return dict(zip(runs, await asyncio.gather(*runs.values()), strict=True))

    # at once: the host's own runs outside any sweep (connected sockets), the stage on the shared ones
    try:
        own, stage = await asyncio.gather(alone(), staged())
    finally:
        loop.set_task_factory(None)
    for case in cases:
        _expected(case, own[case])
        assert _same(stage[case]) == _same(own[case]), case
        assert _close(stage[case], own[case]), (case, stage[case], own[case])


async def test_an_address_that_answers_nothing_costs_no_task_and_per_host_bounds_its_exchanges(
    udp_servers: list[asyncio.DatagramTransport],
) -> None:
    """Three probes at one silent address, two at a time: the third waits for one of the first two; no task."""
    quiet = _Quiet()
    address, port = await _serve(udp_servers, quiet)
    engine = _engine(per_host=2)
    early = [_on(name, port) for name in ("snmp-discovery", "ntp-query", "dns")]
    loop = asyncio.get_running_loop()
    with shared_udp.shared():
        stage = UdpStage(early, engine.config.probe_config, 2, engine._context)
        started = loop.time()
        found = await asyncio.wait_for(stage.start(HostSnapshot(address, frozenset(), ())), 10)
        took = loop.time() - started
    assert stage.tasks == 0
    assert quiet.count == 6  # two sends each
    assert [o.state for o in found if isinstance(o, PortState)] == ["filtered"]  # the DNS canary's port state
    # two at once, then the third: two silent spans (1.5 s each), not one and not three
    assert 2 * (READ_S + 1.0) - 0.1 < took < 3 * (READ_S + 1.0), took


async def test_cancelling_an_address_ends_its_exchanges_and_its_answered_work_at_once(
    udp_servers: list[asyncio.DatagramTransport],
) -> None:
    """The sweep stopped: nothing more is sent, the socket no longer hears the peer, the answered task ends."""
    quiet = _Quiet()
    address, port = await _serve(udp_servers, quiet)
    # a root device whose description never comes: its answered task is in flight when the address is cancelled
    hangs = fresh_address()
    held: list[asyncio.StreamWriter] = []

    async def hang(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hang, hangs, 0)
    http_port = server.sockets[0].getsockname()[1]
    await _serve_at(udp_servers, _Ssdp(f"http://{hangs}:{http_port}/d.xml"), hangs, 1900)
    engine = _engine()
    try:
        with shared_udp.shared() as pool:
            assert pool is not None
            early = [_on("snmp-discovery", port), _on("ntp-query", port)]  # one peer: the second on its own socket
            silent = UdpStage(early, engine.config.probe_config, 6, engine._context)
            waiting = silent.start(HostSnapshot(address, frozenset(), ()))
            name = f"upnp {hangs} udp/1900"

            async def fetch_started(n: int) -> None:
                for _ in range(100):  # until the n-th description's GET is waiting
                    await asyncio.sleep(0.02)
                    if len(held) == n:
                        return

            answered = UdpStage([_on("upnp", 1900)], engine.config.probe_config, 6, engine._context)
            fetching = answered.start(HostSnapshot(hangs, frozenset(), ()))
            await fetch_started(1)
            [task] = [t for t in asyncio.all_tasks() if t.get_name() == name]
            again = UdpStage([_on("upnp", 1900)], engine.config.probe_config, 6, engine._context)
            elsewhere = again.start(HostSnapshot(hangs, frozenset(), ()))
            await fetch_started(2)
            assert len(held) == 2 and answered.tasks == again.tasks == 1
            [other] = [t for t in asyncio.all_tasks() if t.get_name() == name and t is not task]
            # a run cancelled by something other than the stage is said, not lost (nor the address's wait endless)
            other.cancel()
            [failure] = await asyncio.wait_for(elsewhere, 1.0)
            assert isinstance(failure, ProbeFailure) and (failure.probe, failure.error) == ("upnp", "Cancelled")
            assert task.done() is False, "the other address's answered work goes on"
            sent = quiet.count
            assert sent >= 2 and any(s.peers for group in pool._sockets.values() for s in group)
            waiting.cancel()
            fetching.cancel()
            await asyncio.sleep(0)
            assert all(not s.peers for group in pool._sockets.values() for s in group)  # now, not at their timeout
            await asyncio.wait([task], timeout=1.0)  # (httpx's own cleanup takes a few steps of the loop)
            assert task.cancelled()
            await asyncio.sleep(READ_S + 1.2)  # past every resend the exchanges had left
            assert quiet.count == sent  # nothing more was sent once it was cancelled
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_an_address_with_no_route_is_a_failure_of_each_probe_not_of_the_sweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kernel has no route to it (so no source address for it): each probe's run fails, the stage goes on."""

    def no_route(address: str) -> str:
        raise OSError(errno.ENETUNREACH, os.strerror(errno.ENETUNREACH))

    monkeypatch.setattr(shared_udp, "source_for", no_route)
    engine = _engine()
    early = [_on(name, 9) for name in NAMES]
    with shared_udp.shared():
        stage = UdpStage(early, engine.config.probe_config, 6, engine._context)
        found = await asyncio.wait_for(stage.start(HostSnapshot("192.0.2.1", frozenset(), ())), 5)
    failures = sorted((o.probe, o.error) for o in found if isinstance(o, ProbeFailure))
    assert failures == sorted((name, "Unreachable") for name in NAMES), found
    assert len(found) == len(NAMES)


def test_the_stage_leaves_no_reference_cycle() -> None:
    """Silence, refusal and garbage, judged on the spot: nothing only the cyclic collector frees."""
    from tests.test_no_cycles import _saved_garbage

    async def sweep() -> int:
        held: list[asyncio.DatagramTransport] = []
        quiet_at, quiet_port = await _serve(held, _Quiet())
        junk_at, junk_port = await _serve(held, _Junk())
        engine = _engine()
        done = 0
        try:
            with shared_udp.shared():
                places = [(junk_at, junk_port), (quiet_at, quiet_port), (junk_at, _closed_port(junk_at))] * 4
                stages = [
                    UdpStage([_on(n, port) for n in NAMES], engine.config.probe_config, 6, engine._context)
                    for _, port in places
                ]
                for found in await asyncio.wait_for(
                    asyncio.gather(
                        *(s.start(HostSnapshot(a, frozenset(), ())) for s, (a, _p) in zip(stages, places, strict=True))
                    ),
                    10,
                ):
                    done += bool(found)
        finally:
            for transport in held:
                transport.close()
        return done

    gc.collect()
    gc.disable()
    try:
        assert asyncio.run(sweep()) == 12
    finally:
        left = _saved_garbage()
    kinds = {"Asking", "_Host", "SharedEndpoint", "MalformedResponse", "Refused", "Timeout", "Unreachable"}
    assert not left & kinds, left & kinds


def test_every_sweep_wide_discovery_probe_has_the_datagram_form() -> None:
    """A sweep-wide probe without it would cost a task per address again (the stage still runs it, as a task)."""
    wide = {name for name, cls in REGISTRY.probes.items() if cls.sweep_wide}
    assert wide == set(NAMES)
    assert all(issubclass(REGISTRY.get(name), DatagramProbe) for name in wide)
