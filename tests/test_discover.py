"""`edgeaudit discover`: presence and open services only, recorded and reported; nothing judged or tried."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from probes.base import Phase
from scanner import cli, runner
from scanner.store import Store
from tests.conftest import FAST, StartDevice, cli_exit

WEAK = {"users": {"admin": "admin"}, "communities": ["public"]}


def _ports(device: object) -> list[str]:
    bound = device.bound  # type: ignore[attr-defined]
    tcp = f"{bound['ssh']}:ssh,{bound['telnet']}:telnet,{bound['http']}:http,1"
    return ["--ports", tcp, "--snmp-port", str(bound["snmp"]), "--sip-port", "9", "--ntp-port", "9"]


async def test_discover_lists_services_and_tries_nothing(emulated: StartDevice, tmp_path: Path) -> None:
    device = await emulated(services=["ssh", "telnet", "http", "snmp"], **WEAK)
    out = tmp_path / "d"
    code, err = await cli_exit(
        "discover", device.spec.address, *_ports(device), *FAST, "--out", str(out), "--db", str(tmp_path / "h.db"),
        "--lang", "en",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["sweep"]["command"] == "discover" and report["sweep"]["mode"] == "safe"
    (dev,) = report["devices"]
    assert dev["address"] == device.spec.address and dev["state"] == "up"
    assert [f["id"] for f in dev["findings"]] == ["EA-SERVICES-OPEN"]
    services = {s["name"] for s in dev["findings"][0]["evidence"]["services"]}
    assert services == {"ssh", "telnet", "http", "snmp"}
    # Discovery asks what answers: no login, no community guess beyond discovery's, no configuration command.
    assert device.login_attempts == []
    assert device.config_attempts == []
    # The same device, scanned, fails its default-credential checks: discover judged nothing, it did not pass it.
    code, err = await cli_exit(
        "scan", device.spec.address, *_ports(device), *FAST, "--out", str(tmp_path / "s"),
        "--db", str(tmp_path / "h.db"), "--lang", "en", "--fail-on", "critical",
    )  # fmt: skip
    scanned = json.loads((tmp_path / "s" / "report.json").read_text(encoding="utf-8"))
    fails = {f["id"] for f in scanned["devices"][0]["findings"] if f["status"] == "fail"}
    assert "CIAJ-1.2-DEFAULT-CREDENTIAL" in fails, fails
    store = Store(tmp_path / "h.db")
    commands = [s["command"] for s in store.list()]
    store.close()
    assert sorted(commands) == ["discover", "scan"]


async def test_discover_lists_a_host_with_no_service_open_without_an_inventory_finding(tmp_path: Path) -> None:
    out = tmp_path / "d"
    code, err = await cli_exit(
        "discover", "127.0.0.1", "--ports", "9", "--sip-port", "9", "--snmp-port", "9", "--ntp-port", "9",
        "--unprivileged", *FAST, "--out", str(out), "--db", str(tmp_path / "h.db"),
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    # 127.0.0.1 refuses tcp/9: a closed port proves it up, with no service open and so no inventory finding.
    assert [d["address"] for d in report["devices"]] == ["127.0.0.1"]
    assert report["devices"][0]["findings"] == []


def test_discover_config_survives_resume_encoding() -> None:
    args = cli.build_parser().parse_args(["discover", "198.18.4.0/24", "--arp-rate", "500"])
    config = runner._config(args, runner.mode_from(args), "discover")
    assert config.phases == (Phase.PRESENCE, Phase.DISCOVERY)
    assert config.checks == frozenset({"EA-SERVICES-OPEN"})
    back = runner._config_from_json(json.loads(json.dumps(runner._config_json(config))))
    assert back.phases == config.phases and back.checks == config.checks
    assert back.probe_config == config.probe_config  # --arp-rate included
    full = runner._config(cli.build_parser().parse_args(["scan", "198.18.4.0/24"]), runner.mode_from(args), "scan")
    assert runner._config_from_json(json.loads(json.dumps(runner._config_json(full)))).checks is None


def test_discover_takes_only_the_options_that_apply() -> None:
    parser = cli.build_parser()
    for flag in ("--auth-file", "--intrusive", "--credentials", "--syslog-listen"):
        try:
            parser.parse_args(["discover", "198.18.4.0/24", flag, "x"])
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"discover accepted {flag}")
    args = parser.parse_args(["discover", "198.18.4.0/24"])
    assert isinstance(args, argparse.Namespace) and args.safe is True


def test_presence_only_runs_arp_and_icmp_only_and_survives_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "is_root", lambda: True)
    args = cli.build_parser().parse_args(["discover", "--presence-only", "198.18.4.0/24"])
    config = runner._config(args, runner.mode_from(args), "discover")
    assert config.probes == frozenset({"arp", "icmp-echo"}) and config.checks == frozenset()
    back = runner._config_from_json(json.loads(json.dumps(runner._config_json(config))))
    assert back.probes == config.probes and back.checks == frozenset()
    plain = cli.build_parser().parse_args(["discover", "198.18.4.0/24"])
    assert runner._config(plain, runner.mode_from(plain), "discover").probes is None


async def test_presence_only_unprivileged_is_a_usage_error(tmp_path: Path) -> None:
    code, err = await cli_exit(
        "discover", "--presence-only", "--unprivileged", "127.0.0.1", "--out", str(tmp_path / "d"),
        "--db", str(tmp_path / "h.db"),
    )  # fmt: skip
    assert code == 2 and "--presence-only needs root" in err
    if (tmp_path / "h.db").exists():  # refused before a sweep was recorded
        store = Store(tmp_path / "h.db")
        assert store.list() == []
        store.close()
