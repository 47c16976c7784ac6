"""Exposure from outside (--vantage wan): administration answering on the WAN side of a router."""

from __future__ import annotations

import dataclasses

import profiles
from probes.observations import Mode
from scanner.findings import Status
from scanner.orchestrator import Engine
from tests.conftest import StartDevice, by_id, config_for, scan_device

ADMIN = "CIAJ-3.3-ADMIN-EXPOSED-WAN"


async def test_admin_answering_outside_fails_per_service(emulated: StartDevice) -> None:
    dev = await emulated(persona="router", services=["ssh", "telnet", "ntp"], users={"admin": "x"})
    found = by_id(await scan_device(dev, Mode.SAFE, vantage="wan"), ADMIN)
    assert sorted((f.status, f.evidence["name"]) for f in found) == [(Status.FAIL, "ssh"), (Status.FAIL, "telnet")]
    assert all(f.severity == "critical" and f.evidence["vantage"] == "wan" for f in found)
    assert any(f.evidence["said"].startswith("SSH-2.0-EdgeLabOS") for f in found)


async def test_from_the_lan_a_router_is_only_pointed_to_the_wan_sweep(emulated: StartDevice) -> None:
    dev = await emulated(persona="router", services=["ssh"], users={"admin": "x"})
    found = by_id(await scan_device(dev, Mode.SAFE), ADMIN)
    assert [f.status for f in found] == [Status.INCONCLUSIVE] and "--vantage wan" in found[0].evidence["reason"]
    phone = await emulated(persona="phone", model="EL-T1", services=["http"])
    assert by_id(await scan_device(phone, Mode.SAFE), ADMIN) == []  # not an edge device: nothing to say


async def test_no_admin_outside_passes_with_the_ports_that_were_shut(emulated: StartDevice) -> None:
    dev = await emulated(persona="router", services=["ntp"])
    cfg = config_for(dev, Mode.SAFE, vantage="wan")
    cfg = dataclasses.replace(cfg, probe_config=dataclasses.replace(cfg.probe_config, port_names=((1, "ssh"),)))
    found = by_id(await Engine(cfg, profiles.load_all()).scan_host(dev.spec.address), ADMIN)
    assert [f.status for f in found] == [Status.PASS]
    assert found[0].evidence["ports"] == {"tcp/1": "closed"}  # "ssh" on tcp/1 (closed on loopback) was shut
