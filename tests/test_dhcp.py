"""--dhcp: the DNS servers a router's DHCP server hands out, judged like its own resolver (CIAJ 3.4 case 1).

The wire exchange with real dnsmasq is proven in the lab (tests/test_lab.py);
here: the bounded reply parser, that only DISCOVER and INFORM can be built, the
handed-out resolvers asked on loopback, and the judgement.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import struct

import pytest

from probes import dhcp
from probes.base import ProbeConfig, ProbeContext, Timeouts
from probes.dns_query import parse_expect as _dns_expect
from probes.observations import DhcpOffer, DnsAnswer, Mode, Service
from profiles.errors import MalformedResponse
from scanner.checks import HostView
from scanner.checks.dns import dns_hijack
from scanner.findings import Finding, Status
from tests.conftest import by_id, fresh_address, with_settings

HIJACK = "CIAJ-3.4-DNS-HIJACK"
DHCP = Service(67, "udp", "dhcp")
DNS = Service(53, "udp", "dns")
MAC = "02:ea:00:00:00:01"


def _reply(*options: bytes, xid: int = 7, op: int = 2, end: bool = True) -> bytes:
    head = struct.pack(">BBBBIHH", op, 1, 6, 0, xid, 0, 0x8000) + bytes(16) + bytes(16) + bytes(192)
    return head + dhcp.MAGIC + b"".join(options) + (b"\xff" if end else b"")


def _opt(code: int, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


def _ips(*addresses: str) -> bytes:
    return b"".join(ipaddress.IPv4Address(a).packed for a in addresses)


def test_an_offer_is_read_strictly() -> None:
    offer = _reply(
        _opt(53, b"\x02"),
        _opt(54, _ips("198.18.0.2")),
        b"\x00",  # a pad
        _opt(6, _ips("198.18.0.2", "198.18.2.53")),
        _opt(3, _ips("198.18.0.2")),
        _opt(15, b"lab\x00"),
        _opt(51, struct.pack(">I", 43200)),
    )
    got = dhcp.parse_reply(offer, "198.18.0.2")
    assert (got.xid, got.message, got.server_id) == (7, dhcp.OFFER, "198.18.0.2")
    assert got.dns_servers == ("198.18.0.2", "198.18.2.53") and got.routers == ("198.18.0.2",)
    assert (got.domain, got.lease_s) == ("lab", 43200)
    split = _reply(_opt(53, b"\x05"), _opt(6, _ips("192.0.2.1")), _opt(6, _ips("192.0.2.2")))  # RFC 3396
    assert dhcp.parse_reply(split, "192.0.2.9").dns_servers == ("192.0.2.1", "192.0.2.2")
    bad = {
        "truncated option": _reply(_opt(53, b"\x02"), b"\x06\x08" + _ips("192.0.2.1"), end=False),
        "no end option": _reply(_opt(53, b"\x02"), end=False),
        "no message type": _reply(_opt(6, _ips("192.0.2.1"))),
        "a request, not a reply": _reply(_opt(53, b"\x02"), op=1),
        "DNS list of 5 bytes": _reply(_opt(53, b"\x02"), _opt(6, b"\x01\x02\x03\x04\x05")),
        "lease time of 2 bytes": _reply(_opt(53, b"\x02"), _opt(51, b"\x00\x01")),
        "no magic cookie": _reply(_opt(53, b"\x02")).replace(dhcp.MAGIC, b"\x00\x00\x00\x00", 1),
        "short": b"\x02" * 100,
        "huge": _reply(_opt(53, b"\x02")) + b"\x00" * 2000,
    }
    for what, data in bad.items():
        with pytest.raises(MalformedResponse):
            dhcp.parse_reply(data, "192.0.2.9")
            pytest.fail(what)


def test_only_discover_and_inform_can_be_sent() -> None:
    discover = dhcp.request(dhcp.DISCOVER, 0x1234, MAC)
    assert discover[0] == 1 and discover[10:12] == b"\x80\x00"  # BOOTREQUEST, broadcast flag
    assert discover[28:34] == bytes.fromhex("02ea00000001") and discover[12:16] == bytes(4)
    assert discover[236:240] == dhcp.MAGIC and discover[240:243] == bytes([53, 1, dhcp.DISCOVER])
    inform = dhcp.request(dhcp.INFORM, 0x1234, MAC, "198.18.1.254")
    assert inform[12:16] == _ips("198.18.1.254") and inform[240:243] == bytes([53, 1, dhcp.INFORM])
    for forbidden in (3, 4, 7):  # REQUEST, DECLINE, RELEASE: each would touch the server's lease table
        with pytest.raises(ValueError):
            dhcp.request(forbidden, 1, MAC)


def _ctx(**probe: object) -> ProbeContext:
    config = with_settings(ProbeConfig(), **probe)
    deadline = asyncio.get_running_loop().time() + 10
    return ProbeContext(timeouts=Timeouts(read=1.0), mode=Mode.SAFE, config=config, deadline=deadline)


def _view(address: str, *observations: object) -> HostView:
    return HostView(address, Mode.SAFE, tuple(observations), None, dt.date(2026, 11, 22))  # type: ignore[arg-type]


def _statuses(findings: list[Finding]) -> list[tuple[str | None, Status]]:
    return [(f.service, f.status) for f in findings]


def _offer(*dns_servers: str, unanswered: tuple[tuple[str, str], ...] = ()) -> DhcpOffer:
    return DhcpOffer(
        DHCP, method="discover", server_id="x", dns_servers=dns_servers, routers=("192.0.2.1",), unanswered=unanswered
    )


async def test_a_handed_out_resolver_that_hijacks_fails_and_the_device_itself_passes(resolver) -> None:  # type: ignore[no-untyped-def]
    expect = _dns_expect(["www.bank.example=192.0.2.80"])
    rogue, asked = await resolver({"www.bank.example": "203.0.113.66"})
    honest, _ = await resolver({"www.bank.example": "192.0.2.80"})
    router = fresh_address()
    silent = fresh_address()  # nothing listens: ICMP refusal
    ctx = _ctx(dns_expect=expect)
    answers, unanswered = await dhcp.ask_resolvers([router, rogue, honest, rogue], router, DHCP, ctx)
    assert asked.asked == ["www.bank.example"]  # each resolver once, the device itself never (the dns probe asks it)
    assert [(a.resolver, a.addresses) for a in answers] == [(rogue, ("203.0.113.66",)), (honest, ("192.0.2.80",))]
    assert unanswered == []
    own = DnsAnswer(DNS, name="www.bank.example", addresses=("192.0.2.80",), expected=("192.0.2.80",))

    [found] = dns_hijack(_view(router, own, _offer(router, rogue, honest), *answers))[1:]
    assert (found.status, found.service) == (Status.FAIL, "udp/67")
    assert found.evidence["hijacked"] == [f"{rogue} www.bank.example"]
    assert found.evidence["dns_servers_handed_out"] == [router, rogue, honest]
    assert found.evidence["gateways_handed_out"] == ["192.0.2.1"]

    honest_only = [a for a in answers if a.resolver == honest]
    [found] = dns_hijack(_view(router, own, _offer(router, honest), *honest_only))[1:]
    assert found.status is Status.PASS and len(found.evidence["canaries"]) == 2  # its own answer, and honest's

    _answers, unanswered = await dhcp.ask_resolvers([silent], router, DHCP, ctx)
    assert [r for r, _ in unanswered] == [silent]
    [found] = dns_hijack(_view(router, own, _offer(silent, unanswered=tuple(unanswered))))[1:]
    assert found.status is Status.INCONCLUSIVE and silent in found.evidence["reason"]
    # a hijack still fails when another handed-out resolver could not be asked
    offer = _offer(rogue, silent, unanswered=tuple(unanswered))
    [found] = dns_hijack(_view(router, own, offer, *[a for a in answers if a.resolver == rogue]))[1:]
    assert found.status is Status.FAIL


def test_handing_out_itself_is_judged_by_its_own_answers() -> None:
    router = "192.0.2.1"
    hijacked = DnsAnswer(DNS, name="www.bank.example", addresses=("203.0.113.66",), expected=("192.0.2.80",))
    found = _statuses(dns_hijack(_view(router, hijacked, _offer(router))))
    assert found == [("udp/53", Status.FAIL), ("udp/67", Status.FAIL)]
    found = _statuses(dns_hijack(_view(router, _offer(router))))  # the device's resolver never answered
    assert found == [("udp/67", Status.INCONCLUSIVE)]
    found = _statuses(dns_hijack(_view(router, _offer())))
    assert found == [("udp/67", Status.PASS)]  # no DNS server handed out: clients are sent nowhere


async def test_dhcp_is_asked_only_with_the_flag_and_never_on_loopback(resolver) -> None:  # type: ignore[no-untyped-def]
    import profiles
    from scanner.orchestrator import Engine, SweepConfig

    router, _ = await resolver({"example.com": "192.0.2.10"})

    async def scan(**probe: object) -> list[tuple[str, str]]:
        pc = with_settings(ProbeConfig(tcp_ports=(1,)), **probe)
        result = await Engine(SweepConfig(mode=Mode.SAFE, probe_config=pc), profiles.load_all()).scan_host(router)
        found = by_id(result, "EA-PROBE-INCONCLUSIVE")
        return [(f.service or "", x["reason"]) for f in found for x in f.evidence["failures"] if x["probe"] == "dhcp"]

    assert await scan() == []
    # unprivileged: said, not silently skipped; privileged: loopback is no segment to broadcast on
    [(service, reason)] = await scan(dhcp=True, privileged=False)
    assert service == "udp/67" and "needs root" in reason
    [(service, reason)] = await scan(dhcp=True, privileged=True)
    assert service == "udp/67" and "directly attached segment" in reason


async def test_discover_twice_then_inform_and_only_the_targets_answer_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int] = []

    def answer(message: int, source: str, dns_server: str) -> dhcp.Reply:
        return dhcp.Reply(0, message, source, source, (dns_server,), (), "", None)

    def fake_exchange(iface: str, payload: bytes, ip_src: str, server: str, listen_s: float) -> list[dhcp.Reply]:
        sent.append(payload[242])
        other = answer(dhcp.OFFER if payload[242] == dhcp.DISCOVER else dhcp.ACK, "192.0.2.99", "192.0.2.66")
        if payload[242] == dhcp.INFORM:
            assert ip_src == "192.0.2.254" and payload[12:16] == _ips("192.0.2.254")
            return [other, answer(dhcp.ACK, "192.0.2.1", "192.0.2.1")]
        return [other]  # another server's OFFER: not the target's

    monkeypatch.setattr(dhcp, "on_link", lambda address: ("eth9", "192.0.2.254", MAC))
    monkeypatch.setattr(dhcp, "_exchange", fake_exchange)
    got = await dhcp.ask_server("192.0.2.1", _ctx())
    assert got is not None and got[1] == "inform" and got[0].dns_servers == ("192.0.2.1",)
    assert sent == [dhcp.DISCOVER, dhcp.DISCOVER, dhcp.INFORM]

    def nak(iface: str, payload: bytes, ip_src: str, server: str, listen_s: float) -> list[dhcp.Reply]:
        return [answer(dhcp.NAK, "192.0.2.1", "192.0.2.1")]

    monkeypatch.setattr(dhcp, "_exchange", nak)
    with pytest.raises(MalformedResponse):
        await dhcp.ask_server("192.0.2.1", _ctx())
    monkeypatch.setattr(dhcp, "_exchange", lambda *a: [])
    assert await dhcp.ask_server("192.0.2.1", _ctx()) is None  # no DHCP server there: silence, not a verdict
