"""A host one router away: found as root and unprivileged alike; ARP decides only on the link.

Three namespaces of the test's own (scanner, router, target), addresses from 198.18.0.0/15 that
exist only inside them. The scanner runs inside its namespace, so nothing leaves this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import netns
from probes.wire import route

ROOT = Path(__file__).resolve().parents[1]
NS = f"earoute{os.getpid() % 10000}-"
SCANNER, ROUTER, TARGET = NS + "scan", NS + "rtr", NS + "tgt"
SCANNER_IP, ROUTER_LAN, ROUTER_FAR, TARGET_IP = "198.18.210.2", "198.18.210.1", "198.18.211.1", "198.18.211.10"
ON_LINK_DEAD, ROUTED_DEAD = "198.18.210.77", "198.18.211.77"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CI runs as root)")


@pytest.fixture(scope="module")
def routed() -> Iterator[None]:
    """scanner --- router --- target, with an HTTP server on the target; torn down whatever happens."""
    server: subprocess.Popen[bytes] | None = None
    try:
        for ns in (SCANNER, ROUTER, TARGET):
            netns.add_namespace(ns)
        netns.ip("link", "add", "s0", "netns", SCANNER, "type", "veth", "peer", "name", "r0", "netns", ROUTER)
        netns.ip("link", "add", "t0", "netns", TARGET, "type", "veth", "peer", "name", "r1", "netns", ROUTER)
        netns.ip_batch(
            [f"addr add {SCANNER_IP}/24 dev s0", "link set s0 up", f"route add default via {ROUTER_LAN}"], SCANNER
        )
        netns.ip_batch(
            [
                f"addr add {ROUTER_LAN}/24 dev r0",
                f"addr add {ROUTER_FAR}/24 dev r1",
                "link set r0 up",
                "link set r1 up",
            ],
            ROUTER,
        )
        netns.ip_batch(
            [f"addr add {TARGET_IP}/24 dev t0", "link set t0 up", f"route add default via {ROUTER_FAR}"], TARGET
        )
        netns.sysctl(ROUTER, {"net.ipv4.ip_forward": "1"})
        server = subprocess.Popen(
            ["ip", "netns", "exec", TARGET, sys.executable, "-m", "http.server", "80", "--bind", TARGET_IP],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_listening(TARGET, 80)
        yield
    finally:
        if server is not None:
            netns.stop_pids([server.pid])
        for ns in (SCANNER, ROUTER, TARGET):
            netns.stop_pids(netns.pids_in(ns))
            netns.ip("netns", "del", ns, check=False)


def _wait_listening(ns: str, port: int) -> None:
    for _ in range(50):
        out = subprocess.run(
            ["ip", "netns", "exec", ns, "ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} in {ns}")


def _in_scanner(tmp: Path, command: str, *args: str) -> dict[str, object]:
    out = tmp / command / "-".join(a.strip("-") for a in args if a.startswith("--")) if args else tmp / command
    cmd = [
        "ip",
        "netns",
        "exec",
        SCANNER,
        sys.executable,
        "-m",
        "scanner.cli",
        command,
        *args,
        "--out",
        str(out),
        "--db",
        str(tmp / "h.sqlite3"),
        "--lang",
        "en",
        "-q",
        "--ports",
        "22,80",
        "--timeout",
        "1",
        "--connect-timeout",
        "1",
        "--probe-timeout",
        "3",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 1), done.stderr
    report: dict[str, object] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return report


def _devices(report: dict[str, object]) -> dict[str, dict[str, object]]:
    devices = report["devices"]
    assert isinstance(devices, list)
    return {str(d["address"]): d for d in devices}


@pytest.mark.lab
@needs_root
@pytest.mark.parametrize("privilege", [[], ["--unprivileged"]], ids=["root", "unprivileged"])
def test_a_host_behind_a_router_is_found(routed: None, tmp_path: Path, privilege: list[str]) -> None:
    report = _in_scanner(tmp_path, "scan", f"{ROUTER_FAR[:-1]}0/28", *privilege)
    devices = _devices(report)
    assert TARGET_IP in devices, f"the routed host was missed: {sorted(devices)}"
    assert devices[TARGET_IP]["state"] == "up"
    ports = {s["port"] for s in devices[TARGET_IP]["device"]["services"]}  # type: ignore[index]
    assert 80 in ports


@pytest.mark.lab
@needs_root
def test_arp_decides_only_on_the_link(routed: None, tmp_path: Path) -> None:
    """An on-link address that does not answer ARP is down for that reason; a routed one is asked by IP."""
    on_link = _devices(_in_scanner(tmp_path, "check", ON_LINK_DEAD))
    evidence = on_link[ON_LINK_DEAD]["findings"][0]  # type: ignore[index]
    assert evidence["id"] == "EA-HOST-UNREACHABLE"
    assert "no ARP answer" in evidence["evidence"]["reason"]
    routed_dead = _devices(_in_scanner(tmp_path, "check", ROUTED_DEAD))
    finding = routed_dead[ROUTED_DEAD]["findings"][0]  # type: ignore[index]
    assert finding["id"] == "EA-HOST-UNREACHABLE"
    assert not finding["evidence"]["reason"].startswith("no ARP answer")  # asked by TCP/UDP/ICMP instead


@pytest.mark.lab
@needs_root
def test_the_kernel_route_lookup_in_a_namespace(routed: None) -> None:
    """route.lookup as the scanner's namespace sees it: neighbour, gateway, own address."""
    code = (
        "from probes.wire import route; import json; "
        f"print(json.dumps([route.lookup(a).__repr__() for a in {[ON_LINK_DEAD, TARGET_IP, SCANNER_IP]!r}]))"
    )
    done = subprocess.run(
        ["ip", "netns", "exec", SCANNER, sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    neighbour, behind, own = json.loads(done.stdout)
    assert "on_link=True" in neighbour and "interface='s0'" in neighbour and f"source='{SCANNER_IP}'" in neighbour
    assert "on_link=False" in behind and f"gateway='{ROUTER_LAN}'" in behind
    assert "on_link=False" in own  # the scanner's own address is local, not a neighbour


def _reply(route_type: int, attrs: list[tuple[int, bytes]], seq: int = 1, kind: int = 24) -> bytes:
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, 32, 0, 0, 254, 0, 0, route_type, 0)
    for attr_type, value in attrs:
        body += struct.pack("=HH", 4 + len(value), attr_type) + value + b"\0" * (-len(value) % 4)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, seq, 0) + body


