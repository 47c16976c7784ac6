"""CIAJ 1.4: time sync, clock skew, NTP mode 6/7, logging and remote logs; their parsers and the auth file.

End-to-end on loopback with the real engine and probes against the emulator;
the namespace lab (test_lab) proves the same checks against real chrony and
the lab's rsyslog.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import struct
from pathlib import Path

import pytest

import profiles
from lab.emulator import cli as emulated_cli
from lab.emulator.devices import Device
from probes import clock
from probes.login import auth
from probes.login.cli_read import extract
from probes.ntp import build_monlist, build_readvar, parse_monlist, parse_readvar
from probes.observations import Mode
from profiles.errors import MalformedResponse, ProfileError, UsageError
from scanner.findings import Severity, Status
from scanner.orchestrator import Engine, HostResult
from scanner.syslog_listen import SyslogListener, parse_listen
from tests.conftest import StartDevice, by_id, config_for, with_settings

# Parsers -----------------------------------------------------------------------


def test_http_and_sip_date_parse_exactly_one_instant() -> None:
    assert clock.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0  # RFC 9110's example
    assert clock.parse_http_date("Sun, 22 Nov 2026 03:48:04 GMT") == 1795319284.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Sun, 06 Nov 1994 08:49:37",  # truncated: no zone
        "Sun, 06 Nov 1994 08:49",  # truncated
        "Sun, 06 Nov 1994 08:49:37 JST",  # SIP-date and IMF-fixdate are GMT only
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850 form: refused, not guessed
        "Sun Nov  6 08:49:37 1994",  # asctime
        "Mon, 06 Nov 1994 08:49:37 GMT",  # wrong weekday
        "Sun, 31 Feb 1994 08:49:37 GMT",  # no such day
        "Sun, 06 Nov 1994 25:49:37 GMT",  # no such hour
        "Sun, 06 Xyz 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT" + " " * 80,  # oversized
        "Sun, 06 Nov 1994 08:49:37 GMT\r\nX: y",
    ],
)
def test_date_parser_rejects_malformed_and_truncated(text: str) -> None:
    with pytest.raises(MalformedResponse):
        clock.parse_http_date(text)


def test_snmp_date_and_time() -> None:
    utc = struct.pack(">HBBBBBB", 2026, 11, 22, 3, 48, 4, 5)
    assert clock.parse_date_and_time(utc) == 1795319284.5
    jst = struct.pack(">HBBBBBB", 2026, 11, 22, 12, 48, 4, 0) + b"+\x09\x00"
    assert clock.parse_date_and_time(jst) == 1795319284.0  # 12:48 at UTC+9 is 03:48 UTC
    for bad in (utc[:7], utc + b"+\x09", utc[:2] + bytes([13]) + utc[3:], utc + b"*\x00\x00", utc[:7] + b"\x0a"):
        with pytest.raises(MalformedResponse):
            clock.parse_date_and_time(bad)


def test_clock_reading_takes_the_midpoint_and_its_error() -> None:
    r = clock.reading(None, "http-date", device_time=1000.0, sent_at=1000.0, received_at=1001.0, resolution=1.0)
    assert (r.offset_s, r.uncertainty_s) == (0.0, 1.0)


def test_ntp_control_parsers() -> None:
    text = b'version="ntpd 4.2.6p5@1.2349-o", processor="mips", system="Linux/2.6", leap=3, stratum=16'
    reply = struct.pack("!BBHHHHH", (2 << 3) | 6, 0x82, 77, 0, 0, 0, len(text)) + text
    assert dict(parse_readvar(reply, 77))["version"] == "ntpd 4.2.6p5@1.2349-o"
    assert len(build_readvar(77)) == 12 and len(build_monlist()) == 48
    for bad, seq in (
        (reply[:11], 77),  # truncated header
        (reply[:-3], 77),  # shorter than its count
        (reply, 78),  # another request's answer
        (reply[:1] + b"\xc2" + reply[2:], 77),  # error bit
        (build_readvar(77), 77),  # a request, not a response
    ):
        with pytest.raises(MalformedResponse):
            parse_readvar(bad, seq)
    monlist = bytes([0x97, 0, 3, 42]) + struct.pack("!HH", 2, 72) + b"\0" * 144
    assert parse_monlist(monlist) == 2
    for bad in (monlist[:7], monlist[:100], bytes([0x17]) + monlist[1:], monlist[:4] + b"\x40\x00" + monlist[6:]):
        with pytest.raises(MalformedResponse):
            parse_monlist(bad)


# Checks, end to end on loopback ------------------------------------------------------


async def _scan(device: Device, *, auth_file: Path | None = None, listener: SyslogListener | None = None) -> HostResult:
    config = config_for(device, Mode.DEFAULT)
    pc = with_settings(config.probe_config, auth_file=str(auth_file) if auth_file else None, login_pace_s=0.0)
    engine = Engine(
        dataclasses.replace(config, probe_config=pc),
        profiles.load_all(),
        observe=listener.observations if listener else None,
    )
    return await asyncio.wait_for(engine.scan_host(device.spec.address), 60)


def _status(result: HostResult, check_id: str) -> list[tuple[str, str | None]]:
    return [(str(f.status), f.service) for f in by_id(result, check_id)]


async def test_unsynced_skewed_router_with_monlist_is_flagged(emulated: StartDevice) -> None:
    dev = await emulated(services=["ssh", "ntp"], ntp_stratum=16, clock_skew_s=-5400, ntp_control=[6, 7])
    result = await _scan(dev)
    ntp = f"udp/{dev.bound['ntp']}"
    assert _status(result, "CIAJ-1.4-NTP-NOT-SYNCED") == [("fail", ntp)]
    skew = by_id(result, "CIAJ-1.4-CLOCK-SKEW")
    assert [f.status for f in skew] == [Status.FAIL] and "-5400" in skew[0].evidence["reason"]
    control = by_id(result, "CIAJ-1.4-NTP-CONTROL-EXPOSED")
    assert [(f.status, f.severity) for f in control] == [(Status.FAIL, Severity.HIGH)]
    assert control[0].evidence["variables"]["version"].startswith("ntpd 4.2.6p5")


async def test_synced_router_with_a_true_clock_passes(emulated: StartDevice) -> None:
    dev = await emulated(services=["ssh", "http", "ntp"], ntp_stratum=3)
    result = await _scan(dev)
    assert [s for s, _ in _status(result, "CIAJ-1.4-NTP-NOT-SYNCED")] == ["pass"]
    assert [s for s, _ in _status(result, "CIAJ-1.4-NTP-CONTROL-EXPOSED")] == ["pass"]
    skew = by_id(result, "CIAJ-1.4-CLOCK-SKEW")
    assert [f.status for f in skew] == [Status.PASS]
    assert {r["source"] for r in skew[0].evidence["readings"]} == {"ntp", "http-date"}


async def test_skew_seen_in_http_date_and_hr_system_date(emulated: StartDevice) -> None:
    dev = await emulated(services=["http", "snmp"], persona="mfp", communities=["public"], clock_skew_s=32400)
    result = await _scan(dev)
    skew = by_id(result, "CIAJ-1.4-CLOCK-SKEW")
    assert [f.status for f in skew] == [Status.FAIL]
    offsets = {r["source"]: r["offset_s"] for r in skew[0].evidence["readings"]}
    assert set(offsets) == {"http-date", "snmp-hrSystemDate"}
    assert all(abs(v - 32400) < 3 for v in offsets.values())


async def test_no_time_source_seen_is_inconclusive_not_a_pass(emulated: StartDevice) -> None:
    dev = await emulated(services=["ssh"])  # no NTP, no Date header, no credentials to read its config
    result = await _scan(dev)
    assert [s for s, _ in _status(result, "CIAJ-1.4-NTP-NOT-SYNCED")] == ["inconclusive"]
    assert [s for s, _ in _status(result, "CIAJ-1.4-CLOCK-SKEW")] == ["inconclusive"]
    assert [s for s, _ in _status(result, "CIAJ-1.4-LOGGING-DISABLED")] == ["inconclusive"]
    assert [s for s, _ in _status(result, "CIAJ-1.4-NO-REMOTE-LOG")] == ["inconclusive"]
    assert by_id(result, "CIAJ-1.4-NTP-CONTROL-EXPOSED") == []  # no NTP service: nothing to judge


def _auth_file(tmp_path: Path, address: str, password: str) -> Path:
    path = tmp_path / f"auth-{address}.toml"
    path.write_text(f'[[device]]\nhost = "{address}"\nusername = "admin"\npassword = "{password}"\n')
    path.chmod(0o600)
    return path


async def test_authenticated_read_flags_logging_off_and_passes_remote_logging(
    emulated: StartDevice, tmp_path: Path
) -> None:
    off = await emulated(
        services=["ssh"], cli="yamaha", users={"admin": "Lab-Own-1"}, logging={"enabled": False, "remote": []}
    )
    on = await emulated(
        services=["ssh", "ntp"],
        cli="cisco",
        users={"admin": "Lab-Own-2"},
        logging={"enabled": True, "remote": ["127.0.0.1:9"]},  # the discard port on loopback: nothing leaves lo
        ntp_servers=["127.0.0.1"],
        ntp_stratum=3,
    )
    r_off = await _scan(off, auth_file=_auth_file(tmp_path, off.spec.address, "Lab-Own-1"))
    assert [s for s, _ in _status(r_off, "CIAJ-1.4-LOGGING-DISABLED")] == ["fail"]
    assert [s for s, _ in _status(r_off, "CIAJ-1.4-NO-REMOTE-LOG")] == ["fail"]
    assert [s for s, _ in _status(r_off, "CIAJ-1.4-NTP-NOT-SYNCED")] == ["fail"]  # no ntpdate in its config
    r_on = await _scan(on, auth_file=_auth_file(tmp_path, on.spec.address, "Lab-Own-2"))
    assert [s for s, _ in _status(r_on, "CIAJ-1.4-LOGGING-DISABLED")] == ["pass"]
    remote = by_id(r_on, "CIAJ-1.4-NO-REMOTE-LOG")
    assert [f.status for f in remote] == [Status.PASS] and remote[0].evidence["log_hosts"] == ["127.0.0.1"]
    for dev in (off, on):
        assert dev.config_attempts == []  # read-only commands only
        sent = [data.decode() for name, data in dev.received if name == "ssh-cmd"]
        assert sent and all(profiles.is_read_only(c) for c in sent)


async def test_a_refused_auth_file_login_is_inconclusive_and_tried_once(emulated: StartDevice, tmp_path: Path) -> None:
    dev = await emulated(services=["ssh"], cli="cisco", users={"admin": "Right-1"}, lockout_after=3)
    result = await _scan(dev, auth_file=_auth_file(tmp_path, dev.spec.address, "Wrong-1"))
    failures = [f for f in by_id(result, "EA-PROBE-INCONCLUSIVE") if "cli-read" in str(f.evidence)]
    assert failures and "refused" in str(failures[0].evidence)
    assert [s for s, _ in _status(result, "CIAJ-1.4-LOGGING-DISABLED")] == ["inconclusive"]
    assert dev.locked == set()  # the shared cap counted it with the credential probes' attempts


async def test_syslog_listener_credits_a_device_whose_logs_arrive(emulated: StartDevice) -> None:
    listener = SyslogListener("127.0.0.1", 0)
    await listener.start()
    assert listener._udp is not None
    port = listener._udp.get_extra_info("sockname")[1]
    listener.port = port
    try:
        dev = await emulated(
            services=["ssh"],
            cli="cisco",
            users={"admin": "Lab-Own-3"},
            logging={"enabled": True, "remote": [f"127.0.0.1:{port}"]},
        )
        quiet = await emulated(services=["ssh"], cli="cisco", users={"admin": "Lab-Own-4"}, logging={"enabled": False})
        result = await _scan(dev, listener=listener)  # the sweep's own login attempts are logged events
        remote = by_id(result, "CIAJ-1.4-NO-REMOTE-LOG")
        assert [f.status for f in remote] == [Status.PASS]
        assert remote[0].evidence["messages_received"] >= 1 and dev.spec.name in remote[0].evidence["sample"]
        silent = await _scan(quiet, listener=listener)
        assert [s for s, _ in _status(silent, "CIAJ-1.4-NO-REMOTE-LOG")] == ["inconclusive"]
    finally:
        await listener.stop()


# Profiles' read-only commands, and the auth file ----------------------------------


def extract_facts(outputs: list[tuple[object, str]]) -> dict[str, object]:
    """The facts half of probes.login.cli_read.extract."""
    return extract(outputs)[0]  # type: ignore[arg-type]


def _router_outputs(cli: str, logging: dict[str, object], ntp: list[str], stratum: int) -> list[tuple[object, str]]:
    from lab.emulator.spec import DeviceSpec

    spec = DeviceSpec.from_dict(
        {
            "name": "r1", "address": "127.0.0.1", "persona": "router", "model": "EL-C20", "firmware": "3.2.1",
            "services": ["ssh"], "cli": cli, "logging": logging, "ntp_servers": ntp, "ntp_stratum": stratum,
        }
    )  # fmt: skip
    answer = emulated_cli.FAMILIES[cli][0]
    invalid = emulated_cli.FAMILIES[cli][2]

    class _D:
        pass

    d = _D()
    d.spec = spec  # type: ignore[attr-defined]
    profile = next(p for p in profiles.load_all() if p.id == "edgelab-router")
    return [(c, answer(d, c.command) or invalid) for c in profile.read_only_commands]  # type: ignore[arg-type]


def test_fact_rules_read_both_lab_dialects() -> None:
    cisco = extract_facts(
        _router_outputs("cisco", {"enabled": True, "remote": ["198.18.0.30", "198.18.1.254:5514"]}, ["198.19.0.100"], 3)
    )  # type: ignore[arg-type]
    assert cisco == {
        "logging_enabled": True,
        "ntp_synced": True,
        "version": "3.2.1",
        "log_hosts": ("198.18.0.30", "198.18.1.254"),
        "ntp_servers": ("198.19.0.100",),
        "dns_servers": (),
    }
    yamaha = extract_facts(_router_outputs("yamaha", {"enabled": False, "remote": []}, [], 16))  # type: ignore[arg-type]
    assert yamaha == {
        "logging_enabled": False,
        "log_hosts": (),
        "ntp_servers": (),
        "dns_servers": (),
        "version": "3.2.1",
    }


def test_openwrt_rules_read_uci_output() -> None:
    """The OpenWrt profile's rules, on output in the documented `uci show system` form."""
    profile = next(p for p in profiles.load_all() if p.id == "openwrt")
    release = "DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='23.05.3'\nDISTRIB_REVISION='r23809-234f1a2efa'\n"
    uci = (
        "system.@system[0]=system\nsystem.@system[0].hostname='gw'\nsystem.@system[0].log_ip='192.0.2.30'\n"
        "system.ntp=timeserver\nsystem.ntp.enabled='1'\n"
        "system.ntp.server='0.openwrt.pool.ntp.org' '1.openwrt.pool.ntp.org'\n"
    )
    network = (
        "network.wan=interface\nnetwork.wan.proto='dhcp'\nnetwork.wan.peerdns='0'\n"
        "network.wan.dns='192.0.2.53' '192.0.2.54'\n"
    )
    wireless = "wireless.radio0=wifi-device\n"
    outputs = dict(
        zip(
            ("cat /etc/openwrt_release", "uci show system", "uci show network", "uci show wireless"),
            (release, uci, network, wireless),
            strict=True,
        )
    )
    got = extract_facts([(c, outputs[c.command]) for c in profile.read_only_commands])
    assert got == {
        "version": "23.05.3",
        "logging_enabled": True,
        "log_hosts": ("192.0.2.30",),
        "ntp_servers": ("0.openwrt.pool.ntp.org", "1.openwrt.pool.ntp.org"),  # uci lists: every item
        "dns_servers": ("192.0.2.53", "192.0.2.54"),
    }
    no_remote = extract_facts(
        [(c, outputs[c.command].replace("log_ip", "log_port")) for c in profile.read_only_commands]
    )
    assert (
        no_remote["log_hosts"] == ()
        and extract_facts([(c, "-ash: uci: not found") for c in profile.read_only_commands]) == {}
    )
    assert extract([(c, "-ash: uci: not found") for c in profile.read_only_commands])[1] == []  # nothing counted


