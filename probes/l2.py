"""Layer 2/3 liveness with scapy when root: ARP on the local segment, ICMP echo.

scapy's send/receive calls block, so requests are batched: one ``srp``/``sr``
call is in flight at a time, on one worker thread, and every request that
arrives meanwhile joins the next one. Measured on the 1,000-device lab fleet:
one batch of 1,000 ARP requests got 1,000 answers in 0.5 s, while 8 concurrent
calls of 20 lost a fifth of the replies (every packet socket sees every frame,
and scapy dissects them slowly), and scapy's threaded sender failed with EBADF
under many concurrent calls, so calls here also run unthreaded.

Unprivileged sweeps skip these (TCP/UDP discovery only) and say so.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from probes import options
from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, Screen, register
from probes.observations import HostAlive, Observation, Service
from probes.options import OptionSet, option, option_set
from probes.wire import route
from profiles.errors import Timeout, Unreachable

BATCH_WINDOW = 0.05  # seconds a request waits for company before its batch goes out
MAX_BATCH = 256
MAX_WAIT = 2.0  # per batch: how long replies are awaited

BatchFn = Callable[[list[str], float], dict[str, str]]


def _icmp_batch(addresses: list[str], timeout: float) -> dict[str, str]:
    """Echo every address at once; address -> "icmp" for those that answered."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.supersocket import L3RawSocket, L3RawSocket6

    ident = secrets.randbelow(0xFFFF)
    v4 = [a for a in addresses if ipaddress.ip_address(a).version == 4]
    v6 = [a for a in addresses if ipaddress.ip_address(a).version == 6]
    answered: list[Any] = []
    # Raw IP sockets: the kernel resolves neighbours without blocking the sender (scapy's layer-2
    # path would ARP for each dead on-link address in turn), and loopback replies are seen too.
    if v4:
        with L3RawSocket() as sock:
            pkts = [IP(dst=a) / ICMP(id=ident, seq=i) for i, a in enumerate(v4)]
            got, _ = sock.sr(pkts, timeout=timeout, verbose=0, threaded=False)
            answered += list(got)
    if v6:
        with L3RawSocket6() as sock6:
            pkts6 = [IPv6(dst=a) / ICMPv6EchoRequest(id=ident, seq=i) for i, a in enumerate(v6)]
            got, _ = sock6.sr(pkts6, timeout=timeout, verbose=0, threaded=False)
            answered += list(got)
    out: dict[str, str] = {}
    for sent, received in answered:
        layer = received.payload
        if getattr(layer, "id", None) == ident and getattr(layer, "type", None) in (0, 129):
            out[str(sent.dst)] = "icmp"
    return out


def _arp_batch(addresses: list[str], timeout: float) -> dict[str, str]:
    """ARP who-has for every on-link address at once; address -> MAC for those that answered."""
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    by_iface: dict[str, list[str]] = {}
    for address in addresses:
        found = route.lookup(address)
        if found.on_link and found.interface:
            by_iface.setdefault(found.interface, []).append(address)
    out: dict[str, str] = {}
    for iface, targets in by_iface.items():
        pkts = [Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=a) for a in targets]
        # retry=1: unanswered requests go out once more (ARP is lossy under bursts; as nmap does).
        answered, _ = srp(pkts, iface=iface, timeout=timeout, verbose=0, threaded=False, retry=1)
        wanted = set(targets)
        for _sent, received in answered:
            if received[ARP].psrc in wanted:
                out[str(received[ARP].psrc)] = str(received[ARP].hwsrc)
    return out


