"""The emulated device and its protocol handlers (asyncio, bounded reads)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from probes import ber, sipmsg
from scanner.errors import MalformedResponse

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
NTP_EPOCH = 2_208_988_800
DEFAULT_PORTS = {"ftp": 21, "ssh": 22, "telnet": 23, "http": 80, "snmp": 161, "ntp": 123, "sip": 5060}
TCP_SERVICES = ("ftp", "ssh", "telnet", "http")


@dataclass
class DeviceSpec:
    """One emulated device, as written in the lab YAML."""

    name: str
    address: str
    persona: str  # router | mfp | pbx
    model: str
    firmware: str
    services: dict[str, int]
    communities: list[str] = field(default_factory=list)
    http_mode: str = "basic"  # basic | form | redirect | open
    ntp_stratum: int = 3
    clock_skew_s: float = 0.0
    hang: list[str] = field(default_factory=list)  # services that accept but never answer
    garbage: list[str] = field(default_factory=list)  # services that answer junk

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceSpec:
        """Build from YAML; services may be a list of names (default ports) or a name->port map."""
        services = data.get("services", [])
        if isinstance(services, list):
            services = {s: DEFAULT_PORTS[s] for s in services}
        return cls(
            name=data["name"],
            address=data["address"],
            persona=data["persona"],
            model=data["model"],
            firmware=str(data["firmware"]),
            services=dict(services),
            communities=list(data.get("communities", [])),
            http_mode=data.get("http_mode", "basic"),
            ntp_stratum=int(data.get("ntp_stratum", 3)),
            clock_skew_s=float(data.get("clock_skew_s", 0)),
            hang=list(data.get("hang", [])),
            garbage=list(data.get("garbage", [])),
        )


class Device:
    """A running emulated device: one listener per service on its address."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.servers: list[asyncio.base_events.Server] = []
        self.transports: list[asyncio.DatagramTransport] = []
        self.bound: dict[str, int] = {}
        self.received: list[tuple[str, bytes]] = []  # (service, first bytes) for tests
        self._conns: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Bind every service (port 0 picks a free one; see ``bound``)."""
        loop = asyncio.get_running_loop()
        for name, port in self.spec.services.items():
            if name in TCP_SERVICES:
                server = await asyncio.start_server(
                    self._tcp_handler(name), self.spec.address, port, reuse_address=True
                )
                self.servers.append(server)
                self.bound[name] = server.sockets[0].getsockname()[1]
            else:
                transport, _ = await loop.create_datagram_endpoint(
                    self._udp_factory(name), local_addr=(self.spec.address, port)
                )
                self.transports.append(transport)
                self.bound[name] = transport.get_extra_info("sockname")[1]

    def _tcp_handler(
        self, name: str
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._tcp(name, reader, writer)

        return handle

    def _udp_factory(self, name: str) -> Callable[[], _Udp]:
        return lambda: _Udp(self, name)

    async def stop(self) -> None:
        """Close every listener and connection."""
        for server in self.servers:
            server.close()
        for task in list(self._conns):
            task.cancel()
        for transport in self.transports:
            transport.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    # TCP services

    async def _tcp(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            if name in self.spec.hang:
                await asyncio.sleep(3600)
                return
            if name in self.spec.garbage:
                writer.write(b"\x00\xff garbage \xfe" * 8)
                await writer.drain()
                return
            handler = getattr(self, f"_{name}")
            await asyncio.wait_for(handler(reader, writer), 30)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # the device is stopping: end this connection quietly
        finally:
            self._conns.discard(task)
            writer.close()

    async def _ssh(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"SSH-2.0-EdgeLabOS_{self.spec.firmware}\r\n".encode())
        await writer.drain()
        line = await reader.readline()  # the client's identification, then we hang up
        self.received.append(("ssh", line[:100]))

    async def _telnet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(bytes([255, 251, 1, 255, 251, 3]))  # WILL ECHO, WILL SGA
        writer.write(f"\r\nEdgeLab {self.spec.model} Rev.{self.spec.firmware}\r\n\r\nLogin: ".encode())
        await writer.drain()
        data = await reader.read(256)
        self.received.append(("telnet", data))
        await reader.read(256)

    async def _ftp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"220 EdgeLab {self.spec.model} FTP server ready\r\n".encode())
        await writer.drain()
        self.received.append(("ftp", await reader.readline()))

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.received.append(("http", head[:200]))
        spec = self.spec
        if spec.persona == "mfp":
            title, server = f"EdgeLab {spec.model} Web Console", f"EdgeLab-EWS/{spec.firmware}"
        elif spec.persona == "pbx":
            title, server = "EdgeLab PBX Administration", "EdgeLab-PBX-Web"
        else:
            title, server = f"EdgeLab {spec.model} Router Setup", "EdgeLab-httpd"
        headers = [f"Server: {server}", f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}"]
        if spec.http_mode == "redirect":
            status, body = "301 Moved Permanently", b""
            headers.append(f"Location: https://{spec.address}/")
        elif spec.http_mode == "basic":
            status = "401 Unauthorized"
            headers.append(f'WWW-Authenticate: Basic realm="{spec.model}"')
            body = f"<html><head><title>{title}</title></head><body>Authorization required</body></html>".encode()
        elif spec.http_mode == "form":
            status = "200 OK"
            body = (
                f"<html><head><title>{title}</title></head><body><form method=post action=/login>"
                "<input name=user><input type=password name=pass></form></body></html>"
            ).encode()
        else:
            status = "200 OK"
            body = f"<html><head><title>{title}</title></head><body>status</body></html>".encode()
        headers += ["Content-Type: text/html", f"Content-Length: {len(body)}", "Connection: close"]
        writer.write((f"HTTP/1.1 {status}\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode() + body)
        await writer.drain()

    # UDP services

    def udp(self, name: str, data: bytes) -> bytes | None:
        """Answer one datagram (None: stay silent, as real agents do for bad input)."""
        self.received.append((name, data[:64]))
        if name in self.spec.hang:
            return None
        if name in self.spec.garbage:
            return b"\x30\x03\x02\x01" + data[:4]
        try:
            if name == "snmp":
                return self._snmp(data)
            if name == "sip":
                return self._sip(data)
            if name == "ntp":
                return self._ntp(data)
        except MalformedResponse:
            return None
        return None

    def sys_descr(self) -> str:
        """What the SNMP agent says in sysDescr."""
        spec = self.spec
        if spec.persona == "mfp":
            return f"EdgeLab {spec.model} MFP, firmware {spec.firmware}"
        return f"EdgeLab {spec.model} Rev.{spec.firmware}"

    def _snmp(self, data: bytes) -> bytes | None:
        top = ber.Reader(data).sub(ber.SEQUENCE)
        version = top.int()
        if version == 3:
            from probes.snmp import parse_v3_message

            msg_id, _engine, tag, request_id = parse_v3_message(data)
            if tag != ber.GET_REQUEST:
                return None
            engine_id = b"\x80\x00\x01\x86\x9f\x04" + self.spec.name.encode()[:20]
            usm = ber.enc_seq(
                ber.enc_str(engine_id),
                ber.enc_int(1),
                ber.enc_int(int(time.monotonic()) % 100000),
                ber.enc_str(b""),
                ber.enc_str(b""),
                ber.enc_str(b""),
            )
            vb = ber.enc_seq(ber.enc_seq(ber.enc_oid("1.3.6.1.6.3.15.1.1.4.0"), ber.enc_int(1, ber.COUNTER32)))
            report = ber.enc_seq(ber.enc_int(request_id), ber.enc_int(0), ber.enc_int(0), vb, tag=ber.REPORT)
            return ber.enc_seq(
                ber.enc_int(3),
                ber.enc_seq(ber.enc_int(msg_id), ber.enc_int(65507), ber.enc_str(b"\x00"), ber.enc_int(3)),
                ber.enc_str(usm),
                ber.enc_seq(ber.enc_str(engine_id), ber.enc_str(b""), report),
            )
        community = top.expect(ber.OCTET_STRING).decode("latin-1")
        if community not in self.spec.communities:
            return None  # wrong community: silence, like a real agent
        tag, pdu_bytes = top.read()
        if tag != ber.GET_REQUEST:
            return None
        pdu = ber.Reader(pdu_bytes)
        request_id = pdu.int()
        pdu.int()
        pdu.int()
        binds = pdu.sub(ber.SEQUENCE)
        values = {
            SYS_DESCR: ber.enc_str(self.sys_descr().encode()),
            SYS_OBJECT_ID: ber.enc_oid(
                "1.3.6.1.4.1.99999.1." + {"router": "1", "mfp": "2", "pbx": "3"}.get(self.spec.persona, "9")
            ),
            SYS_NAME: ber.enc_str(self.spec.name.encode()),
        }
        out = []
        while not binds.done():
            bind = binds.sub(ber.SEQUENCE)
            oid = ber.dec_oid(bind.expect(ber.OID))
            out.append(ber.enc_seq(ber.enc_oid(oid), values.get(oid, ber.enc_null(ber.NO_SUCH_OBJECT))))
        resp = ber.enc_seq(ber.enc_int(request_id), ber.enc_int(0), ber.enc_int(0), ber.enc_seq(*out), tag=ber.RESPONSE)
        return ber.enc_seq(ber.enc_int(version), ber.enc_str(community.encode("latin-1")), resp)

    def _sip(self, data: bytes) -> bytes | None:
        msg = sipmsg.parse(data)
        if msg.is_response or msg.method is None:
            return None
        to = msg.get("to") or ""
        if ";tag=" not in to:
            to += ";tag=el" + str(abs(hash(msg.get("call-id"))) % 10**8)
        status = "200 OK" if msg.method == "OPTIONS" else "501 Not Implemented"
        lines = [f"SIP/2.0 {status}"]
        lines += [f"Via: {v}" for v in msg.values("via")]
        lines += [
            f"From: {msg.get('from')}",
            f"To: {to}",
            f"Call-ID: {msg.get('call-id')}",
            f"CSeq: {msg.get('cseq')}",
            f"User-Agent: EdgeLab PBX {self.spec.firmware}",
            "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, REGISTER",
            "Supported: replaces, timer",
            "Content-Length: 0",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _ntp(self, data: bytes) -> bytes | None:
        if len(data) < 48 or data[0] & 7 != 3:
            return None
        now = time.time() + self.spec.clock_skew_s + NTP_EPOCH
        ts = int(now * 2**32) & 0xFFFFFFFFFFFFFFFF
        stratum = self.spec.ntp_stratum
        leap = 3 if stratum >= 16 else 0
        origin = data[40:48]
        ref = b"LOCL" if stratum == 1 else (b"\x7f\x00\x00\x01" if stratum < 16 else b"INIT")
        return (
            struct.pack("!BBbb", (leap << 6) | (4 << 3) | 4, stratum, 6, -20)
            + b"\0" * 8
            + ref
            + struct.pack("!Q", ts)
            + origin
            + struct.pack("!QQ", ts, ts)
        )


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, device: Device, name: str) -> None:
        self.device, self.name = device, name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self.device.udp(self.name, data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def run_devices(specs: list[DeviceSpec]) -> list[Device]:
    """Start devices; returns them running."""
    devices = [Device(s) for s in specs]
    for d in devices:
        await d.start()
    return devices
