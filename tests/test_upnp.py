"""UPnP IGD: a unicast M-SEARCH and the description, against a fake root device on loopback.

The real daemon (miniupnpd, on router-weak and router-hardened) is swept in the lab
(tests/test_lab.py, golden files); these cover the parser's edges and the rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

import profiles
from probes.observations import Mode
from probes.upnp import parse_description, same_host
from profiles.errors import MalformedResponse
from scanner.findings import Status
from scanner.orchestrator import Engine, HostResult
from tests.conftest import fresh_address

IGD_XML = b"""<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>Fake Gateway</friendlyName><manufacturer>EdgeLab</manufacturer>
<modelName>EL-R100</modelName><modelNumber>2.4.1</modelNumber>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<controlURL>/ctl/IPConn</controlURL></service></serviceList></device></deviceList></device></deviceList>
</device></root>"""


@dataclass
class FakeRootDevice:
    """SSDP on udp/1900 and the description over HTTP, on one loopback address."""

    address: str
    description: bytes = IGD_XML
    location: str | None = None  # default: this address's HTTP server
    searches: list[bytes] = field(default_factory=list)
    http_requests: list[bytes] = field(default_factory=list)
    soap: list[bytes] = field(default_factory=list)


@pytest.fixture
async def root_device() -> AsyncIterator[FakeRootDevice]:
    dev = FakeRootDevice(fresh_address())

    async def serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        (dev.soap if head.startswith(b"POST") else dev.http_requests).append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % len(dev.description))
        writer.write(dev.description)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve_http, dev.address, 0)
    http_port = server.sockets[0].getsockname()[1]

    class Ssdp(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            dev.searches.append(data)
            location = dev.location or f"http://{dev.address}:{http_port}/rootDesc.xml"
            answer = (
                "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: upnp:rootdevice\r\n"
                "USN: uuid:11111111-2222-3333-4444-555555555555::upnp:rootdevice\r\n"
                f"SERVER: Linux/5.10 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: {location}\r\n\r\n"
            )
            self.transport.sendto(answer.encode(), addr)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Ssdp, local_addr=(dev.address, 1900))
    yield dev
    transport.close()
    server.close()
    await server.wait_closed()


async def _scan(address: str, vantage: str) -> HostResult:
    from probes.base import ProbeConfig, Timeouts
    from scanner.orchestrator import SweepConfig

    config = SweepConfig(
        mode=Mode.DEFAULT,
        timeouts=Timeouts(connect=1.0, read=1.0, probe=4.0, host=20.0),
        probe_config=ProbeConfig(tcp_ports=(1,), snmp_port=9, sip_port=9, ntp_port=9),
        vantage=vantage,
    )
    engine = Engine(config, profiles.load_all())
    return await asyncio.wait_for(engine.scan_host(address), 60)


def _findings(result: HostResult, check_id: str) -> list[tuple[str, str | None]]:
    return [(str(f.status), f.service) for f in result.findings if f.check_id == check_id]


async def test_an_igd_is_info_from_the_lan_and_critical_from_the_wan(root_device: FakeRootDevice) -> None:
    lan = await _scan(root_device.address, "lan")
    [igd] = [f for f in lan.findings if f.check_id == "CIAJ-3.4-UPNP-IGD"]
    assert igd.status == Status.INFO and igd.service == "udp/1900"
    assert igd.evidence["igd"] is True and igd.evidence["device"] == "EdgeLab EL-R100 2.4.1"
    assert "WANIPConnection" in igd.evidence["services"]  # type: ignore[operator]
    wan = await _scan(root_device.address, "wan")
    assert _findings(wan, "CIAJ-3.4-UPNP-EXPOSED-WAN") == [("fail", "udp/1900")]
    assert _findings(wan, "CIAJ-3.4-UPNP-IGD") == []
    # only reads: M-SEARCH for root devices, GET of the description; never a SOAP action
    assert all(b"ST: upnp:rootdevice" in s and b"M-SEARCH * HTTP/1.1" in s for s in root_device.searches)
    assert root_device.http_requests and all(r.startswith(b"GET /rootDesc.xml") for r in root_device.http_requests)
    assert root_device.soap == []


async def test_silence_from_the_wan_passes() -> None:
    quiet = fresh_address()
    wan = await _scan(quiet, "wan")
    [(status, _)] = _findings(wan, "CIAJ-3.4-UPNP-EXPOSED-WAN")
    assert status == "pass"  # loopback refuses udp/1900 at once: closed


async def test_a_location_on_another_host_is_never_fetched(root_device: FakeRootDevice) -> None:
    other = fresh_address()
    root_device.location = f"http://{other}:80/desc.xml"
    lan = await _scan(root_device.address, "lan")
    [igd] = [f for f in lan.findings if f.check_id == "CIAJ-3.4-UPNP-IGD"]
    assert "not fetched" in str(igd.evidence["description"]) and igd.evidence["igd"] is False
    assert root_device.http_requests == []


async def test_a_description_with_a_doctype_is_refused(root_device: FakeRootDevice) -> None:
    root_device.description = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><root>&a;</root>'
    lan = await _scan(root_device.address, "lan")
    [igd] = [f for f in lan.findings if f.check_id == "CIAJ-3.4-UPNP-IGD"]
    assert "DOCTYPE" in str(igd.evidence["description"])


def test_description_parser_bounds() -> None:
    parsed = parse_description(IGD_XML)
    assert parsed["deviceType"][0].endswith("InternetGatewayDevice:1") and len(parsed["deviceType"]) == 3
    with pytest.raises(MalformedResponse):
        parse_description(b"<root><device></device></root>")  # no deviceType
    with pytest.raises(MalformedResponse):
        parse_description(b"<root><unclosed>")
    assert same_host("http://127.0.0.1:5000/x.xml", "127.0.0.1")
    assert not same_host("http://127.0.0.2:5000/x.xml", "127.0.0.1")
    assert not same_host("http://router.example:5000/x.xml", "127.0.0.1")  # names are not resolved
    assert not same_host("file:///etc/passwd", "127.0.0.1")


LAZY_HTTPX = """
import asyncio, json, sys, threading
import probes, scanner.cli
scanner.cli.build_parser()
probes.load_all()
before = "httpx" in sys.modules
where = []
class Hook:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "httpx":
            where.append("main" if threading.current_thread() is threading.main_thread() else "worker")
sys.meta_path.insert(0, Hook)
from tests import test_upnp
result = asyncio.run(test_upnp._scan(sys.argv[1], "lan"))
igd = [str(f.status) for f in result.findings if f.check_id == "CIAJ-3.4-UPNP-IGD"]
print(json.dumps({"before": before, "where": where, "igd": igd}))
"""


async def test_httpx_is_loaded_only_for_a_description_and_then_off_the_loop(root_device: FakeRootDevice) -> None:
    """Every probe imported (as `discover` does) loads no httpx; an SSDP answer's fetch imports it in a thread."""
    import json
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LAZY_HTTPX, root_device.address, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    seen = json.loads(out.decode().splitlines()[-1])
    assert seen == {"before": False, "where": ["worker"], "igd": ["info"]}
    assert root_device.http_requests  # the description was fetched
