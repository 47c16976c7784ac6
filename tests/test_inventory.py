"""EA-SERVICES-OPEN says what each answering service said, including what only it reads."""

from __future__ import annotations

import datetime as dt

from probes.observations import IppInfo, Mode, Service, SipInfo, SnmpInfo
from scanner.checks import HostView
from scanner.checks.inventory import services_open

SIP = Service(5060, "udp", "sip")
SNMP = Service(161, "udp", "snmp")
IPP = Service(631, "tcp", "ipp")


def _said(*observations: object) -> dict[str, str]:
    view = HostView(
        address="192.0.2.5",
        mode=Mode.DEFAULT,
        observations=tuple(observations),  # type: ignore[arg-type]
        match=None,
        today=dt.date(2026, 12, 2),
        open_services=frozenset({SIP, SNMP, IPP}),
    )
    [finding] = services_open(view)
    return {s["service"]: s["said"] for s in finding.evidence["services"]}


def test_the_sip_methods_and_extensions_a_server_announces_are_shown() -> None:
    sip = SipInfo(SIP, status=200, server="Asterisk PBX 20.5.0", allow=("INVITE", "REFER"), supported=("timer",))
    said = _said(sip)
    assert said[SIP.key] == "SIP 200 Asterisk PBX 20.5.0; allows INVITE, REFER; supports timer"


def test_the_snmp_sysname_is_shown() -> None:
    said = _said(SnmpInfo(SNMP, version="v2c", sys_descr="EdgeLab EL-R100", sys_name="branch-gw"))
    assert said[SNMP.key] == "SNMP v2c EdgeLab EL-R100; sysName branch-gw"


def test_the_printer_info_of_the_printer_is_shown_not_its_queues() -> None:
    said = _said(
        IppInfo(IPP, path="/ipp/print", ipp_status="successful-ok", make_and_model="Brother MFC-L2750DW",
                info="2F copy room"),
        IppInfo(IPP, path="/printers/q2", ipp_status="successful-ok", make_and_model="Other", info="queue 2"),
    )
    assert said[IPP.key] == "IPP successful-ok Brother MFC-L2750DW; printer-info 2F copy room"