def test_cisco_ios_rules_read_documented_output() -> None:
    profile = next(p for p in profiles.load_all() if p.id == "cisco-ios")
    outputs = {
        "show logging": "Syslog logging: enabled (0 messages dropped, 3 messages rate-limited, 0 flushes)\n"
        "    Trap logging: level informational, 75 message lines logged\n"
        "        Logging to 192.0.2.30  (udp port 514, audit disabled,\n",
        "show ntp status": "Clock is unsynchronized, stratum 16, no reference clock\n",
        "show running-config": "version 15.2\nhostname gw\nlogging host 192.0.2.31\nntp server 192.0.2.123\nend\n",
        "show version": "Cisco IOS Software, C2900 Software (C2900-UNIVERSALK9-M), Version 15.2(4)M7, RELEASE\n",
    }
    got, answered = extract([(c, outputs[c.command]) for c in profile.read_only_commands])  # type: ignore[arg-type]
    assert answered == ["show logging", "show ntp status", "show running-config", "show version"]
    assert got == {
        "logging_enabled": True,
        "ntp_synced": False,
        "version": "15.2(4)M7",
        "log_hosts": ("192.0.2.30", "192.0.2.31"),
        "ntp_servers": ("192.0.2.123",),
    }


@pytest.mark.parametrize(
    "command",
    ["configure terminal", "show run; reload", "show run | redirect flash:x", "cat /etc/x > /tmp/y", "reboot",
     "show `id`", "/system reset-configuration", "write memory", "show run\nreload"],
)  # fmt: skip
def test_only_read_only_commands_are_accepted(command: str, tmp_path: Path) -> None:
    assert not profiles.is_read_only(command)
    doc = {
        "id": "x-router", "class": "router", "vendor": "X", "sources": {"s": {"title": "t"}},
        "fingerprints": [{"field": "ssh.banner", "regex": "X"}],
        "read_only_commands": [{"protocol": "ssh", "command": command, "purpose": "config"}],
    }  # fmt: skip
    with pytest.raises(ProfileError, match="read-only"):
        profiles.parse_profile(doc, "x-router.yaml")


