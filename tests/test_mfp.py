"""MFPs (CIAJ part 4): raw print port, IPP without authentication, file shares, EWS over HTTP only.

Proven against the MFP emulator in its weak and hardened forms with the real
engine and probes; the IPP parser on crafted and malformed messages.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct

import pytest

from lab.emulator import printer
from probes import ipp
from probes.observations import LoginResult, Mode, PortState, Service
from profiles import Match, load_all
from profiles.errors import MalformedResponse
from scanner.checks import HostView
from scanner.checks.mfp import EWS_HTTP, FILE_SHARE, IPP_NO_AUTH, RAW_PRINT, file_share
from scanner.findings import Severity, Status
from scanner.orchestrator import Engine, HostResult
from tests.conftest import StartDevice, by_id, config_for

MFP_CHECKS = (RAW_PRINT, IPP_NO_AUTH, FILE_SHARE, EWS_HTTP)


async def _scan(device: object, mode: Mode = Mode.DEFAULT) -> HostResult:
    """The emulator's ports, plus unbound ones named smb and jetdirect (closed on its loopback address)."""
    config = config_for(device, mode)  # type: ignore[arg-type]
    pc = config.probe_config
    names = dict(pc.port_names)
    extra = [(2, "smb")] + ([(3, "jetdirect")] if "jetdirect" not in names.values() else [])
    pc = dataclasses.replace(pc, tcp_ports=(*pc.tcp_ports, *[p for p, _ in extra]), port_names=(*pc.port_names, *extra))
    engine = Engine(dataclasses.replace(config, probe_config=pc), load_all())
    return await engine.scan_host(device.spec.address)  # type: ignore[attr-defined]


def _statuses(result: HostResult) -> dict[str, list[str]]:
    return {cid: sorted(f.status.value for f in by_id(result, cid)) for cid in MFP_CHECKS}


async def test_the_weak_mfp_fails_every_exposure_and_the_hardened_one_passes(emulated: StartDevice) -> None:
    weak = await emulated(
        persona="mfp",
        model="EL-M300",
        firmware="5.10",
        services=["http", "ftp", "pjl", "ipp"],
        http_mode="form",
        users={"admin": "1234"},
        ftp_anonymous=True,
    )
    result = await _scan(weak)
    assert _statuses(result) == {RAW_PRINT: ["fail"], IPP_NO_AUTH: ["fail"], FILE_SHARE: ["fail"], EWS_HTTP: ["fail"]}
    assert by_id(result, RAW_PRINT)[0].service == f"tcp/{weak.bound['pjl']}"
    assert by_id(result, FILE_SHARE)[0].evidence["login"].startswith("anonymous")
    [queue] = by_id(result, IPP_NO_AUTH)[0].evidence["queues"]
    assert queue["uri_authentication"] == ["none"] and queue["path"] == "/ipp/print"
    assert by_id(result, IPP_NO_AUTH)[0].evidence["asked"] == ["Get-Printer-Attributes /ipp/print: successful-ok"]
    identified = by_id(result, "EA-DEVICE-IDENTIFIED")[0].evidence
    assert (identified["profile"], identified["model"], identified["firmware"]) == ("edgelab-mfp", "EL-M300", "5.10")
    assert weak.ipp_operations == [ipp.GET_PRINTER_ATTRIBUTES]  # nothing but the one read-only operation
    assert weak.job_bytes == 0 and weak.pjl_writes == []

    hardened = await emulated(
        persona="mfp",
        model="EL-M400",
        firmware="5.40",
        services=["http", "ipp"],
        http_mode="redirect",
        ipp_auth="basic",
        users={"admin": "Lab-Mfp-Admin-3e8f"},
    )
    result = await _scan(hardened)
    assert _statuses(result) == {RAW_PRINT: ["pass"], IPP_NO_AUTH: ["pass"], FILE_SHARE: ["pass"], EWS_HTTP: ["pass"]}
    assert by_id(result, IPP_NO_AUTH)[0].evidence["queues"][0]["uri_authentication"] == ["basic"]
    assert hardened.ipp_operations == [ipp.GET_PRINTER_ATTRIBUTES]


async def test_safe_mode_leaves_anonymous_ftp_unjudged(emulated: StartDevice) -> None:
    weak = await emulated(persona="mfp", services=["http", "ftp"], ftp_anonymous=True, http_mode="form")
    [found] = by_id(await _scan(weak, Mode.SAFE), FILE_SHARE)
    assert found.status is Status.INCONCLUSIVE and "outside --safe" in found.evidence["reason"]


def test_anonymous_ftp_refused_is_judged_on_that_answer_even_when_the_series_was_cut_short() -> None:
    ftp, smb = Service(21, "tcp", "ftp"), Service(445, "tcp", "smb")
    refused = LoginResult(
        ftp, protocol="ftp", tried=(("x9rq", "baseline"), ("anonymous", "anonymous")), complete=False, stopped="cap"
    )
    view = _mfp_view(refused, PortState(smb, state="closed"), open_services=frozenset({ftp}))
    [found] = file_share(view)
    assert found.status is Status.PASS and found.evidence["ftp_refuses_anonymous"] == ["tcp/21"]
    untried = LoginResult(ftp, protocol="ftp", tried=(("x9rq", "baseline"),), skipped=(("anonymous", "anonymous"),))
    [found] = file_share(_mfp_view(untried, PortState(smb, state="closed"), open_services=frozenset({ftp})))
    assert found.status is Status.INCONCLUSIVE and "attempt cap" in found.evidence["reason"]
    assert "--safe" not in found.evidence["reason"]  # a default sweep: the reason says what happened


