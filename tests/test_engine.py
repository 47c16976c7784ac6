"""The engine: failures are inconclusive, budgets hold, registries fail loudly, checks judge both ways."""

from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path
from typing import ClassVar

import pytest

import probes
import profiles
from probes.base import REGISTRY, Phase, Probe, ProbeContext, ProbeTarget, Registry, register
from probes.observations import Mode, Observation, Risk
from profiles.errors import RegistryError, Unreachable
from scanner.device import Kind
from scanner.findings import Status
from scanner.orchestrator import Engine
from tests.conftest import StartDevice, by_id, config_for, scan_device


def _registry_with(*extra: type[Probe]) -> Registry:
    reg = Registry(dict(REGISTRY.probes))
    for cls in extra:
        reg.add(cls)
    return reg


class _Raises(Probe):
    name = "test-raises"
    services = frozenset({"http"})

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        raise Unreachable("simulated: network unreachable")


class _Crashes(Probe):
    name = "test-crashes"
    services = frozenset({"http"})

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        raise KeyError("bug")


class _Sleeps(Probe):
    name = "test-sleeps"
    services = frozenset({"http"})

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        await asyncio.sleep(3600)  # ignores its deadline: the engine's backstop must end it
        return []


@pytest.mark.parametrize(
    ("probe", "error"), [(_Raises, "Unreachable"), (_Crashes, "ProbeCrashed"), (_Sleeps, "Timeout")]
)
async def test_failing_probe_is_inconclusive_never_pass(emulated: StartDevice, probe: type[Probe], error: str) -> None:
    dev = await emulated(services=["http"], http_mode="basic")
    engine = Engine(config_for(dev, probe=1.0), profiles.load_all(), registry=_registry_with(probe))
    result = await engine.scan_host(dev.spec.address)
    inc = by_id(result, "EA-PROBE-INCONCLUSIVE")
    assert inc and inc[0].status == Status.INCONCLUSIVE
    failures = [f for f in inc[0].evidence["failures"] if f["probe"] == probe.name]
    assert failures and failures[0]["error"] == error


async def test_http_probe_failure_makes_cleartext_check_inconclusive(emulated: StartDevice) -> None:
    dev = await emulated(services=["http"], hang=["http"])
    result = await scan_device(dev, probe=1.0)
    clear = by_id(result, "CIAJ-1.2-CLEARTEXT-ADMIN")
    assert [f.status for f in clear] == [Status.INCONCLUSIVE]
    assert "timed out" in clear[0].evidence["reason"] or "deadline" in clear[0].evidence["reason"]
    assert not [f for f in result.findings if f.status == Status.PASS]


async def test_hung_host_does_not_hold_the_sweep_past_its_budget(emulated: StartDevice) -> None:
    hung = await emulated(services=["ssh", "http", "snmp", "sip", "ntp"], hang=["ssh", "http", "snmp", "sip", "ntp"])
    engine = Engine(config_for(hung, read=30.0, probe=60.0, host=2.0), profiles.load_all())
    started = time.monotonic()
    result = await engine.scan_host(hung.spec.address)
    elapsed = time.monotonic() - started
    assert result.state == "budget"
    assert elapsed < 2.0 + 1.5  # the budget plus cancellation slack, not the 60 s probe deadline
    assert by_id(result, "EA-HOST-BUDGET")[0].status == Status.INCONCLUSIVE
    assert not [f for f in result.findings if f.status == Status.PASS]


async def test_silent_address_is_down_or_unreachable_for_check() -> None:
    from probes.base import ProbeConfig, Timeouts
    from scanner.orchestrator import SweepConfig

    # Loopback answers everything with RST, so use an IPv6 documentation address: no route,
    # every probe fails, nothing answers.
    cfg = SweepConfig(
        timeouts=Timeouts(connect=0.3, read=0.3, probe=1.0, host=5.0),
        probe_config=ProbeConfig(tcp_ports=(22,)),
        report_unreachable=True,
    )
    result = await Engine(cfg, profiles.load_all()).scan_host("2001:db8::dead")
    assert result.state == "down"
    assert [f.check_id for f in result.findings] == ["EA-HOST-UNREACHABLE"]
    assert result.findings[0].status == Status.INCONCLUSIVE


async def test_weak_device_flagged_and_hardened_passes(emulated: StartDevice) -> None:
    weak = await emulated(
        services=["ssh", "telnet", "http", "snmp", "ntp"],
        firmware="2.4.1",
        communities=["public"],
        http_mode="basic",
        ntp_stratum=16,
    )
    hard = await emulated(services=["ssh", "http", "ntp"], firmware="3.2.1", http_mode="redirect")
    w, h = await scan_device(weak), await scan_device(hard)

    w_clear = {f.service: f.status for f in by_id(w, "CIAJ-1.2-CLEARTEXT-ADMIN")}
    assert w_clear[f"tcp/{weak.bound['telnet']}"] == Status.FAIL
    assert w_clear[f"tcp/{weak.bound['http']}"] == Status.FAIL
    assert w_clear[f"udp/{weak.bound['snmp']}"] == Status.FAIL
    assert [f.status for f in by_id(w, "CIAJ-1.3-FIRMWARE-EOL")] == [Status.FAIL]
    assert [f.status for f in by_id(w, "CIAJ-1.3-FIRMWARE-OUTDATED")] == [Status.FAIL]

    assert [f.status for f in by_id(h, "CIAJ-1.2-CLEARTEXT-ADMIN")] == [Status.PASS]
    assert [f.status for f in by_id(h, "CIAJ-1.3-FIRMWARE-EOL")] == [Status.PASS]
    assert [f.status for f in by_id(h, "CIAJ-1.3-FIRMWARE-OUTDATED")] == [Status.PASS]
    assert h.device.profile == "edgelab-router" and h.device.firmware == "3.2.1"