def test_auth_file_precedence_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text(
        '[[device]]\nprofile = "cisco-ios"\nusername = "p"\npassword = "1"\n'
        '[[device]]\nrange = "192.0.2.0/24"\nusername = "r24"\npassword = "2"\n'
        '[[device]]\nrange = "192.0.2.0/28"\nusername = "r28"\npassword = "3"\n'
        '[[device]]\nhost = "192.0.2.5"\nusername = "h"\npassword = "4"\n'
    )
    path.chmod(0o600)
    entries = auth.load(str(path))
    assert auth.lookup(entries, "192.0.2.5", "cisco-ios").username == "h"  # type: ignore[union-attr]
    assert auth.lookup(entries, "192.0.2.6", "cisco-ios").username == "r28"  # type: ignore[union-attr]
    assert auth.lookup(entries, "192.0.2.99", None).username == "r24"  # type: ignore[union-attr]
    assert auth.lookup(entries, "198.51.100.1", "cisco-ios").username == "p"  # type: ignore[union-attr]
    assert auth.lookup(entries, "198.51.100.1", "yamaha-rtx") is None
    for n, bad in enumerate(
        [
            '[[device]]\nusername = "u"\npassword = "p"\n',  # no scope
            '[[device]]\nhost = "a"\nusername = "u"\npassword = "p"\n',  # bad address
            '[[device]]\nhost = "192.0.2.1"\nprofile = "x"\nusername = "u"\npassword = "p"\n',  # two scopes
            '[[device]]\nhost = "192.0.2.1"\nusername = "u"\n',  # no secret
            '[[device]]\nhost = "192.0.2.1"\nusername = "u"\npassword = "p"\ncommand = "reload"\n',  # unknown key
            "[device\n",  # not TOML
        ]
    ):
        p = tmp_path / f"bad{n}.toml"
        p.write_text(bad)
        with pytest.raises(UsageError):
            auth.load(str(p))