def test_route_reply_parser() -> None:
    """The rtnetlink reply reader: gateway, local and error replies, and malformed input rejected."""
    gw = socket.inet_aton("192.0.2.1")
    assert route.parse_reply(_reply(1, [(1, socket.inet_aton("198.51.100.7"))]), 1).on_link
    via = route.parse_reply(_reply(1, [(5, gw)]), 1)
    assert not via.on_link and via.gateway == "192.0.2.1"
    assert not route.parse_reply(_reply(2, []), 1).on_link  # RTN_LOCAL: our own address
    err = struct.pack("=IHHII", 20, 2, 0, 1, 0) + struct.pack("=i", -101)
    assert not route.parse_reply(err, 1).on_link
    good = _reply(1, [(5, gw)])
    long_attr = _reply(1, []) + struct.pack("=HH", 200, 5)
    long_attr = struct.pack("=I", len(long_attr)) + long_attr[4:]  # the header is right, the attribute is not
    for bad in (good[:10], good[:-2], long_attr, _reply(1, [], seq=2), _reply(1, [], kind=3)):
        with pytest.raises(ValueError):
            route.parse_reply(bad, 1)
    assert not route.lookup("127.0.0.1").on_link
    assert not route.lookup("not-an-address").on_link


# The host firewall an admin's scanner machine has: nothing new comes in, answers to what went out do.
STATEFUL_FIREWALL = """
table inet eafw {
    chain input {
        type filter hook input priority 0; policy drop;
        iif "lo" accept
        ct state established,related accept
    }
}
"""


@pytest.mark.lab
@needs_root
@pytest.mark.skipif(not shutil.which("nft"), reason="nft (Debian's nftables) is not installed")
def test_syn_knocks_see_through_a_stateful_firewall_on_the_scanner(routed: None, tmp_path: Path) -> None:
    """The raw socket's SYN leaves through conntrack: the SYN-ACK and the RST come back as its answers.

    With the scanner's namespace dropping every new inbound packet, root's SYN knocks find tcp/80
    open as the unprivileged connect() does, and tcp/22 closed; without the established rule both
    see nothing, so the firewall is what is tested."""
    subprocess.run(["ip", "netns", "exec", SCANNER, "nft", "-f", "-"], input=STATEFUL_FIREWALL, text=True,
                   check=True, timeout=10)  # fmt: skip
    try:
        seen, accepted = {}, {}
        for name, privilege in (("root", []), ("unprivileged", ["--unprivileged"])):
            before = netns.tcp_counters(TARGET)["PassiveOpens"]
            devices = _devices(_in_scanner(tmp_path / name, "discover", TARGET_IP, *privilege))
            accepted[name] = netns.tcp_counters(TARGET)["PassiveOpens"] - before
            services = devices[TARGET_IP]["device"]["services"]  # type: ignore[index]
            seen[name] = sorted((s["port"], s["transport"]) for s in services)
        assert seen == {"root": [(80, "tcp")], "unprivileged": [(80, "tcp")]}
        # root knocked (no handshake completed on the target), the unprivileged sweep connected
        assert accepted["root"] == 0 and accepted["unprivileged"] >= 1
        # The control: no established rule, and the same sweep finds nothing open.
        subprocess.run(["ip", "netns", "exec", SCANNER, "nft", "delete", "rule", "inet", "eafw", "input", "handle",
                        _rule_handle("ct state established,related accept")], check=True, timeout=10)  # fmt: skip
        devices = _devices(_in_scanner(tmp_path / "blind", "discover", TARGET_IP))
        assert devices[TARGET_IP]["device"]["services"] == []  # type: ignore[index]
    finally:
        subprocess.run(["ip", "netns", "exec", SCANNER, "nft", "delete", "table", "inet", "eafw"], check=False,
                       timeout=10)  # fmt: skip


def _rule_handle(text: str) -> str:
    listing = subprocess.run(["ip", "netns", "exec", SCANNER, "nft", "-a", "list", "chain", "inet", "eafw", "input"],
                             capture_output=True, text=True, check=True, timeout=10).stdout  # fmt: skip
    [line] = [line for line in listing.splitlines() if text in line]
    return line.rsplit("# handle ", 1)[1].strip()
