"""Issue 20: the verdicts of the fast sweep equal the slow one's.

The same emulated fleet on loopback is swept twice by the real `edgeaudit scan` in a fresh interpreter, in
default mode with the same timeouts: once with the default concurrency (--concurrency, --max-probes and
--per-host as shipped) and once serialised (one host, one probe run at a time). Concurrency may change how
long a sweep takes, never what it concludes: every (address, check, status) of report.json must be the same.
A finding that is inconclusive in one run only (a read or a login that ran out of time while other probes
crowded the loop) is the bug this test is here to catch. The fleet pairs weak and hardened routers, PBXs and
printers, so the comparison covers failures and passes of the same checks.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from scanner.cli import build_parser
from tests.conftest import FLEET_PORTS

ROOT = Path(__file__).resolve().parent.parent
# The conftest's fleet ports (ssh, telnet, http; SNMP, SIP, NTP) and the printers' and the PBXs' TCP services
PORTS = list(FLEET_PORTS)
PORTS[PORTS.index("--ports") + 1] += ",2121:ftp,8631:ipp,9100:jetdirect,15060:sip"
LOOPBACK = {"ssh": 2222, "telnet": 2323, "http": 8080, "snmp": 1161, "ntp": 1123, "sip": 15060, "sip_tcp": 15060}
LOOPBACK |= {"ftp": 2121, "ipp": 8631, "pjl": 9100}
# Generous for loopback, and the same for both runs; no pause between logins (as tests/test_hostile_sweep.py)
# so that the serialised sweep stays well under a minute. The host budget is the default (120 s).
TIMEOUTS = ["--timeout", "2", "--connect-timeout", "1", "--probe-timeout", "20", "--login-timeout", "4"]
TIMEOUTS += ["--login-pace", "0"]
SERIAL = ["--concurrency", "1", "--per-host", "1", "--max-probes", "1"]
SWEEP_TIMEOUT_S = 150  # one run; together they take about 45 s


def _device(
    i: int, name: str, persona: str, model: str, firmware: str, services: list[str], **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "address": f"127.0.215.{i}",
        "persona": persona,
        "model": model,
        "firmware": firmware,
        "services": {s: LOOPBACK[s] for s in services},
        **extra,
    }


PBX_WEAK = {"sip_user_agent": "Asterisk PBX 16.30.0", "extensions": {"100": "100"}, "guest_calls": True}
PBX_WEAK |= {"guest_routes": ["010"], "auth_reject_uniform": False, "users": {"admin": "admin"}}
PBX_HARDENED = {"sip_user_agent": "Asterisk PBX 22.6.0", "extensions": {"100": "Lab-Ext100-b7c2e9"}}
PBX_HARDENED |= {"sip_dialplan": ["_X."], "users": {"admin": "Lab-Pbx-Admin-6c1d"}}
# As lab/topology.yaml writes its weak and hardened devices, on loopback
FLEET = [
    _device(1, "router-weak", "router", "EL-R100", "2.4.1", ["ssh", "telnet", "http", "snmp", "ntp"],
            communities=["public", "private"], http_mode="basic", users={"admin": "admin"}, ntp_stratum=16),
    _device(2, "router-hardened", "router", "EL-R200", "3.2.1", ["ssh", "http", "snmp", "ntp"],
            http_mode="redirect", users={"admin": "Lab-Hardened-7f3c9e21"}),
    _device(3, "router-yamaha", "router", "EL-Y10", "2.7.5", ["ssh", "telnet", "snmp", "ntp"],
            communities=["public"], cli="yamaha", users={"admin": "password"}),
    _device(4, "router-cisco", "router", "EL-C20", "3.2.1", ["ssh", "ntp"],
            cli="cisco", users={"admin": "Lab-Cisco-Admin-42ab"}),
    _device(5, "pbx-weak", "pbx", "EL-P1", "16.30.0", ["sip", "sip_tcp", "http"], http_mode="basic", **PBX_WEAK),
    _device(6, "pbx-hardened", "pbx", "EL-P1", "22.6.0", ["sip", "http"], http_mode="redirect", **PBX_HARDENED),
    _device(7, "mfp-weak", "mfp", "EL-M300", "5.10", ["http", "ftp", "snmp", "pjl", "ipp"],
            communities=["public"], http_mode="form", users={"admin": "1234"}, ftp_anonymous=True),
    _device(8, "mfp-hardened", "mfp", "EL-M400", "5.40", ["http", "ipp", "snmp"], http_mode="redirect",
            ipp_auth="basic", communities=["Lab-Snmp-Mfp-71c2"], users={"admin": "Lab-Mfp-Admin-3e8f"}),
]  # fmt: skip
ADDRESSES = {str(d["name"]): str(d["address"]) for d in FLEET}
# (weak device, hardened device, checks the weak one fails and the hardened one passes): default credentials
# (SSH, Telnet, HTTP, FTP and the open SNMP community `public`), cleartext administration, the PBX's guessable
# SIP secret, open relay and extension enumeration, the printer's open IPP and raw print port
CONTRASTS = [
    ("router-weak", "router-hardened", ["CIAJ-1.2-DEFAULT-CREDENTIAL", "CIAJ-1.2-CLEARTEXT-ADMIN"]),
    ("router-yamaha", "router-cisco", ["CIAJ-1.2-DEFAULT-CREDENTIAL", "CIAJ-1.2-WEAK-CREDENTIAL"]),
    ("pbx-weak", "pbx-hardened", ["CIAJ-2.3-WEAK-SIP-SECRET", "CIAJ-2.3-OPEN-RELAY", "CIAJ-2.3-EXTENSION-ENUMERATION"]),
    ("mfp-weak", "mfp-hardened", ["CIAJ-1.2-DEFAULT-CREDENTIAL", "CIAJ-4.1-IPP-NO-AUTH", "CIAJ-4.1-RAW-PRINT-EXPOSED"]),
]


def _sweep(tmp_path: Path, name: str, *extra: str) -> tuple[dict[str, Any], dict[str, Any], float]:
    """`edgeaudit scan` of the fleet in a fresh interpreter, with its own history (and so its own login
    ledger: no run skips a pair the other was refused); its report.json, stored config and wall time."""
    run = tmp_path / name
    run.mkdir()
    cmd = [sys.executable, "-m", "scanner.cli", "scan", *ADDRESSES.values(), *PORTS, *TIMEOUTS, *extra]
    cmd += ["--db", str(run / "history.sqlite3"), "--out", str(run / "out"), "--lang", "en", "-q"]
    started = time.monotonic()
    done = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, (name, done.returncode, done.stderr[-3000:])  # 1: failures at or above high
    with sqlite3.connect(run / "history.sqlite3") as con:
        config: dict[str, Any] = json.loads(con.execute("SELECT config_json FROM sweeps").fetchone()[0])
    report: dict[str, Any] = json.loads((run / "out" / "report.json").read_text())
    return report, config, elapsed


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """A stored sweep config without its concurrency limits and its own login ledger's path."""
    out = {k: v for k, v in config.items() if k not in ("max_hosts", "max_probes", "per_host")}
    out["probe_config"] = {k: v for k, v in config["probe_config"].items() if k != "attempt_ledger"}
    return out


