"""A sparse on-link network: a veth pair to a namespace of its own that holds a few live addresses.

The far end's kernel answers ARP for its addresses as any Linux device does, and refuses TCP
on closed ports; every other address of the prefix is silent, as an office's unused ones are.
Its ICMP limits are those of as many devices as it holds addresses (lab.fleet.icmp_sysctls): one
kernel's shared limiter would make their closed UDP ports look silent, which no office has.
Used by the ARP screen's tests and by `make bench-lab`'s /16 and /20 stages (root).
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import subprocess
from collections.abc import Iterator

from lab import fleet, netns

NAMESPACE = "ealab-arps"
HOST_LINK = "ealab-arp0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def pick_live(network: str, count: int, seed: int = 20) -> list[str]:
    """``count`` addresses of the network spread over it (seeded, so runs compare), the first host excluded."""
    net = ipaddress.ip_network(network)
    rng = random.Random(seed)
    hosts = range(int(net.network_address) + 2, int(net.broadcast_address))
    return [str(ipaddress.ip_address(v)) for v in sorted(rng.sample(hosts, count))]


def remove(namespace: str = NAMESPACE, link: str = HOST_LINK) -> None:
    """Delete the link and the namespace (idempotent)."""
    subprocess.run(["ip", "link", "del", link], check=False, capture_output=True, timeout=30)
    subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True, timeout=30)


@contextlib.contextmanager
def sparse_link(
    network: str, host_address: str, live: list[str], namespace: str = NAMESPACE, link: str = HOST_LINK
) -> Iterator[str]:
    """Build it (our end gets ``host_address``), yield the far end's MAC, always remove it."""
    prefix = ipaddress.ip_network(network).prefixlen
    remove(namespace, link)
    try:
        _ip("netns", "add", namespace)
        _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("addr", "add", f"{host_address}/{prefix}", "dev", link)
        _ip("link", "set", link, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        netns.sysctl(namespace, fleet.icmp_sysctls(max(1, len(live))))
        batch = "".join(f"addr add {address}/{prefix} dev eth0\n" for address in live)
        subprocess.run(
            ["ip", "-n", namespace, "-batch", "-"], input=batch.encode(), check=True, capture_output=True, timeout=60
        )
        far = subprocess.run(
            ["ip", "netns", "exec", namespace, "cat", "/sys/class/net/eth0/address"],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        yield far
    finally:
        remove(namespace, link)