class _Batcher:
    """Collects single requests into batches; one batch in flight at a time, on one thread."""

    def __init__(self, name: str, fn: BatchFn, max_wait: float = MAX_WAIT) -> None:
        self.name, self.fn, self.max_wait = name, fn, max_wait
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"edgeaudit-{name}")
        self._reset(None)

    def _reset(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop
        self._pending: dict[str, list[asyncio.Future[str | None]]] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._running = False
        self._wait = self.max_wait

    async def ask(self, address: str, wait: float) -> str | None:
        """The batch answer for one address (None: no reply); raises Timeout/Unreachable."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests, a second sweep): start clean
            self._reset(loop)
        future: asyncio.Future[str | None] = loop.create_future()
        self._pending.setdefault(address, []).append(future)
        self._wait = min(self._wait, max(wait, 0.2))
        if not self._running and self._flush is None:
            self._flush = loop.call_later(BATCH_WINDOW, self._go)
        # Behind at most one running batch (each bounded by MAX_WAIT plus sending and parsing).
        limit = 2 * (MAX_WAIT + 2.0)
        try:
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError as exc:
            raise Timeout(f"{self.name}: no result within {limit:.0f} s") from exc

    def _go(self) -> None:
        self._flush = None
        if self._running or not self._pending:
            return
        batch = dict(list(self._pending.items())[:MAX_BATCH])
        for address in batch:
            del self._pending[address]
        wait, self._wait = self._wait, self.max_wait
        self._running = True
        assert self._loop is not None
        job = self._loop.run_in_executor(self._pool, self.fn, list(batch), wait)
        job.add_done_callback(lambda done: self._deliver(batch, done))

    def _deliver(self, batch: dict[str, list[asyncio.Future[str | None]]], done: asyncio.Future[Any]) -> None:
        self._running = False
        error = done.exception()
        for address, futures in batch.items():
            for future in futures:
                if future.done():
                    continue
                if isinstance(error, OSError):
                    future.set_exception(Unreachable(f"{self.name}: {error.strerror or error!r}"))
                elif error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(done.result().get(address))
        if self._pending:
            self._go()  # whatever queued meanwhile goes out now, as one batch


_ICMP = _Batcher("icmp", _icmp_batch)
# On a LAN an ARP reply takes well under a millisecond: 1 s per round (two rounds) is generous.
_ARP = _Batcher("arp", _arp_batch, max_wait=1.0)


@option_set
@dataclass(frozen=True)
class ArpOptions(OptionSet):
    """How fast the sweep-wide ARP screen asks."""

    name: ClassVar[str] = "arp"
    title: ClassVar[str] = "ARP presence (root)"

    arp_rate: float = option(
        2500.0,
        flag="--arp-rate",
        metavar="PER_SECOND",
        help="ARP who-has frames per second for the whole sweep, retries included (default 2500: a /24 in "
        "about 0.1 s; each silent address is asked twice, so about 1,250 dead addresses a second)",
        parse=options.number("--arp-rate", float, 1, "must be at least 1 frame per second"),
    )


def _on_link_v4(address: str) -> bool:
    """ARP decides only where the kernel would reach the address without a gateway."""
    return ipaddress.ip_address(address).version == 4 and route.on_link(address)


@register
class IcmpEcho(Probe):
    """ICMP/ICMPv6 echo (root only)."""

    name = "icmp-echo"
    phase = Phase.DISCOVERY
    description = "ICMP echo request (root only)"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """Host-level, only when privileged and the host has not answered ARP already.

        An ARP reply proves a neighbour is up, and no check reads whether it also answers ping,
        so an echo adds nothing but a wait (nmap -sn does not ping what answered ARP either)."""
        if not config.privileged:
            return []
        if any(isinstance(o, HostAlive) and o.method == "arp" for o in host.observations):
            return []
        return [None]

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One echo (batched); no reply is not a failure (many devices drop ICMP)."""
        got = await _ICMP.ask(target.address, ctx.budget(ctx.timeouts.read))
        return [HostAlive(None, method="icmp")] if got else []


@register
class ArpPing(Probe):
    """ARP who-has on the local segment (root only, IPv4, on-link targets).

    An address behind a router is not asked at all, so its presence is left to ICMP/TCP/UDP
    discovery; an on-link address that does not answer ARP is down (as nmap -PR).
    """

    name = "arp"
    phase = Phase.PRESENCE
    description = "ARP request on the local segment (root only)"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """Host-level, only when privileged and the address is an IPv4 neighbour (no gateway between)."""
        return [None] if config.privileged and _on_link_v4(host.address) else []

    def screen(self, config: ProbeConfig) -> Screen | None:
        """The sweep-wide form (probes.arpscan), when privileged; per host it stays for what it cannot judge."""
        if not config.privileged:
            return None
        from probes.arpscan import ArpScreen

        return ArpScreen(rate=config.options(ArpOptions).arp_rate)

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One ARP request (batched); the MAC is recorded when it answers."""
        mac = await _ARP.ask(target.address, ctx.budget(ctx.timeouts.read))
        return [HostAlive(None, method="arp", mac=mac)] if mac else []


def arp(addresses: list[str], timeout: float = 1.0) -> dict[str, str]:
    """Blocking ARP sweep of on-link addresses (for tools and tests): address -> MAC."""
    return _arp_batch(addresses, timeout)