def _verdicts(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(d["address"], f["id"], f["status"]) for d in report["devices"] for f in d["findings"]}


def _findings(report: dict[str, Any]) -> Counter[tuple[str, str, str, str]]:
    """Every finding by (address, check, service, status), counted."""
    return Counter(
        (d["address"], f["id"], str(f["service"]), f["status"]) for d in report["devices"] for f in d["findings"]
    )


def _explain(report: dict[str, Any], keys: set[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """The findings behind ``keys``, with their device, service and evidence (an inconclusive one's reason)."""
    names = {a: n for n, a in ADDRESSES.items()}
    out = []
    for d in report["devices"]:
        for f in d["findings"]:
            if (d["address"], f["id"], f["status"]) in keys:
                out.append({"device": names[d["address"]], "address": d["address"], "id": f["id"]})
                out[-1] |= {"status": f["status"], "service": f["service"], "evidence": f.get("evidence")}
    return out


def _statuses(report: dict[str, Any], device: str, check: str) -> list[str]:
    host = next(d for d in report["devices"] if d["address"] == ADDRESSES[device])
    return [f["status"] for f in host["findings"] if f["id"] == check]


def test_a_serialised_sweep_reaches_the_verdicts_of_a_concurrent_one(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fleet(FLEET)
    fast, fast_config, fast_s = _sweep(tmp_path, "fast")
    slow, slow_config, slow_s = _sweep(tmp_path, "slow", *SERIAL)
    print(f"\nfast sweep {fast_s:.1f} s, serialised sweep {slow_s:.1f} s, {len(FLEET)} devices")

    # the runs differ in their concurrency and in nothing else
    limits = ("max_hosts", "max_probes", "per_host")
    defaults = build_parser().parse_args(["scan"])  # of --concurrency, --max-probes and --per-host
    assert [fast_config[k] for k in limits] == [defaults.concurrency, defaults.max_probes, defaults.per_host]
    assert min(fast_config[k] for k in limits) > 1
    assert [slow_config[k] for k in limits] == [1, 1, 1]
    assert _settings(fast_config) == _settings(slow_config)
    for report in (fast, slow):
        assert report["sweep"]["mode"] == "default" and report["sweep"]["state"] == "complete"

    fast_verdicts, slow_verdicts = _verdicts(fast), _verdicts(slow)
    assert len(fast_verdicts) > 100  # the whole catalogue judged on eight devices, not a handful of checks
    differ = {
        "fast only": _explain(fast, fast_verdicts - slow_verdicts),
        "serialised only": _explain(slow, slow_verdicts - fast_verdicts),
    }
    assert fast_verdicts == slow_verdicts, json.dumps(differ, indent=1, ensure_ascii=False)[:6000]
    # and finding for finding, service by service
    assert _findings(fast) == _findings(slow), (_findings(fast) - _findings(slow), _findings(slow) - _findings(fast))

    # both verdicts are in the comparison: each weak device fails what its hardened twin passes
    for report in (fast, slow):
        # every device answered and finished within its budget (a "budget" host would be judged on less)
        assert {d["address"]: d["state"] for d in report["devices"]} == {a: "up" for a in ADDRESSES.values()}
        for weak, hardened, checks in CONTRASTS:
            for check in checks:
                assert "fail" in _statuses(report, weak, check), (report["sweep"]["id"], weak, check)
                assert set(_statuses(report, hardened, check)) == {"pass"}, (report["sweep"]["id"], hardened, check)
