"""Shared fixtures: emulated devices on loopback (port 0) and a one-host sweep helper."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
import yaml

import probes
import profiles
from lab.emulator.devices import Device
from lab.emulator.spec import DeviceSpec
from probes.base import ProbeConfig, Timeouts
from probes.login import LoginOptions
from probes.observations import Mode
from probes.options import OPTIONS
from scanner.orchestrator import Engine, HostResult, SweepConfig

ROOT = Path(__file__).resolve().parent.parent
# `edgeaudit scan` flags for emulator fleets on loopback (their services on these non-privileged ports)
FLEET_PORTS = ["--ports", "2222:ssh,2323:telnet,8080:http", "--snmp-port", "1161", "--sip-port", "15060"]
FLEET_PORTS += ["--ntp-port", "1123"]
FAST = ["--timeout", "0.5", "--connect-timeout", "0.5", "--probe-timeout", "2", "-q"]
probes.load_all()
_addr = itertools.count(1)


def fresh_address() -> str:
    """A loopback address no other test uses (127.0.200.x / 127.0.201.x ...)."""
    n = next(_addr)
    return f"127.0.{200 + n // 250}.{1 + n % 250}"


StartDevice = Callable[..., Awaitable[Device]]


@pytest.fixture
async def emulated() -> AsyncIterator[StartDevice]:
    """Start emulated devices on fresh loopback addresses, ports picked by the OS."""
    started: list[Device] = []

    async def start(**spec: Any) -> Device:
        services = spec.pop("services", ["ssh", "http"])
        data = {
            "name": "dut",
            "address": fresh_address(),
            "persona": "router",
            "model": "EL-R100",
            "firmware": "3.2.1",
            "services": {s: 0 for s in services},
            **spec,
        }
        device = Device(DeviceSpec.from_dict(data))
        await device.start()
        started.append(device)
        return device

    yield start
    for d in started:
        await d.stop()


def scan_config(
    tcp: Sequence[tuple[int, str]] = (),
    *,
    snmp: int = 9,
    sip: int = 9,
    ntp: int = 9,
    mode: Mode = Mode.DEFAULT,
    vantage: str = "lan",
    pace: float | None = None,
    **timeouts: float,
) -> SweepConfig:
    """A one-host sweep config: TCP services as (port, name), the UDP ports (9: nothing there), short timeouts."""
    closed = 1  # tcp/1 is closed on loopback: proves the host is up even with no service
    pc = ProbeConfig(
        tcp_ports=(*[p for p, _ in tcp], closed), port_names=tuple(tcp), snmp_port=snmp, sip_port=sip, ntp_port=ntp
    )
    if pace is not None:
        pc = pc.with_options(LoginOptions(login_pace_s=pace))
    t = {"connect": 1.0, "read": 1.0, "probe": 4.0, "host": 20.0, **timeouts}
    return SweepConfig(mode=mode, timeouts=Timeouts(**t), probe_config=pc, vantage=vantage)


def with_settings(pc: ProbeConfig, **settings: Any) -> ProbeConfig:
    """``pc`` with settings named as ProbeConfig fields or as option-set fields (found by their declarations)."""
    own = {f.name for f in dataclasses.fields(ProbeConfig)}
    pc = dataclasses.replace(pc, **{k: v for k, v in settings.items() if k in own})
    for d in OPTIONS.declared():
        if d.name in settings:
            pc = pc.with_options(dataclasses.replace(pc.options(d.owner), **{d.name: settings[d.name]}))
    unknown = set(settings) - own - {d.name for d in OPTIONS.declared()}
    assert not unknown, f"no such setting: {sorted(unknown)}"
    return pc


def config_for(device: Device, mode: Mode = Mode.DEFAULT, vantage: str = "lan", **timeouts: float) -> SweepConfig:
    """A sweep config whose ports point at the device's bound ports."""
    names = {"ssh": "ssh", "telnet": "telnet", "http": "http", "ftp": "ftp", "ipp": "ipp", "pjl": "jetdirect"}
    names["sip_tcp"] = "sip"
    tcp = [(port, names[name]) for name, port in device.bound.items() if name in names]
    bound = device.bound
    return scan_config(
        tcp,
        snmp=bound.get("snmp", 9),
        sip=bound.get("sip", 9),
        ntp=bound.get("ntp", 9),
        mode=mode,
        vantage=vantage,
        **timeouts,
    )


async def scan_device(device: Device, mode: Mode = Mode.DEFAULT, vantage: str = "lan", **timeouts: float) -> HostResult:
    """Sweep one emulated device with the real engine and probes."""
    engine = Engine(config_for(device, mode, vantage, **timeouts), profiles.load_all())
    return await asyncio.wait_for(engine.scan_host(device.spec.address), 60)


async def scan_address(address: str, tcp: Sequence[tuple[int, str]] = (), **config: Any) -> HostResult:
    """Sweep one hand-written fake peer (a test's own server, not an emulated Device) with the real engine."""
    engine = Engine(scan_config(tcp, **config), profiles.load_all())
    return await asyncio.wait_for(engine.scan_host(address), 60)


async def cli_exit(*args: str) -> tuple[int, str]:
    """`edgeaudit ARGS` in a fresh interpreter, from the checkout: (exit code, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scanner.cli", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def run_fresh(script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter (python -c, from the checkout); the JSON object it printed last."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}; its stderr ends:\n{done.stderr[-4000:]}"
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def by_id(result: HostResult, check_id: str) -> list[Any]:
    """Findings of one id."""
    return [f for f in result.findings if f.check_id == check_id]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Callable[[list[dict[str, object]]], subprocess.Popen[bytes]]]:
    """Start emulator processes (lab.emulator) for device specs; each call one process, all stopped after."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(devices: list[dict[str, object]]) -> subprocess.Popen[bytes]:
        cfg = tmp_path / f"fleet{len(procs)}.yaml"
        cfg.write_text(yaml.safe_dump({"devices": devices}))
        pid = tmp_path / f"fleet{len(procs)}.pid"
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab.emulator", str(cfg), "--pidfile", str(pid)], cwd=ROOT, stderr=subprocess.PIPE
        )
        procs.append(proc)
        for _ in range(100):
            if pid.exists():
                return proc
            time.sleep(0.05)
        proc.kill()
        raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "emulator did not start")

    yield start
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(10)


class FakeResolver(asyncio.DatagramProtocol):
    """A resolver on loopback: its own records, NXDOMAIN for the rest, REFUSED for all when asked to."""

    def __init__(self, records: dict[str, str], recursion: bool, refuse: bool) -> None:
        self.records, self.recursion, self.refuse = records, recursion, refuse
        self.asked: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        name = query.question[0].name.to_text().rstrip(".")
        self.asked.append(name)
        reply = dns.message.make_response(query)
        if self.recursion:
            reply.flags |= dns.flags.RA
        if self.refuse:
            reply.set_rcode(dns.rcode.REFUSED)
        elif name in self.records:
            reply.answer.append(dns.rrset.from_text(name + ".", 60, "IN", "A", self.records[name]))
        else:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(reply.to_wire(), addr)


@pytest.fixture
async def resolver() -> AsyncIterator[Callable[..., object]]:
    transports: list[asyncio.DatagramTransport] = []

    async def start(records: dict[str, str], recursion: bool = True, refuse: bool = False) -> tuple[str, FakeResolver]:
        address = fresh_address()
        proto = FakeResolver(records, recursion, refuse)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: proto, local_addr=(address, 53)
        )
        transports.append(transport)
        return address, proto

    yield start
    for t in transports:
        t.close()
