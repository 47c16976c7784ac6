"""The emulated devices behave as their YAML says: the lab's weak/hardened personas are only as good as this."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import socket
import struct
from pathlib import Path

import asyncssh
import httpx
import pytest

from lab.emulator import printer
from lab.emulator.devices import Device
from probes.observations import Mode
from tests.conftest import StartDevice, scan_device


async def _udp(dev: Device, service: str, payload: bytes, wait: float = 0.6) -> list[bytes]:
    """Send one datagram and collect every reply that arrives within ``wait`` seconds."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((dev.spec.address, 0))
    replies: list[bytes] = []
    try:
        await loop.sock_sendto(sock, payload, (dev.spec.address, dev.bound[service]))
        end = loop.time() + wait
        while (left := end - loop.time()) > 0:
            try:
                async with asyncio.timeout(left):
                    replies.append(await loop.sock_recv(sock, 4096))
            except TimeoutError:
                break
    finally:
        sock.close()
    return replies


def _sip(method: str, uri: str, call_id: str, *, cseq: int = 1, user: str = "guest", extra: str = "") -> bytes:
    branch = "z9hG4bK" + secrets.token_hex(6)
    return (
        f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch={branch}\r\n"
        f"From: <sip:{user}@lab>;tag=t1\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
        f"Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def _codes(replies: list[bytes]) -> list[int]:
    return [int(r.split(b" ", 2)[1]) for r in replies]


PBX_WEAK = {
    "persona": "pbx",
    "services": ["sip"],
    "extensions": {"100": "100"},
    "guest_calls": True,
    "guest_routes": ["010"],
    "auth_reject_uniform": False,
}
PBX_HARD = {"persona": "pbx", "services": ["sip"], "extensions": {"100": "Strong-Pass-1"}}


async def test_weak_pbx_routes_guest_call_abroad_and_cancel_stops_it(emulated: StartDevice) -> None:
    dev = await emulated(**PBX_WEAK)
    uri = f"sip:01012345@{dev.spec.address}"
    assert _codes(await _udp(dev, "sip", _sip("INVITE", uri, "c1"), wait=0.3)) == [100, 180, 183]
    replies = await _udp(dev, "sip", _sip("CANCEL", uri, "c1"))
    assert _codes(replies) == [487, 200]  # as the real Asterisk: the INVITE's 487 first, then the CANCEL's 200
    await asyncio.sleep(0.2)
    call = dev.sip.calls["c1"]
    assert call.cancelled and not call.answered


async def test_weak_pbx_answers_an_uncancelled_guest_call(emulated: StartDevice) -> None:
    dev = await emulated(**{**PBX_WEAK, "answer_after_s": 1.5})
    replies = await _udp(dev, "sip", _sip("INVITE", f"sip:01099@{dev.spec.address}", "c2"), 1.5 + 0.5)
    assert _codes(replies) == [100, 180, 183, 200]
    assert dev.sip.calls["c2"].answered  # what a scanner must end at once with ACK + BYE


async def test_hardened_pbx_rejects_guests_uniformly(emulated: StartDevice) -> None:
    dev = await emulated(**PBX_HARD)
    uri = f"sip:01012345@{dev.spec.address}"
    assert _codes(await _udp(dev, "sip", _sip("INVITE", uri, "c3"))) == [401]
    unknown = await _udp(dev, "sip", _sip("REGISTER", f"sip:999@{dev.spec.address}", "r1", user="999"))
    known = await _udp(dev, "sip", _sip("REGISTER", f"sip:100@{dev.spec.address}", "r2", user="100"))
    assert _codes(unknown) == _codes(known) == [401]  # no extension enumeration


async def test_weak_pbx_leaks_which_extensions_exist(emulated: StartDevice) -> None:
    dev = await emulated(**PBX_WEAK)
    unknown = await _udp(dev, "sip", _sip("REGISTER", f"sip:999@{dev.spec.address}", "r3", user="999"))
    known = await _udp(dev, "sip", _sip("REGISTER", f"sip:100@{dev.spec.address}", "r4", user="100"))
    assert _codes(unknown) == [404] and _codes(known) == [401]


async def test_digest_register_succeeds_only_with_the_right_password(emulated: StartDevice) -> None:
    dev = await emulated(**PBX_HARD)
    uri = f"sip:100@{dev.spec.address}"

    async def register(password: str, call_id: str) -> int:
        challenge = (await _udp(dev, "sip", _sip("REGISTER", uri, call_id, user="100")))[0].decode()
        nonce = re.search(r'nonce="([^"]+)"', challenge)
        assert nonce is not None
        md5 = lambda s: hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()  # noqa: E731
        response = md5(f"{md5(f'100:asterisk:{password}')}:{nonce.group(1)}:{md5(f'REGISTER:{uri}')}")
        auth = f'Authorization: Digest username="100", realm="asterisk", nonce="{nonce.group(1)}", uri="{uri}", '
        auth += f'response="{response}"\r\n'
        msg = _sip("REGISTER", uri, call_id, cseq=2, user="100", extra=auth)
        return _codes(await _udp(dev, "sip", msg))[0]

    assert await register("wrong", "r5") == 403  # chan_sip: a checked wrong secret is refused, not re-challenged
    assert await register("Strong-Pass-1", "r6") == 200
    assert [e for e, _ in dev.sip.events] == ["ChallengeSent", "InvalidPassword", "ChallengeSent", "SuccessfulAuth"]


async def test_a_dead_trunk_gives_the_guest_503_when_dial_times_out(emulated: StartDevice) -> None:
    dev = await emulated(**PBX_WEAK)
    replies = await _udp(dev, "sip", _sip("INVITE", f"sip:01099@{dev.spec.address}", "c9"), 4.0 + 0.6)
    assert _codes(replies) == [100, 180, 183, 503]  # the recorded Asterisk: Dial(..., 4), then Hangup(34)
    assert b"application/sdp" in replies[2] and dev.sip.calls["c9"].rejected == 503
    assert not dev.sip._answer_timers


async def test_ssh_cli_locks_after_n_failures_and_answers_show_commands(emulated: StartDevice) -> None:
    dev = await emulated(
        services=["ssh"],
        cli="cisco",
        users={"admin": "Right-1"},
        lockout_after=3,
        logging={"enabled": True, "remote": ["198.18.0.30"]},
        ntp_servers=["198.19.0.100"],
    )
    port = dev.bound["ssh"]
    opts = {"known_hosts": None, "connect_timeout": 5}
    async with asyncssh.connect(dev.spec.address, port, username="admin", password="Right-1", **opts) as conn:
        out = (await conn.run("show logging", timeout=5)).stdout
        assert "Logging to 198.18.0.30" in str(out)
        assert "Clock is synchronized" in str((await conn.run("show ntp status", timeout=5)).stdout)
        assert "rejected" in str((await conn.run("configure terminal", timeout=5)).stdout)
    assert dev.config_attempts == ["configure terminal"]
    for _ in range(3):
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh.connect(dev.spec.address, port, username="admin", password="bad", **opts)
    assert dev.locked == {"admin"}
    with pytest.raises(asyncssh.PermissionDenied):  # locked: even the right password fails now
        await asyncssh.connect(dev.spec.address, port, username="admin", password="Right-1", **opts)


async def test_http_basic_and_form_logins_follow_the_users(emulated: StartDevice) -> None:
    basic = await emulated(services=["http"], http_mode="basic", users={"admin": "admin"})
    form = await emulated(services=["http"], http_mode="form", persona="mfp", users={"admin": "pw"})
    async with httpx.AsyncClient(timeout=5) as client:
        url = f"http://{basic.spec.address}:{basic.bound['http']}/"
        assert (await client.get(url)).status_code == 401
        assert (await client.get(url, auth=("admin", "nope"))).status_code == 401
        assert (await client.get(url, auth=("admin", "admin"))).status_code == 200
        login = f"http://{form.spec.address}:{form.bound['http']}/login"
        bad = await client.post(login, data={"user": "admin", "pass": "x"})
        assert bad.status_code == 200 and "Login failed" in bad.text
        good = await client.post(login, data={"user": "admin", "pass": "pw"})
        assert good.status_code == 302 and good.headers["location"] == "/admin"


async def test_ftp_anonymous_only_when_configured(emulated: StartDevice) -> None:
    async def login(dev: Device, user: str, password: str) -> bytes:
        reader, writer = await asyncio.open_connection(dev.spec.address, dev.bound["ftp"])
        await reader.readline()
        writer.write(f"USER {user}\r\n".encode())
        await reader.readline()
        writer.write(f"PASS {password}\r\n".encode())
        line = await reader.readline()
        writer.close()
        return line[:3]

    open_ = await emulated(services=["ftp"], persona="mfp", ftp_anonymous=True)
    closed = await emulated(services=["ftp"], persona="mfp")
    assert await login(open_, "anonymous", "a@b") == b"230"
    assert await login(closed, "anonymous", "a@b") == b"530"


async def test_refusals_wait_the_configured_delay_and_successes_do_not(emulated: StartDevice) -> None:
    """refusal_delay_s, as pam_faildelay: FTP 530, Telnet 'Login incorrect' and an SSH failure come late."""
    delay = 0.8
    dev = await emulated(services=["ftp", "telnet", "ssh"], users={"admin": "admin"}, refusal_delay_s=delay)
    loop = asyncio.get_running_loop()

    async def ftp(password: str) -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection(dev.spec.address, dev.bound["ftp"])
        await reader.readline()
        writer.write(b"USER admin\r\n")
        await reader.readline()
        started = loop.time()
        writer.write(f"PASS {password}\r\n".encode())
        line = await reader.readline()
        writer.close()
        return line[:3], loop.time() - started

    async def telnet(password: str) -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection(dev.spec.address, dev.bound["telnet"])
        await reader.readuntil(b"Login: ")
        writer.write(b"admin\r\n")
        await reader.readuntil(b"Password: ")
        started = loop.time()
        writer.write(password.encode() + b"\r\n")
        text = await reader.readuntil(b"Login: ") if password != "admin" else await reader.readuntil(b"> ")
        writer.close()
        return (b"incorrect" if b"incorrect" in text else b"shell"), loop.time() - started

    async def ssh(password: str) -> tuple[bool, float]:
        started = loop.time()
        try:
            conn = await asyncssh.connect(
                dev.spec.address, dev.bound["ssh"], username="admin", password=password,
                known_hosts=None, agent_path=None, client_keys=None, preferred_auth="password",
            )  # fmt: skip
        except asyncssh.PermissionDenied:
            return False, loop.time() - started
        conn.close()
        return True, loop.time() - started

    (code, late), (ok_code, soon) = await ftp("wrong"), await ftp("admin")
    assert (code, ok_code) == (b"530", b"230") and late >= delay > soon
    (said, late), (ok_said, soon) = await telnet("wrong"), await telnet("admin")
    assert (said, ok_said) == (b"incorrect", b"shell") and late >= delay > soon
    (ok, late), (good, soon) = await ssh("wrong"), await ssh("admin")
    assert (ok, good) == (False, True) and late >= delay
    assert late - soon >= delay * 0.8  # the key exchange costs both alike; the refusal adds the delay


async def test_telnet_login_state_machine(emulated: StartDevice) -> None:
    dev = await emulated(services=["telnet"], users={"admin": "admin"})
    reader, writer = await asyncio.open_connection(dev.spec.address, dev.bound["telnet"])
    assert b"Login:" in await reader.readuntil(b"Login: ")
    writer.write(b"admin\r\n")
    await reader.readuntil(b"Password: ")
    writer.write(b"admin\r\n")
    assert (await reader.readuntil(b"> ")).strip().endswith(b">")
    writer.close()
    assert ("telnet", "admin") in dev.login_attempts


async def test_pjl_answers_inquiries_and_records_anything_else(emulated: StartDevice) -> None:
    dev = await emulated(services=["pjl"], persona="mfp", model="EL-M300", firmware="5.10")
    reader, writer = await asyncio.open_connection(dev.spec.address, dev.bound["pjl"])
    writer.write(printer.UEL + b"@PJL INFO ID\r\n")
    assert b'"EdgeLab EL-M300"' in await reader.readuntil(b"\x0c")
    writer.write(b"@PJL INFO CONFIG\r\n")
    assert b"FIRMWARE=5.10" in await reader.readuntil(b"\x0c")
    writer.write(b"@PJL SET COPIES=99\r\nHello printer\r\n")
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.2)
    assert dev.pjl_writes == ["@PJL SET COPIES=99"] and dev.job_bytes > 0


