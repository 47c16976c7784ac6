"""The sweep-wide ARP screen: frames, and a /20 of which three addresses answer (a real Linux kernel).

The namespace test builds its own link: a veth pair whose far end sits in a namespace this test
creates (``ealab-arps``), holding three addresses of 198.18.96.0/20. The kernel there answers ARP
as any Linux device does; the rest of the /20 is silent, as an office's unused addresses are.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import probes
import profiles
from lab import netns
from lab.sparse import HOST_LINK, NAMESPACE, sparse_link
from probes.arpscan import DOWN_REASON, ArpScreen, parse_reply, request_frame
from probes.base import REGISTRY, ProbeConfig, Registry, Screened
from probes.observations import HostAlive
from scanner.orchestrator import Engine, HostResult, SweepConfig
from tests.conftest import ROOT

NS = NAMESPACE
NET = ipaddress.ip_network("198.18.96.0/20")
HOST_ADDRESS = "198.18.96.1"
LIVE = ("198.18.96.10", "198.18.101.77", "198.18.111.254")

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def _reply(sender_mac: bytes, sender_ip: str, target_mac: bytes, target_ip: str, op: int = 2) -> bytes:
    ether = target_mac + sender_mac + b"\x08\x06"
    arp = bytes.fromhex("000108000604") + bytes([0, op]) + sender_mac + ipaddress.IPv4Address(sender_ip).packed
    return ether + arp + target_mac + ipaddress.IPv4Address(target_ip).packed


def test_request_frame_is_rfc826_who_has() -> None:
    frame = request_frame(MAC_A, bytes([198, 18, 96, 1]), bytes([198, 18, 96, 10]))
    assert len(frame) == 42
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == MAC_A and frame[12:14] == b"\x08\x06"
    assert frame[14:22] == bytes.fromhex("0001080006040001")  # Ethernet, IPv4, 6, 4, request
    assert frame[22:28] == MAC_A and frame[28:32] == bytes([198, 18, 96, 1])
    assert frame[32:38] == b"\x00" * 6 and frame[38:42] == bytes([198, 18, 96, 10])


def test_parse_reply_takes_replies_only() -> None:
    good = _reply(MAC_B, "198.18.96.10", MAC_A, "198.18.96.1")
    assert parse_reply(good) == (int(ipaddress.IPv4Address("198.18.96.10")), MAC_B)
    assert parse_reply(good + b"\x00" * 18) is not None  # Ethernet padding to 60 bytes
    assert parse_reply(good[:41]) is None  # truncated
    assert parse_reply(_reply(MAC_B, "198.18.96.10", MAC_A, "198.18.96.1", op=1)) is None  # a request
    assert parse_reply(good[:12] + b"\x08\x00" + good[14:]) is None  # not ARP
    assert parse_reply(good[:14] + b"\x00\x06" + good[16:]) is None  # hardware type 6 (IEEE 802)
    assert parse_reply(good[:18] + b"\x10\x04" + good[20:]) is None  # hardware length 16
    assert parse_reply(b"") is None


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ArpScreen(rate=0)


async def test_an_address_it_cannot_judge_is_passed_on() -> None:
    """IPv6, loopback and our own addresses are not on-link neighbours: not screened, never down."""
    screen = ArpScreen(rate=1000)
    got = [s async for s in screen.screen(["::1", "127.0.0.1", "not an address"])]
    assert got == [Screened("::1", screened=False), Screened("127.0.0.1", screened=False),
                   Screened("not an address", screened=False)]  # fmt: skip
    assert screen.sent == 0


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2 (CI runs as root)"
)


@pytest.fixture
def silent_net() -> Iterator[str]:
    """A /20 on a link of its own; three addresses answer ARP. Yields the far end's MAC."""
    with sparse_link(str(NET), HOST_ADDRESS, list(LIVE), NS, HOST_LINK) as far:
        yield far


@pytest.mark.lab
@needs_root
async def test_screen_finds_exactly_the_live_addresses(silent_net: str) -> None:
    scope = [str(a) for a in NET.hosts()]
    screen = ArpScreen(rate=20_000, wait=0.5)
    got = {s.address: s async for s in screen.screen(scope)}
    assert len(got) == len(scope)  # every address judged, once
    alive = {a for a, s in got.items() if s.observations}
    assert alive == set(LIVE)
    for address in LIVE:
        (obs,) = got[address].observations
        assert obs == HostAlive(None, method="arp", mac=silent_net)
    assert got[HOST_ADDRESS] == Screened(HOST_ADDRESS, screened=False)  # our own: not a neighbour
    down = [s for s in got.values() if s.down is not None]
    assert len(down) == len(scope) - len(LIVE) - 1
    assert all(s.down == DOWN_REASON and not s.observations for s in down)
    # Each silent address asked twice (one retry), each live one once.
    assert screen.sent == 2 * len(down) + len(LIVE)