async def test_safe_mode_sends_no_community(emulated: StartDevice) -> None:
    dev = await emulated(services=["snmp"], communities=["public"])
    result = await scan_device(dev, Mode.SAFE)
    sent = [data for name, data in dev.received if name == "snmp"]
    assert sent and all(b"public" not in d for d in sent)  # only the v3 discovery went out
    assert result.device.fingerprint(f"udp/{dev.bound['snmp']}", Kind.ENGINE_ID) is not None
    clear = by_id(result, "CIAJ-1.2-CLEARTEXT-ADMIN")
    # no community was tried, so SNMP is neither flagged nor passed: v1/v2c is untested
    assert [(f.service, f.status) for f in clear] == [(f"udp/{dev.bound['snmp']}", Status.INCONCLUSIVE)]
    assert {f.mode for f in result.findings} == {Mode.SAFE}


async def test_stale_baseline_is_not_trusted_for_a_pass(emulated: StartDevice) -> None:
    import dataclasses
    import datetime as dt

    dev = await emulated(services=["ssh"], firmware="3.2.1")
    cfg = dataclasses.replace(config_for(dev), today=dt.date(2031, 1, 1))
    result = await Engine(cfg, profiles.load_all()).scan_host(dev.spec.address)
    outdated = by_id(result, "CIAJ-1.3-FIRMWARE-OUTDATED")[0]
    assert outdated.status == Status.INCONCLUSIVE and "stale" in outdated.evidence["reason"]


async def test_unidentified_device_firmware_is_inconclusive(emulated: StartDevice) -> None:
    dev = await emulated(services=["http"], http_mode="open", persona="other", model="X")
    result = await scan_device(dev)
    assert by_id(result, "EA-DEVICE-IDENTIFIED")[0].evidence["profile"] is None
    assert {f.status for f in by_id(result, "CIAJ-1.3-FIRMWARE-EOL")} == {Status.INCONCLUSIVE}


async def test_malformed_udp_replies_are_dropped_not_trusted(emulated: StartDevice) -> None:
    dev = await emulated(services=["snmp", "sip", "ntp", "ssh"], garbage=["snmp", "sip", "ntp"])
    result = await scan_device(dev, read=0.5)
    assert {name for name, _ in dev.received} >= {"snmp", "sip", "ntp"}  # the probes ran and got junk back
    kinds = {fp.kind for fp in result.device.fingerprints}
    assert not kinds & {Kind.ENGINE_ID, Kind.SIP, Kind.NTP}


def test_duplicate_probe_name_fails_at_registration() -> None:
    class Dup(Probe):
        name = "http"
        phase: ClassVar[Phase] = Phase.FINGERPRINT

        async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
            return []

    with pytest.raises(RegistryError, match="twice"):
        register(Dup)


def test_duplicate_check_id_fails() -> None:
    from scanner.checks import check

    with pytest.raises(RegistryError, match="twice"):
        check("CIAJ-1.2-CLEARTEXT-ADMIN")(lambda view: [])
    with pytest.raises(RegistryError, match="no catalog entry"):
        check("CIAJ-9.9-NOPE")(lambda view: [])


def test_every_probe_declares_a_risk_class() -> None:
    probes.load_all()  # on its own too: not only after other tests filled the registry
    assert set(REGISTRY.probes) >= {"snmp-community", "ssh-login", "sip-options"}
    for cls in REGISTRY.probes.values():
        assert isinstance(cls.risk, Risk) and isinstance(cls.phase, Phase)
    assert REGISTRY.get("snmp-community").risk == Risk.CREDENTIAL


PROTOCOL_LIBS = {"asyncssh", "pysnmp", "httpx", "dns", "scapy", "pysnmp_mibs"}


ROOT = Path(__file__).resolve().parents[1]
ENGINE_SIDE = sorted(p for folder in ("scanner", "reports") for p in (ROOT / folder).rglob("*.py"))


def test_engine_side_modules_are_found() -> None:
    """The parametrised test below covers checks/ and reports/, from any working directory."""
    names = {p.relative_to(ROOT).as_posix() for p in ENGINE_SIDE}
    assert {"scanner/cli.py", "scanner/checks/voip.py", "reports/render.py"} <= names


@pytest.mark.parametrize("module", ENGINE_SIDE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_engine_side_never_imports_a_protocol_library(module: Path) -> None:
    tree = ast.parse(module.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    assert not names & PROTOCOL_LIBS, f"{module} imports {names & PROTOCOL_LIBS}"
