"""`--from-nmap XML`: the scope is exactly the hosts nmap found up, their open TCP ports join the sweep's.

The recorded file (tests/data/nmap/) is real nmap output (-oX; ``nmap -n -sS -sV --version-light -p
21,22,23,53,80,443,2222,8080,8081 198.18.0.0/24``) of the namespace lab's LAN, whose daemons are
real Debian packages; a live case runs the nmap found on PATH against a loopback
device when there is one. Hostile files (entities, another root, broken XML, bad addresses or
ports, no host up) are usage errors naming the file, never a sweep of something else.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest

from profiles.errors import ScopeError
from scanner import nmap_input
from scanner.targets import Scope
from tests.conftest import FAST, StartDevice, cli_exit

RECORDED = Path(__file__).parent / "data" / "nmap" / "lab-lan-sV.xml"


def _xml(hosts: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n'
        '<nmaprun scanner="nmap" args="nmap -oX - 127.0.0.1" version="7.93" xmloutputversion="1.05">\n'
        f"{hosts}<runstats><finished/></runstats></nmaprun>\n"
    )


def _host(address: str, state: str = "up", ports: str = "") -> str:
    return (
        f'<host><status state="{state}" reason="syn-ack"/><address addr="{address}" addrtype="ipv4"/>'
        f'<address addr="02:00:00:00:00:01" addrtype="mac"/><ports>{ports}</ports></host>\n'
    )


def _port(number: int, name: str, state: str = "open", proto: str = "tcp", extra: str = "") -> str:
    return (
        f'<port protocol="{proto}" portid="{number}"><state state="{state}" reason="syn-ack"/>'
        f'<service name="{name}" method="probed" conf="10"{extra}/></port>'
    )


def test_recorded_real_nmap_output_of_the_lab() -> None:
    hosts = nmap_input.read(RECORDED)
    text = RECORDED.read_text(encoding="utf-8")
    assert 'scanner="nmap"' in text  # the recording is nmap's own output
    assert hosts.addresses and all(a.startswith("198.18.0.") for a in hosts.addresses)
    assert hosts.hosts_down == 0  # nmap -oX lists no down host unless asked (-v)
    up = re.search(r'<hosts up="(\d+)" down="(\d+)"', text)  # nmap's own count, in its runstats
    assert up is not None and len(hosts.addresses) == int(up.group(1)) == 25
    # The lab's OpenSSH and lighttpd, as nmap's service detection named them.
    assert hosts.open_tcp.get(22) == "ssh"
    assert hosts.open_tcp.get(80) == "http"
    assert all(0 < p < 65536 for p in hosts.open_tcp)
    assert "nmap found up in" in hosts.describe()


def test_only_hosts_up_and_open_tcp_ports_are_taken(tmp_path: Path) -> None:
    path = tmp_path / "scan.xml"
    ports = (
        _port(2222, "ssh") + _port(8081, "http-proxy") + _port(4443, "http", extra=' tunnel="ssl"')
        + _port(9999, "abyss") + _port(23, "telnet", state="closed") + _port(161, "snmp", proto="udp")
    )  # fmt: skip
    path.write_text(_xml(_host("127.0.0.5", ports=ports) + _host("127.0.0.6", state="down") + _host("127.0.0.5")))
    hosts = nmap_input.read(path)
    assert hosts.addresses == ["127.0.0.5"] and hosts.hosts_down == 1
    assert hosts.open_tcp == {2222: "ssh", 8081: "http", 4443: "https", 9999: None}
    assert hosts.describe() == f"the 1 host(s) nmap found up in {path} (1 down, 4 open TCP port(s))"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><nmaprun>&a;</nmaprun>', "declares XML entities"),
        ("<report><host/></report>", "not nmap's <nmaprun>"),
        ('<nmaprun>\n<host><status state="up"/>\n<address addr="127.0.0.1"', ":3: not well-formed XML"),
        (_xml(_host("127.0.0.999")), "'127.0.0.999' is not an IP address"),
        (_xml(_host("127.0.0.1", ports=_port(70000, "x"))), "port 70000 is not 1-65535"),
        (_xml(_host("127.0.0.1", ports=_port(0, "x").replace('portid="0"', 'portid="ssh"'))), "is not a number"),
        (_xml(_host("127.0.0.1", state="down")), "nmap found no host up (1 down)"),
        ("", "not well-formed XML"),
        (_xml('<host><status state="up"/><address addr="02:00:00:00:00:01" addrtype="mac"/></host>'), "no IPv4"),
    ],
)
def test_a_file_that_is_not_nmap_output_is_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(content)
    with pytest.raises(ScopeError, match=r"bad\.xml") as caught:
        nmap_input.read(path)
    assert message in str(caught.value)


def test_size_ceiling_and_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.xml"
    path.write_text(_xml(_host("127.0.0.1")))
    monkeypatch.setattr(nmap_input, "MAX_BYTES", 100)
    with pytest.raises(ScopeError, match="larger than"):
        nmap_input.read(path)
    with pytest.raises(ScopeError, match="cannot read nmap file"):
        nmap_input.read(tmp_path / "missing.xml")


def test_scope_keeps_its_origin_through_resume() -> None:
    scope = Scope(["127.0.0.5"], [], [(4, 2130706437, 2130706437)], origin="the 1 host(s) nmap found up in x.xml")
    assert scope.describe() == "1 address(es) from the 1 host(s) nmap found up in x.xml"
    assert Scope.from_json(json.loads(json.dumps(scope.to_json()))).describe() == scope.describe()
    old = {k: v for k, v in scope.to_json().items() if k != "origin"}  # stored before --from-nmap
    assert Scope.from_json(old).origin == ""


async def _sweep_from(xml: Path, tmp_path: Path, device_address: str) -> tuple[dict[str, object], str]:
    out = tmp_path / "out"
    code, err = await cli_exit(
        "discover", "--from-nmap", str(xml), "--ports", "1", "--snmp-port", "9", "--sip-port", "9",
        "--ntp-port", "9", "--unprivileged", *FAST, "--out", str(out), "--db", str(tmp_path / "h.db"),
    )  # fmt: skip
    assert code == 0, err
    report: dict[str, object] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return report, err


async def test_discover_from_nmap_reaches_the_port_nmap_found(emulated: StartDevice, tmp_path: Path) -> None:
    """The device's SSH is on a port outside --ports: only nmap's hint makes the sweep try it."""
    device = await emulated(services=["ssh"])
    port = device.bound["ssh"]
    xml = tmp_path / "nmap.xml"
    xml.write_text(_xml(_host(device.spec.address, ports=_port(port, "ssh")) + _host("127.0.0.2", state="down")))
    report, err = await _sweep_from(xml, tmp_path, device.spec.address)
    assert f"scope 1 address(es) from the 1 host(s) nmap found up in {xml}" in err
    (dev,) = report["devices"]  # type: ignore[misc]
    assert dev["address"] == device.spec.address  # 127.0.0.2, down in the file, is not in scope
    services = {(s["service"], s["name"]) for f in dev["findings"] for s in f["evidence"]["services"]}
    assert (f"tcp/{port}", "ssh") in services


async def test_from_nmap_with_targets_is_refused(tmp_path: Path) -> None:
    xml = tmp_path / "nmap.xml"
    xml.write_text(_xml(_host("127.0.0.1")))
    code, err = await cli_exit("discover", "127.0.0.1", "--from-nmap", str(xml), "--db", str(tmp_path / "h.db"))
    assert code == 2 and "not both" in err
    code, err = await cli_exit("scan", "--from-nmap", str(tmp_path / "missing.xml"), "--db", str(tmp_path / "h.db"))
    assert code == 2 and "cannot read nmap file" in err


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap not installed (make bench-lab installs it)")
async def test_live_nmap_output_drives_the_sweep(emulated: StartDevice, tmp_path: Path) -> None:
    """Whatever nmap on this machine writes for a loopback device, the sweep takes it."""
    device = await emulated(services=["ssh"])
    port = device.bound["ssh"]
    xml = tmp_path / "live.xml"
    proc = await asyncio.create_subprocess_exec(
        "nmap", "-n", "-Pn", "-sT", "-p", str(port), "-oX", str(xml), device.spec.address,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    hosts = nmap_input.read(xml)
    assert hosts.addresses == [device.spec.address] and port in hosts.open_tcp
    report, _ = await _sweep_from(xml, tmp_path, device.spec.address)
    (dev,) = report["devices"]  # type: ignore[misc]
    assert any(s["service"] == f"tcp/{port}" for f in dev["findings"] for s in f["evidence"]["services"])
