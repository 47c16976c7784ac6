"""Layer 2/3 liveness with scapy when root: ARP on the local segment, ICMP echo.

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

# scapy's send/receive calls block, so they run in threads. They get their own pool:
# asyncio's default one has min(32, cores + 4) workers, and a sweep that queued its
# ARP requests there would see them time out waiting for a thread, not for the wire.
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="edgeaudit-l2")


async def _in_thread(name: str, fn: Callable[[str, float], str | None], address: str, wait: float) -> str | None:
    """Run one blocking scapy exchange with a deadline; OS errors and overruns become probe errors."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(wait + 2.0):
            return await loop.run_in_executor(_POOL, fn, address, wait)
    except TimeoutError as exc:
        raise Timeout(f"{name}: no result within {wait + 2.0:.1f} s (all L2 worker threads busy)") from exc
    except OSError as exc:
        raise Unreachable(f"{name}: {exc.strerror or exc!r}") from exc


def _icmp(address: str, timeout: float) -> str | None:
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
    from scapy.sendrecv import sr1
    from scapy.supersocket import L3RawSocket

    ident, seq = secrets.randbelow(0xFFFF), secrets.randbelow(0xFFFF)
    ip = ipaddress.ip_address(address)
    pkt: Any = (
        IPv6(dst=address) / ICMPv6EchoRequest(id=ident, seq=seq)
        if ip.version == 6
        else IP(dst=address) / ICMP(id=ident, seq=seq)
    )
    # scapy's packet socket never sees replies on loopback; a raw socket does.
    sock_cls = L3RawSocket if ip.is_loopback and ip.version == 4 else None
    kwargs = {"timeout": timeout, "verbose": 0}
    if sock_cls is not None:
        with sock_cls() as sock:
            reply = sock.sr1(pkt, **kwargs)
    else:
        reply = sr1(pkt, **kwargs)
    if reply is None:
        return None
    if ip.version == 6:
        ok = reply.haslayer(ICMPv6EchoReply) and reply[ICMPv6EchoReply].id == ident
    else:
        ok = reply.haslayer(ICMP) and reply[ICMP].type == 0 and reply[ICMP].id == ident
    return "icmp" if ok else None


def _arp(address: str, timeout: float) -> str | None:
    from scapy.config import conf
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    iface, _src, gateway = conf.route.route(address)
    if gateway not in ("0.0.0.0", None):
        return None
    answered, _ = srp(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=address), iface=iface, timeout=timeout, verbose=0)
    for _sent, received in answered:
        if received[ARP].psrc == address:
            return str(received[ARP].hwsrc)
    return None


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
        """One echo; no reply is not a failure (many devices drop ICMP)."""
        got = await _in_thread("icmp", _icmp, target.address, min(ctx.budget(ctx.timeouts.read), 2.0))
        return [HostAlive(None, method="icmp")] if got else []


@register
class ArpPing(Probe):
    """ARP who-has on the local segment (root only, IPv4, on-link targets)."""

    name = "arp"
    phase = Phase.DISCOVERY
    description = "ARP request on the local segment (root only)"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """Host-level, only when privileged and the address is IPv4 and not loopback."""
        return [None] if config.privileged and _on_link_v4(host.address) else []

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One ARP request; the MAC is recorded when it answers."""
        mac = await _in_thread("arp", _arp, target.address, min(ctx.budget(ctx.timeouts.read), 2.0))
        return [HostAlive(None, method="arp", mac=mac)] if mac else []
