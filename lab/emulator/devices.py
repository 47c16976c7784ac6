"""The emulated device and its protocol handlers (asyncio, bounded reads)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote_plus

from lab.emulator import printer
from lab.emulator.hostile import Hostile
from lab.emulator.sip_pbx import SipPersona, device_date
from lab.emulator.spec import TCP_SERVICES, DeviceSpec
from probes.sip import sipmsg
from probes.wire import ber
from profiles.errors import MalformedResponse, ProbeError

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
NTP_EPOCH = 2_208_988_800
class Device:
    """A running emulated device: one listener per service on its address."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.servers: list[asyncio.base_events.Server] = []
        self.transports: list[asyncio.DatagramTransport] = []
        self.bound: dict[str, int] = {}
        self.received: list[tuple[str, bytes]] = []  # (service, first bytes) for tests
        self._conns: set[asyncio.Task[Any]] = set()
        self.login_attempts: list[tuple[str, str]] = []  # (service, username)
        self.auth_users: list[str] = []  # SSH user names announced (even with no password)
        self.failures: dict[str, int] = {}  # failed logins per account that still count toward the lockout
        self._failure_times: dict[str, list[float]] = {}
        self.most_failures = 0  # the highest count any account ever reached
        self.locked: set[str] = set()  # accounts locked by lockout_after
        self.config_attempts: list[str] = []  # configuration-changing commands received (must stay empty)
        self.snmp_sets: list[str] = []  # SNMP SET requests received (must stay empty)
        self.job_bytes = 0  # non-PJL bytes on the raw print port (must stay 0)
        self.pjl_writes: list[str] = []  # PJL commands other than inquiries (must stay empty)
        self.ipp_operations: list[int] = []  # IPP operation ids received (a sweep sends Get-Printer-Attributes only)
        self.sip = SipPersona(spec)
        self._log_socket: socket.socket | None = None
        self._cli: Any = None
        self.hostile = None
        if spec.hostile is not None:
            self.hostile = Hostile(spec.hostile, spec.hostile_seed, spec.drip_ms, spec.address)

    def check_login(self, username: str, password: str) -> bool:
        """One login attempt against the spec's users, counting failures toward the lockout."""
        if username in self.locked:
            self.log_event(f"login refused for locked account {username}")
            return False
        if username in self.spec.users and self.spec.users[username] == password:
            self.failures.pop(username, None)
            self._failure_times.pop(username, None)
            self.log_event(f"login succeeded for {username}")
            return True
        now, window = time.monotonic(), self.spec.lockout_window_s
        times = [t for t in self._failure_times.get(username, []) if window is None or now - t < window]
        self._failure_times[username] = [*times, now]
        self.failures[username] = len(times) + 1
        self.most_failures = max(self.most_failures, self.failures[username])
        self.log_event(f"login failed for {username}")
        limit = self.spec.lockout_after
        if limit is not None and self.failures[username] >= limit:
            self.locked.add(username)
        return False

    async def refusal_pause(self) -> None:
        """Wait before answering a refused login, as PAM's fail delay makes real servers do."""
        if self.spec.refusal_delay_s > 0:
            await asyncio.sleep(self.spec.refusal_delay_s)

    def log_event(self, text: str) -> None:
        """Log one security event: sent as RFC 3164 syslog (facility auth) to each remote host, if logging is on."""
        if not self.spec.logging.get("enabled"):
            return
        stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(time.time() + self.spec.clock_skew_s))
        line = f"<38>{stamp} {self.spec.name} auth: {text}".encode()
        if self._log_socket is None:
            self._log_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._log_socket.setblocking(False)
            self._log_socket.bind((self.spec.address, 0))  # sent from the device's own address
        for remote in self.spec.logging.get("remote", []):
            host, _, port = str(remote).partition(":")
            with contextlib.suppress(OSError):
                self._log_socket.sendto(line, (host, int(port or 514)))

    async def start(self) -> None:
        """Bind every service (port 0 picks a free one; see ``bound``)."""
        loop = asyncio.get_running_loop()
        for name, port in self.spec.services.items():
            if name == "ssh" and name not in self.spec.hang + self.spec.garbage and self.hostile is None:
                from lab.emulator.cli import CliServer

                self._cli = CliServer(self)
                self.bound[name] = await self._cli.start(port)
            elif name in TCP_SERVICES:
                server = await asyncio.start_server(
                    self._tcp_handler(name), self.spec.listen_on(name), port, reuse_address=True
                )
                self.servers.append(server)
                self.bound[name] = server.sockets[0].getsockname()[1]
            else:
                for address in self.spec.listen_on(name):
                    transport, _ = await loop.create_datagram_endpoint(
                        self._udp_factory(name), local_addr=(address, port)
                    )
                    self.transports.append(transport)
                    self.bound.setdefault(name, transport.get_extra_info("sockname")[1])
        if self.hostile is not None:
            self.hostile.http_port = self.bound.get("http", 80)  # where its SSDP answer points

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
        self.sip.close()
        if self._log_socket is not None:
            self._log_socket.close()
        if self._cli is not None:
            await self._cli.stop()
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
            if self.hostile is not None:
                await asyncio.wait_for(self.hostile.tcp(name, reader, writer), 30)
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

    async def _telnet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(bytes([255, 251, 1, 255, 251, 3]))  # WILL ECHO, WILL SGA
        writer.write(f"\r\nEdgeLab {self.spec.model} Rev.{self.spec.firmware}\r\n\r\nLogin: ".encode())
        await writer.drain()
        for _ in range(3):  # three tries per connection, then hang up (as most consoles do)
            line = await reader.readline()
            if not line.endswith(b"\n"):
                return  # the client left without sending a name (a banner grab): no login attempt
            user = _strip_iac(line).strip()
            self.received.append(("telnet", user[:100]))
            writer.write(b"Password: ")
            await writer.drain()
            password = _strip_iac(await reader.readline()).strip()
            self.login_attempts.append(("telnet", user.decode("latin-1")))
            if user.decode("latin-1") in self.locked:
                writer.write(b"\r\nAccount locked: too many failed logins\r\n")
                await writer.drain()
                return
            if self.check_login(user.decode("latin-1"), password.decode("latin-1")):
                writer.write(f"\r\n{self.spec.name}> ".encode())
                await writer.drain()
                await reader.readline()
                return
            await self.refusal_pause()
            writer.write(b"\r\nLogin incorrect\r\n\r\nLogin: ")
            await writer.drain()

    async def _ftp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"220 EdgeLab {self.spec.model} FTP server ready\r\n".encode())
        await writer.drain()
        user = ""
        for _ in range(20):
            line = (await reader.readline())[:200]
            if not line:
                return
            self.received.append(("ftp", line))
            verb, _, arg = line.decode("latin-1").strip().partition(" ")
            verb = verb.upper()
            if verb == "USER":
                user, reply = arg, "331 Password required"
            elif verb == "PASS":
                self.login_attempts.append(("ftp", user))
                anonymous = user.lower() in ("anonymous", "ftp") and self.spec.ftp_anonymous
                ok = anonymous or self.check_login(user, arg)
                if not ok:
                    await self.refusal_pause()
                reply = "230 Login successful" if ok else "530 Login incorrect"
            elif verb == "QUIT":
                writer.write(b"221 Goodbye\r\n")
                await writer.drain()
                return
            else:
                reply = "502 Command not implemented"
            writer.write(f"{reply}\r\n".encode())
            await writer.drain()

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.received.append(("http", head[:200]))
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, _, rest = request_line.partition(" ")
        path = rest.split(" ")[0] or "/"
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        length = min(int(headers.get("content-length", "0") or 0), 4096)
        body_in = await reader.readexactly(length) if length else b""
        spec = self.spec
        title, server = {
            "mfp": (f"EdgeLab {spec.model} Web Console", f"EdgeLab-EWS/{spec.firmware}"),
            "pbx": ("EdgeLab PBX Administration", "EdgeLab-PBX-Web"),
            "phone": (f"EdgeLab {spec.model} Phone Settings", "EdgeLab-Phone-Web"),
        }.get(spec.persona, (f"EdgeLab {spec.model} Router Setup", "EdgeLab-httpd"))
        title = spec.http_title or title
        out = [f"Server: {server}", f"Date: {device_date(spec.clock_skew_s)}"]
        page = f"<html><head><title>{title}</title></head><body>{{}}</body></html>"
        if spec.http_mode == "redirect":
            status, body = "301 Moved Permanently", b""
            out.append(f"Location: https://{spec.address}/")
        elif spec.http_mode == "basic":
            user, password = _basic_credentials(headers.get("authorization", ""))
            if user is not None:
                self.login_attempts.append(("http", user))
            if user is not None and self.check_login(user, password):
                status, body = "200 OK", page.format("Administration menu: status, network, logout").encode()
            else:
                status, body = "401 Unauthorized", page.format("Authorization required").encode()
                out.append(f'WWW-Authenticate: Basic realm="{spec.model}"')
        elif spec.http_mode == "form" and method == "POST" and path == "/login":
            form = dict(p.partition("=")[::2] for p in body_in.decode("latin-1").split("&") if p)
            user = unquote_plus(form.get("user", ""))
            self.login_attempts.append(("http", user))
            if self.check_login(user, unquote_plus(form.get("pass", ""))):
                status, body = "302 Found", b""
                out += ["Location: /admin", "Set-Cookie: session=lab-session; HttpOnly"]
            else:
                status, body = (
                    "200 OK",
                    page.format(
                        "Login failed. <form method=post action=/login>"
                        "<input name=user><input type=password name=pass></form>"
                    ).encode(),
                )
        elif spec.http_mode == "form" and path == "/admin" and "session=lab-session" in headers.get("cookie", ""):
            status, body = "200 OK", page.format("Administration menu: logout").encode()
        elif spec.http_mode == "form":
            status = "200 OK"
            body = page.format(
                "<form method=post action=/login><input name=user><input type=password name=pass></form>"
            ).encode()
        else:
            status, body = "200 OK", page.format("status").encode()
        out += ["Content-Type: text/html", f"Content-Length: {len(body)}", "Connection: close"]
        writer.write((f"HTTP/1.1 {status}\r\n" + "\r\n".join(out) + "\r\n\r\n").encode() + body)
        await writer.drain()

    async def _sip_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """SIP over TCP: messages framed by Content-Length, answered on the same connection."""
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                head = head.lstrip(b"\r\n")
                if not head:
                    continue
                body = await reader.readexactly(sipmsg.content_length(head) or 0)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ProbeError):
                return
            with contextlib.suppress(ProbeError):
                self.sip.handle(head + body, writer.write)

    async def _pjl(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Raw print port: answer read-only PJL inquiries, record anything else, print nothing."""
        for _ in range(50):
            line = await reader.readline()
            if not line:
                return
            text = line.replace(printer.UEL, b"").decode("latin-1").strip()
            if not text:
                continue
            if not text.upper().startswith("@PJL"):
                self.job_bytes += len(line)
                continue
            self.received.append(("pjl", text.encode()[:100]))
            answer = printer.pjl_answer(self.spec, text)
            if answer is None:
                if text.upper().strip() != "@PJL":
                    self.pjl_writes.append(text)
                continue
            writer.write(answer)
            await writer.drain()

    async def _ipp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """IPP over HTTP POST: Get-Printer-Attributes."""
        head = await reader.readuntil(b"\r\n\r\n")
        self.received.append(("ipp", head[:200]))
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head.decode().split("\r\n")[1:])
        }
        length = min(int(headers.get("content-length", "0") or 0), 65536)
        request = await reader.readexactly(length) if length else b""
        if len(request) >= 4:
            self.ipp_operations.append(int.from_bytes(request[2:4], "big"))
        body = printer.ipp_response(self.spec, request)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/ipp\r\nServer: EdgeLab-IPP/"
            + self.spec.firmware.encode()
            + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
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
                raise AssertionError("sip is handled by the persona")
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
        if community not in self.spec.communities and "*" not in self.spec.communities:
            return None  # wrong community: silence, like a real agent ("*": a broken agent that takes any)
        tag, pdu_bytes = top.read()
        pdu = ber.Reader(pdu_bytes)
        request_id = pdu.int()
        pdu.int()
        pdu.int()
        binds = pdu.sub(ber.SEQUENCE)
        oids = []
        while not binds.done():
            oids.append(ber.dec_oid(binds.sub(ber.SEQUENCE).expect(ber.OID)))
        if tag == ber.SET_REQUEST:
            self.snmp_sets.extend(oids)  # recorded, never applied
            return None
        values = self.mib()
        missing = [i for i, oid in enumerate(oids) if oid not in values]
        if version == 0 and tag == ber.GET_REQUEST and missing:  # SNMPv1 (RFC 1157): noSuchName for the request
            binds_out = ber.enc_seq(*(ber.enc_seq(ber.enc_oid(o), ber.enc_null()) for o in oids))
            resp = ber.enc_seq(
                ber.enc_int(request_id), ber.enc_int(2), ber.enc_int(missing[0] + 1), binds_out, tag=ber.RESPONSE
            )
            return ber.enc_seq(ber.enc_int(version), ber.enc_str(community.encode("latin-1")), resp)
        out = []
        for oid in oids:
            if tag == ber.GET_NEXT:
                key = _oid_key(oid)
                following = [o for o in sorted(values, key=_oid_key) if _oid_key(o) > key]
                if following:
                    out.append(ber.enc_seq(ber.enc_oid(following[0]), values[following[0]]))
                else:
                    out.append(ber.enc_seq(ber.enc_oid(oid), ber.enc_null(ber.END_OF_MIB)))
            elif tag == ber.GET_REQUEST:
                out.append(ber.enc_seq(ber.enc_oid(oid), values.get(oid, ber.enc_null(ber.NO_SUCH_OBJECT))))
            else:
                return None
        resp = ber.enc_seq(ber.enc_int(request_id), ber.enc_int(0), ber.enc_int(0), ber.enc_seq(*out), tag=ber.RESPONSE)
        return ber.enc_seq(ber.enc_int(version), ber.enc_str(community.encode("latin-1")), resp)

    def mib(self) -> dict[str, bytes]:
        """The agent's values, BER-encoded, by OID."""
        persona_arc = {"router": "1", "mfp": "2", "pbx": "3", "phone": "4"}.get(self.spec.persona, "9")
        values = {
            SYS_DESCR: ber.enc_str(self.sys_descr().encode()),
            SYS_OBJECT_ID: ber.enc_oid("1.3.6.1.4.1.99999.1." + persona_arc),
            SYS_NAME: ber.enc_str(self.spec.name.encode()),
        }
        if self.spec.persona == "mfp":
            values.update(printer.mib_values(self.spec, self.spec.clock_skew_s))
        return values

    def _ntp(self, data: bytes) -> bytes | None:
        mode = data[0] & 7 if data else 0
        if mode == 6 and 6 in self.spec.ntp_control and len(data) >= 12:
            return self._ntp_readvar(data)
        if mode == 7 and 7 in self.spec.ntp_control and len(data) >= 8 and data[3] == 42:
            return self._ntp_monlist(data)
        if len(data) < 48 or mode != 3:
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

    def _ntp_readvar(self, data: bytes) -> bytes:
        """An old ntpd's answer to READVAR: its system variables, to anyone."""
        text = (
            f'version="ntpd 4.2.6p5@1.2349-o (emulated {self.spec.model})", processor="mips", '
            f'system="EdgeLabOS/{self.spec.firmware}", leap=3, stratum={self.spec.ntp_stratum}, refid=INIT'
        ).encode()
        sequence = data[2:4]
        header = bytes([(2 << 3) | 6, 0x80 | 2]) + sequence + b"\x06\x15" + b"\0\0" + b"\0\0"
        return header + struct.pack("!H", len(text)) + text

    def _ntp_monlist(self, data: bytes) -> bytes:
        """An old ntpd's monlist: the last clients it heard from (here, six made-up lab addresses)."""
        size, items = 72, 6
        records = b"".join(
            struct.pack("!4sI", bytes([198, 18, 2, 10 + i]), 123).ljust(size, b"\0") for i in range(items)
        )
        return bytes([0x80 | (2 << 3) | 7, 0, 3, 42]) + struct.pack("!HH", items, size) + records


def _strip_iac(data: bytes) -> bytes:
    """Drop Telnet IAC sequences (3-byte options, 2-byte commands) from a line."""
    out, i = bytearray(), 0
    while i < len(data):
        if data[i] == 255 and i + 1 < len(data):
            i += 3 if data[i + 1] in (251, 252, 253, 254) else 2
            continue
        out.append(data[i])
        i += 1
    return bytes(out)


def _basic_credentials(header: str) -> tuple[str | None, str]:
    """(user, password) from a Basic Authorization header; (None, "") when absent or unreadable."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None, ""
    try:
        user, _, password = base64.b64decode(token.strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, ""
    return user, password


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(x) for x in oid.split("."))


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, device: Device, name: str) -> None:
        self.device, self.name = device, name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.device.hostile is not None:
            self.device.received.append((self.name, data[:64]))
            self.device.hostile.udp(self.name, data, lambda out: self._send(out, addr))
            return
        if self.name == "sip" and self.name not in self.device.spec.hang + self.device.spec.garbage:
            self.device.received.append(("sip", data[:64]))
            with contextlib.suppress(MalformedResponse):
                self.device.sip.handle(data, lambda out: self._send(out, addr))
            return
        reply = self.device.udp(self.name, data)
        if reply is not None:
            self._send(reply, addr)

    def _send(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)


async def run_devices(specs: list[DeviceSpec]) -> list[Device]:
    """Start devices; returns them running."""
    devices = [Device(s) for s in specs]
    for d in devices:
        await d.start()
    return devices
