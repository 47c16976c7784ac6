"""CIAJ 3.4: a resolver that answers canaries wrongly (hijack), and one that recurses for outsiders."""

from __future__ import annotations

import pytest

import profiles
from probes.base import ProbeConfig
from probes.dns_query import parse_expect as _dns_expect
from probes.observations import Mode
from profiles.errors import UsageError
from scanner.findings import Status
from scanner.orchestrator import Engine, HostResult, SweepConfig
from tests.conftest import by_id, with_settings

HIJACK, OPEN = "CIAJ-3.4-DNS-HIJACK", "CIAJ-3.4-OPEN-RESOLVER"


async def _scan(address: str, vantage: str = "lan", **probe: object) -> HostResult:
    pc = with_settings(ProbeConfig(tcp_ports=(1,)), **probe)
    config = SweepConfig(mode=Mode.SAFE, probe_config=pc, vantage=vantage)
    return await Engine(config, profiles.load_all()).scan_host(address)


async def test_a_canary_answered_elsewhere_is_a_hijack_and_the_real_answer_passes(resolver) -> None:  # type: ignore[no-untyped-def]
    expect = _dns_expect(["www.bank.example=192.0.2.80"])
    bad, _ = await resolver({"www.bank.example": "203.0.113.66"})
    found = by_id(await _scan(bad, dns_expect=expect), HIJACK)
    assert [(f.status, f.evidence["hijacked"]) for f in found] == [(Status.FAIL, ["www.bank.example"])]
    assert found[0].evidence["canaries"][0]["answer"] == ["203.0.113.66"]
    good, _ = await resolver({"www.bank.example": "192.0.2.80"})
    assert [f.status for f in by_id(await _scan(good, dns_expect=expect), HIJACK)] == [Status.PASS]
    silent, _ = await resolver({})  # NXDOMAIN: no address to judge
    found = by_id(await _scan(silent, dns_expect=expect), HIJACK)
    assert [f.status for f in found] == [Status.INCONCLUSIVE] and "NXDOMAIN" in found[0].evidence["reason"]


async def test_a_trusted_resolver_gives_the_expected_answers(resolver) -> None:  # type: ignore[no-untyped-def]
    trusted, _ = await resolver({"example.com": "192.0.2.10"})
    router, asked = await resolver({"example.com": "198.51.100.7"})
    found = by_id(await _scan(router, trusted_resolver=trusted), HIJACK)
    assert [f.status for f in found] == [Status.FAIL]
    assert found[0].evidence["canaries"][0]["expected_from"] == f"trusted resolver {trusted}"
    assert asked.asked == ["example.com"]
    nothing = by_id(await _scan(router), HIJACK)  # no pin, no trusted resolver: nothing to compare with
    assert [f.status for f in nothing] == [Status.INCONCLUSIVE]


async def test_recursion_for_outsiders_is_an_open_resolver(resolver) -> None:  # type: ignore[no-untyped-def]
    open_, _ = await resolver({"example.com": "192.0.2.10"})
    assert [f.status for f in by_id(await _scan(open_, "wan"), OPEN)] == [Status.FAIL]
    refusing, _ = await resolver({}, refuse=True)
    assert [f.status for f in by_id(await _scan(refusing, "wan"), OPEN)] == [Status.PASS]
    authoritative, _ = await resolver({"example.com": "192.0.2.10"}, recursion=False)
    found = by_id(await _scan(authoritative, "wan"), OPEN)
    assert [f.status for f in found] == [Status.PASS] and found[0].evidence["ports"] == {"udp/53": "open"}


def test_dns_expect_items_are_checked() -> None:
    pinned = _dns_expect(["WWW.Bank.Example.=192.0.2.1, 192.0.2.2"])
    assert pinned == (("www.bank.example", ("192.0.2.1", "192.0.2.2")),)
    bad_items = ("www.bank.example", "www.bank.example=", "bank=192.0.2.1", "x.example=bad", "a b.example=1.2.3.4")
    for bad in bad_items:
        with pytest.raises(UsageError):
            _dns_expect([bad])