async def test_ipp_get_printer_attributes(emulated: StartDevice) -> None:
    dev = await emulated(services=["ipp"], persona="mfp", firmware="5.40")
    request = struct.pack(">BBHI", 2, 0, printer.IPP_GET_PRINTER_ATTRIBUTES, 7) + bytes([printer.TAG_END])
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.post(
            f"http://{dev.spec.address}:{dev.bound['ipp']}/ipp/print",
            content=request,
            headers={"Content-Type": "application/ipp"},
        )
    assert r.status_code == 200 and r.content[2:4] == b"\x00\x00" and r.content[4:8] == struct.pack(">I", 7)
    assert b"printer-firmware-string-version\x00\x045.40" in r.content


@pytest.mark.parametrize("mode", [Mode.SAFE, Mode.DEFAULT])
async def test_a_sweep_changes_nothing_prints_nothing_and_locks_nobody(emulated: StartDevice, mode: Mode) -> None:
    """Field safety, proven on the devices that record it: no config command, no SNMP SET, no print data."""
    mfp = await emulated(
        services=["http", "ftp", "snmp", "pjl", "ipp"], persona="mfp", communities=["public", "private"]
    )
    router = await emulated(services=["ssh", "telnet"], cli="yamaha", users={"admin": "Lab-1"}, lockout_after=3)
    await scan_device(mfp, mode)
    await scan_device(router, mode)
    for dev in (mfp, router):
        assert dev.config_attempts == [] and dev.snmp_sets == []
        assert dev.job_bytes == 0 and dev.pjl_writes == []
        assert dev.locked == set()


def test_sighup_reload_changes_settings_but_never_listeners(tmp_path: Path) -> None:
    """`edgeaudit lab tamper` relies on it: new settings in place, address and services kept."""
    import yaml

    from lab.emulator.__main__ import reload
    from lab.emulator.devices import Device
    from lab.emulator.spec import DeviceSpec

    entry = {"name": "r", "address": "127.0.0.1", "persona": "router", "model": "EL-Y10", "firmware": "2.7.5"}
    entry |= {"services": ["ssh"], "cli": "yamaha", "dns_servers": ["198.19.0.53"]}
    device = Device(DeviceSpec.from_dict(entry))
    config = tmp_path / "emulator.yaml"
    config.write_text(yaml.safe_dump({"devices": [{**entry, "dns_servers": ["198.19.0.66"]}]}))
    assert reload(config, [device]) == ["r"]
    assert device.spec.dns_servers == ["198.19.0.66"]
    config.write_text(yaml.safe_dump({"devices": [{**entry, "services": ["ssh", "telnet"]}]}))
    assert reload(config, [device]) == []  # a new listener needs a restart: the spec stays
    assert device.spec.dns_servers == ["198.19.0.66"] and "telnet" not in device.spec.services
