"""Fleet mode: many emulated devices on the lab LAN, one macvlan (own MAC and IP) each."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml

FLEET = Path(__file__).with_name("fleet.yaml")
MAX_FLEET = 1000
# Every broadcast (ARP who-has) is queued once per macvlan port; the default queue (1000) dropped
# ARP requests when a sweep sent hundreds at once to a 1,000-device fleet.
BC_QUEUE = 65536
NAMESPACE = "ealab-fleet"  # every fleet device's macvlan lives here (netns.PREFIX + "fleet")
NFT_TABLE = "edgeaudit_bench_silent_udp"
# Linux's own ICMP error limits, per network namespace: one error per icmp_ratelimit ms toward one
# destination after a burst of 6 (XRLIM_BURST_FACTOR), and icmp_msgs_per_sec with icmp_msgs_burst
# (1000/s, 50) toward all destinations together.
LINUX_MSGS_PER_SEC, LINUX_MSGS_BURST = 1000, 50


def devices(size: int, path: Path = FLEET) -> list[dict[str, Any]]:
    """The first ``size`` fleet devices: templates in turn, addresses skipping .0 and .255."""
    if not 0 < size <= MAX_FLEET:
        raise ValueError(f"fleet size must be 1..{MAX_FLEET}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    templates: list[dict[str, Any]] = data["templates"]
    addr = ipaddress.ip_address(data["first_address"])
    out = []
    for i in range(size):
        while int(addr) & 0xFF in (0, 255):
            addr += 1
        out.append({"name": f"fleet-{i:04d}", "address": str(addr), **templates[i % len(templates)]})
        addr += 1
    return out


def mac(i: int) -> str:
    """A locally administered MAC for fleet device i."""
    return f"02:ea:00:00:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"


def plumbing(
    ns: str, fleet: list[dict[str, Any]], prefixlen: int, scanner: tuple[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """`ip -batch` lines for the switch namespace (a veth into ``ns``) and for ``ns`` (one macvlan per device).

    ``scanner`` (address, MAC): the host's leg on the LAN, where sweeps come from. Each device
    knows it by a permanent neighbour entry on its macvlan. Linux has one neighbour table for all
    namespaces (gc_thresh3, 1,024 entries by default, shared): learnt entries, one per macvlan
    for the scanner, would fill the table the scanner's own kernel needs, and a full table makes
    a device leave ARP unanswered (arp_process replies only when it could make an entry for the
    asker). Real devices each have a table of their own; permanent entries are not counted
    against the limit (Linux 4.19 on), so the fleet takes none of the scanner's.
    """
    switch = [f"link add fleet0 type veth peer name eth0 netns {ns}", "link set fleet0 master br-lan up"]
    lines = ["link set eth0 up"]
    for i, dev in enumerate(fleet):
        lines += [
            f"link add mv{i} link eth0 address {mac(i)} type macvlan mode bridge bcqueuelen {BC_QUEUE}",
            f"addr add {dev['address']}/{prefixlen} dev mv{i}",
            f"link set mv{i} up",
        ]
        if scanner is not None:
            lines.append(f"neigh replace {scanner[0]} lladdr {scanner[1]} dev mv{i} nud permanent")
    return switch, lines


def icmp_sysctls(size: int) -> dict[str, str]:
    """Sysctls for the fleet's namespace so each device answers closed UDP ports as a device of its own would.

    A real device has its own kernel and so its own ICMP limiters. The fleet's devices share one
    namespace: toward one scanner, the per-destination limit (1 per second) was shared by all of
    them, so closed UDP ports looked silent, a lab artefact. Per device, a sweep sends a handful of
    UDP probes, within the burst a device allows, so the per-destination limit is off, and the
    namespace-wide one is a device's times the fleet size.
    """
    return {
        "net.ipv4.icmp_ratelimit": "0",
        "net.ipv4.icmp_msgs_per_sec": str(LINUX_MSGS_PER_SEC * size),
        "net.ipv4.icmp_msgs_burst": str(LINUX_MSGS_BURST * size),
    }


def silent_udp_ruleset() -> str:
    """An nftables table for the fleet's namespace that drops its ICMP port-unreachable: closed UDP ports go silent.

    The benchmark's case of a network that drops UDP silently (a filtering firewall); the
    table is deleted again after that case.
    """
    return (
        f"table inet {NFT_TABLE} {{\n"
        "  chain out {\n"
        "    type filter hook output priority 0; policy accept;\n"
        "    icmp type destination-unreachable icmp code port-unreachable drop\n"
        "  }\n"
        "}\n"
    )
