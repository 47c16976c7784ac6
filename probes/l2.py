"""Layer 2/3 liveness with scapy when root: ARP on the local segment, ICMP echo.

scapy's send/receive calls block, so requests are batched: every request that
arrives within a short window joins one ``srp``/``sr`` call, run on a small
pool of worker threads. scapy's threaded sender (a helper thread and a pipe
per call) broke under many concurrent calls (EBADF on the pipe), so every
call here runs unthreaded: send the batch, then receive until the timeout.

Unprivileged sweeps skip these (TCP/UDP discovery only) and say so.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from scanner.errors import Timeout, Unreachable
from scanner.model import HostAlive, Observation, Service

BATCH_WINDOW = 0.05  # seconds a request waits for company before its batch goes out
MAX_BATCH = 512
MAX_WAIT = 2.0  # per batch: how long replies are awaited
WORKERS = 8  # batches in flight at once

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
    from scapy.config import conf
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    by_iface: dict[str, list[str]] = {}
    for address in addresses:
        iface, _src, gateway = conf.route.route(address)
        if gateway in ("0.0.0.0", None):
            by_iface.setdefault(str(iface), []).append(address)
    out: dict[str, str] = {}
    for iface, targets in by_iface.items():
        pkts = [Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=a) for a in targets]
        answered, _ = srp(pkts, iface=iface, timeout=timeout, verbose=0, threaded=False)
        wanted = set(targets)
        for _sent, received in answered:
            if received[ARP].psrc in wanted:
                out[str(received[ARP].psrc)] = str(received[ARP].hwsrc)
    return out


class _Batcher:
    """Collects single requests into batches, run on a few worker threads."""

    def __init__(self, name: str, fn: BatchFn) -> None:
        self.name, self.fn = name, fn
        self._pending: dict[str, list[asyncio.Future[str | None]]] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix=f"edgeaudit-{name}")
        self._loop: asyncio.AbstractEventLoop | None = None

    async def ask(self, address: str, wait: float) -> str | None:
        """The batch answer for one address (None: no reply); raises Timeout/Unreachable."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests, a second sweep): start clean
            self._loop, self._pending, self._flush = loop, {}, None
        future: asyncio.Future[str | None] = loop.create_future()
        self._pending.setdefault(address, []).append(future)
        if len(self._pending) >= MAX_BATCH:
            self._go(wait)
        elif self._flush is None:
            self._flush = loop.call_later(BATCH_WINDOW, self._go, wait)
        # A batch takes at most MAX_WAIT plus sending; allow for a full pool ahead of it.
        limit = 3 * (MAX_WAIT + 1.0)
        try:
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError as exc:
            raise Timeout(f"{self.name}: no result within {limit:.0f} s") from exc

    def _go(self, wait: float) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        batch, self._pending = self._pending, {}
        if not batch:
            return
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._pool, self.fn, list(batch), min(wait, MAX_WAIT))
        job.add_done_callback(lambda done: self._deliver(batch, done))

    def _deliver(self, batch: dict[str, list[asyncio.Future[str | None]]], done: asyncio.Future[Any]) -> None:
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


_ICMP = _Batcher("icmp", _icmp_batch)
_ARP = _Batcher("arp", _arp_batch)


def _on_link_v4(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.version == 4 and not ip.is_loopback


@register
class IcmpEcho(Probe):
    """ICMP/ICMPv6 echo (root only)."""

    name = "icmp-echo"
    phase = Phase.DISCOVERY
    description = "ICMP echo request (root only)"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """Host-level, only when privileged."""
        return [None] if config.privileged else []

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One echo (batched); no reply is not a failure (many devices drop ICMP)."""
        got = await _ICMP.ask(target.address, ctx.budget(ctx.timeouts.read))
        return [HostAlive(None, method="icmp")] if got else []


@register
class ArpPing(Probe):
    """ARP who-has on the local segment (root only, IPv4, on-link targets)."""

    name = "arp"
    phase = Phase.PRESENCE
    description = "ARP request on the local segment (root only)"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """Host-level, only when privileged and the address is IPv4 and not loopback."""
        return [None] if config.privileged and _on_link_v4(host.address) else []

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One ARP request (batched); the MAC is recorded when it answers."""
        mac = await _ARP.ask(target.address, ctx.budget(ctx.timeouts.read))
        return [HostAlive(None, method="arp", mac=mac)] if mac else []


def arp(addresses: list[str], timeout: float = 1.0) -> dict[str, str]:
    """Blocking ARP sweep of on-link addresses (for tools and tests): address -> MAC."""
    return _arp_batch(addresses, timeout)