def _mfp_view(*observations: object, open_services: frozenset[Service] = frozenset()) -> HostView:
    profile = next(p for p in load_all() if p.id == "edgelab-mfp")
    return HostView(
        address="192.0.2.20",
        mode=Mode.DEFAULT,
        observations=tuple(observations),  # type: ignore[arg-type]
        match=Match(profile, 5, None, None, ()),
        today=dt.date(2026, 11, 22),
        open_services=open_services,
    )


def test_smb_reachable_on_an_mfp_fails_at_medium() -> None:
    smb = Service(445, "tcp", "smb")
    [found] = file_share(_mfp_view(PortState(smb, state="open"), open_services=frozenset({smb})))
    assert (found.status, found.severity, found.service) == (Status.FAIL, Severity.MEDIUM, "tcp/445")
    [shut] = file_share(_mfp_view(PortState(smb, state="closed")))
    assert shut.status is Status.PASS
    [unprobed] = file_share(_mfp_view())
    assert unprobed.status is Status.INCONCLUSIVE and "445" in unprobed.evidence["reason"]


async def test_ipp_or_web_ports_that_never_answer_are_inconclusive(emulated: StartDevice) -> None:
    """A network error is never a pass: IPP open, Get-Printer-Attributes unanswered."""
    stuck = await emulated(persona="mfp", model="EL-M300", services=["http", "ipp"], hang=["ipp"])
    [found] = by_id(await _scan(stuck), IPP_NO_AUTH)
    assert found.status is Status.INCONCLUSIVE and found.service == f"tcp/{stuck.bound['ipp']}"
    silent_web = await emulated(
        persona="mfp", model="EL-M300", services=["http", "snmp"], communities=["public"], hang=["http"]
    )
    [found] = by_id(await _scan(silent_web), EWS_HTTP)
    assert found.status is Status.INCONCLUSIVE and "unanswered" in found.evidence["reason"]


def test_only_read_only_operations_are_ever_built() -> None:
    req = ipp.request("ipp://192.0.2.20:631/ipp/print", 9)
    assert struct.unpack(">BBHI", req[:8]) == (2, 0, ipp.GET_PRINTER_ATTRIBUTES, 9)
    for name in ipp.REQUESTED:
        assert name.encode() in req
    listing = ipp.request(None, 10, ipp.CUPS_GET_PRINTERS)
    assert struct.unpack(">BBHI", listing[:8]) == (2, 0, 0x4002, 10)
    assert b"\x45\x00\x0bprinter-uri" not in listing  # no printer-uri: it asks the server, not a printer
    assert set(ipp.OPERATIONS) == {0x000B, 0x4002}  # Get-Printer-Attributes, CUPS-Get-Printers: both only read
    for job_op in (0x0002, 0x0004, 0x0005, 0x0008):  # Print-Job, Validate-Job, Create-Job, Cancel-Job
        with pytest.raises(ValueError):
            ipp.request("ipp://192.0.2.20/ipp/print", 1, job_op)


def test_ipp_answers_are_parsed_strictly() -> None:
    spec = dataclasses.replace(_spec(), ipp_auth="basic")
    answer = printer.ipp_response(spec, ipp.request("ipp://x/ipp/print", 5))
    got = ipp.parse_response(answer)
    assert (got.status, got.request_id) == (0, 5)
    assert got.printer["uri-authentication-supported"] == ["basic"]
    assert got.printer["printer-is-accepting-jobs"] == ["true"] and got.printer["printer-state"] == ["3"]
    cut = answer[:-1]  # no end-of-attributes tag
    bad = {
        "no end tag": cut,
        "value past the end": answer[:40],
        "short": answer[:6],
        "huge": answer + b"\x00" * ipp.MAX_RESPONSE,
        "version 9": b"\x09" + answer[1:],
        "additional value first": answer[:8] + b"\x04\x44\x00\x00\x00\x01x\x03",
        "extension tag": answer[:8] + b"\x04\x7f\x00\x01x\x00\x00\x03",
    }
    for what, data in bad.items():
        with pytest.raises(MalformedResponse):
            ipp.parse_response(data)
            pytest.fail(what)
    many = answer[:8] + b"\x04" + b"\x44\x00\x01k\x00\x01v" * (ipp.MAX_VALUES + 1) + b"\x03"
    with pytest.raises(MalformedResponse):
        ipp.parse_response(many)


def _spec() -> printer.DeviceSpec:
    from lab.emulator.spec import DeviceSpec

    return DeviceSpec.from_dict(
        {"name": "mfp", "address": "192.0.2.20", "persona": "mfp", "model": "EL-M300", "firmware": "5.40"}
    )