@pytest.mark.lab
@needs_root
async def test_sweep_starts_hosts_only_for_addresses_that_answered(
    silent_net: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead on-link address is recorded down with its reason and costs no host task or probe run."""
    probes.load_all()
    started: list[str] = []
    real = Engine.scan_host

    async def counted(self: Engine, address: str, *args: object, **kwargs: object) -> HostResult:
        started.append(address)
        return await real(self, address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Engine, "scan_host", counted)
    results: dict[str, HostResult] = {}

    class Sink:
        def host_done(self, result: HostResult) -> None:
            assert result.address not in results
            results[result.address] = result

    registry = Registry({n: REGISTRY.get(n) for n in ("arp", "tcp-connect")})
    config = SweepConfig(probe_config=ProbeConfig(privileged=True, tcp_ports=(22,)))
    engine = Engine(config, profiles.load_all(), registry=registry)
    scope = [str(a) for a in NET.hosts()]
    interrupted = await asyncio.wait_for(engine.sweep(scope, Sink(), asyncio.Event()), 60)
    assert not interrupted
    assert set(results) == set(scope)
    assert sorted(started) == sorted([*LIVE, HOST_ADDRESS])  # the live ones, and the one it could not judge
    for address in LIVE:
        assert results[address].state == "up"
        assert results[address].device.mac == silent_net
    dead = [r for r in results.values() if r.state == "down"]
    assert len(dead) == len(scope) - len(LIVE) - 1
    assert not any(r.findings for r in dead)


LISTENER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 22)); s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept(); c.close(); print("accepted", flush=True)
"""


def _discover(tmp_path: Path, name: str, *args: str) -> dict[str, object]:
    out = tmp_path / name
    done = subprocess.run(
        [sys.executable, "-m", "scanner.cli", "-q", "discover", *args, "--ports", "22", "--snmp-port", "9",
         "--sip-port", "9", "--ntp-port", "9", "--out", str(out), "--db", str(tmp_path / "h.db")],
        check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return report


def _tcp_segments_in(ns: str) -> int:
    """The namespace's count of TCP segments received (Tcp InSegs): any port touched moves it."""
    return netns.tcp_counters(ns)["InSegs"]


@pytest.mark.lab
@needs_root
def test_presence_only_finds_the_live_hosts_and_touches_no_port(silent_net: str, tmp_path: Path) -> None:
    """`discover --presence-only` (nmap -sn) reports who is up and sends the live hosts no TCP segment at all.

    The positive control, `discover` of one live host, finds its tcp/22 open with SYN knocks (root):
    segments arrive, yet the listener accepts no connection (the handshake is never completed)."""
    listener = subprocess.Popen(
        ["ip", "netns", "exec", NS, sys.executable, "-c", LISTENER, LIVE[0]],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
        before = _tcp_segments_in(NS)
        report = _discover(tmp_path, "presence", "--presence-only", str(NET))
        assert _tcp_segments_in(NS) == before
        up = {d["address"] for d in report["devices"]}  # type: ignore[attr-defined]
        assert up == {*LIVE, HOST_ADDRESS}  # our own address answers its echo
        assert report["summary"]["hosts_down"] == NET.num_addresses - 2 - len(up)  # type: ignore[index]
        assert all(d["findings"] == [] for d in report["devices"])  # type: ignore[attr-defined]
        full = _discover(tmp_path, "full", LIVE[0])
        (dev,) = full["devices"]  # type: ignore[misc]
        assert [f["id"] for f in dev["findings"]] == ["EA-SERVICES-OPEN"]
        assert _tcp_segments_in(NS) > before
    finally:
        listener.terminate()
        accepted, _ = listener.communicate(timeout=10)
    assert accepted.split().count("accepted") == 0, accepted


def test_the_screen_is_a_probe_the_sweep_runs() -> None:
    """A sweep that leaves ARP out (its probe list, or its phases) sends no ARP screen either."""
    probes.load_all()
    known = profiles.load_all()
    privileged = ProbeConfig(privileged=True)
    default = Engine(SweepConfig(probe_config=privileged), known)._screen()
    assert default is not None and default[0] == "arp" and isinstance(default[1], ArpScreen)
    without = SweepConfig(probe_config=privileged, probes=frozenset({"tcp-connect"}))
    assert Engine(without, known)._screen() is None
    assert Engine(SweepConfig(probe_config=ProbeConfig(privileged=False)), known)._screen() is None


@pytest.mark.lab
@needs_root
async def test_the_screen_lets_the_loop_run_when_route_lookups_are_slow(
    silent_net: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each new address costs a route lookup (a netlink round trip): 50 us, but milliseconds while the
    kernel is busy or another thread holds the GIL. The screen works at most STEP_S per loop step."""
    from probes.wire import route

    real = route.lookup

    def slow(address: str) -> route.Route:
        time.sleep(0.005)  # a busy kernel, blocking as the real syscall does
        return real(address)

    monkeypatch.setattr(route, "lookup", slow)
    loop = asyncio.get_running_loop()
    gaps: list[float] = []

    async def ticker() -> None:
        last = loop.time()
        while True:
            await asyncio.sleep(0)
            now = loop.time()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    scope = [str(a) for a in list(NET.hosts())[:200]]
    screen = ArpScreen(rate=20_000, wait=0.3)  # a burst of 400: the whole scope at once, unbounded
    got = [s async for s in screen.screen(scope)]
    tick.cancel()
    assert len(got) == len(scope)
    # 200 lookups of 5 ms are 1 s of blocking; never more than the step bound and one lookup at a time.
    assert max(gaps) < 0.1, max(gaps)