def test_syslog_listen_argument() -> None:
    assert parse_listen("5514") == ("0.0.0.0", 5514)
    assert parse_listen("198.18.1.254:5514") == ("198.18.1.254", 5514)
    assert parse_listen("[::1]:514") == ("::1", 514)
    for bad in ("x", "host:514", "127.0.0.1:0", "127.0.0.1:70000"):
        with pytest.raises(UsageError):
            parse_listen(bad)


def test_world_readable_auth_file_is_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "open.toml"
    path.write_text('[[device]]\nhost = "192.0.2.1"\nusername = "u"\npassword = "p"\n')
    os.chmod(path, 0o644)
    auth.load(str(path))
    assert "readable by others" in capsys.readouterr().err


# PJL INFO ID (version/model from the raw print port) -----------------------------------


def test_pjl_info_id_parser() -> None:
    from probes.pjl import parse_info_id

    assert parse_info_id(b'@PJL INFO ID\r\n"HP LaserJet 4250"\r\n\x0c') == "HP LaserJet 4250"
    for bad in (b"", b"@PJL INFO ID\r\n\x0c", b'"no echo"\r\n\x0c', b"@PJL INFO ID\r\n" + b"x" * 5000):
        with pytest.raises(MalformedResponse):
            parse_info_id(bad)


@pytest.mark.parametrize("mode", [Mode.SAFE, Mode.DEFAULT, Mode.INTRUSIVE])
async def test_the_print_port_gets_one_read_only_inquiry_and_only_when_intrusive(
    emulated: StartDevice, mode: Mode
) -> None:
    from tests.conftest import scan_device

    mfp = await emulated(services=["http", "pjl"], persona="mfp", model="EL-M300")
    result = await scan_device(mfp, mode)
    sent = [data for name, data in mfp.received if name == "pjl"]
    assert mfp.job_bytes == 0 and mfp.pjl_writes == []  # nothing printed, nothing set
    identified = by_id(result, "EA-DEVICE-IDENTIFIED")[0].evidence
    if mode is Mode.INTRUSIVE:
        assert sent == [b"@PJL", b"@PJL INFO ID"]
        assert "pjl.id: EdgeLab EL-M300" in identified["matched"]
    else:
        assert sent == []  # not a byte of PJL without --intrusive
        assert not any(m.startswith("pjl.id") for m in identified["matched"])
