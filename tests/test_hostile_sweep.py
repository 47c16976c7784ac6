"""A sweep of hostile devices: every protocol the emulator serves, in each hostile mode (lab.emulator.hostile).

Each host serves one protocol (SSDP also its HTTP, where its LOCATION points) and answers garbage,
valid-then-garbage, valid-but-huge or a drip. The sweep is the ``edgeaudit scan`` command in a fresh
interpreter, as a user runs it; the emulated fleet runs in this process. Asserted: the command exits
normally with nothing on stderr (no traceback, no "Task exception was never retrieved", no "Exception
in callback"), no check fed by a hostile service passes (the persona never sends an answer a check
could honestly pass on; see lab/emulator/hostile.py), the sweep's own peak RSS (VmHWM, read by the
child at exit: ru_maxrss would carry pytest's across fork and exec) stays under 300 MB, and the
sweep ends within its budgets. ``pytest -s`` prints the figures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lab.emulator.devices import Device
from lab.emulator.hostile import MODES
from lab.emulator.spec import DeviceSpec
from tests.conftest import ROOT

PORTS = {
    "ftp": 2121, "ssh": 2222, "telnet": 2323, "http": 8080, "ipp": 8631, "sip": 15060, "sip_tcp": 15060,
    "snmp": 1161, "ntp": 1123, "dns": 53, "ssdp": 1900,
}  # fmt: skip
# One host per (mode, protocol); a protocol is the emulator services it runs.
PROTOCOLS = {
    "ftp": ("ftp",), "ssh": ("ssh",), "telnet": ("telnet",), "http": ("http",), "ipp": ("ipp",),
    "sip": ("sip", "sip_tcp"), "snmp": ("snmp",), "ntp": ("ntp",), "dns": ("dns",), "ssdp": ("ssdp", "http"),
}  # fmt: skip
LOGIN = ("CIAJ-1.2-DEFAULT-CREDENTIAL", "CIAJ-1.2-WEAK-CREDENTIAL", "CIAJ-1.2-CLEARTEXT-ADMIN")
FIRMWARE = ("CIAJ-1.3-FIRMWARE-EOL", "CIAJ-1.3-FIRMWARE-OUTDATED", "CIAJ-1.3-KNOWN-EXPLOITED")
SIP = ("CIAJ-2.3-REGISTER-NO-AUTH", "CIAJ-2.3-EXTENSION-ENUMERATION", "CIAJ-2.3-OPEN-RELAY")
SIP += ("CIAJ-2.3-WEAK-SIP-SECRET",)
ADMIN = "CIAJ-3.3-ADMIN-EXPOSED-WAN"  # judged from the WAN vantage: whatever answers there is exposed
# The checks whose evidence each hostile service's replies could be: none of them may pass on its host.
# (Checks judged from port states alone, such as RAW-PRINT-EXPOSED of a shut port, are not listed.)
FED_BY = {
    "ftp": (*LOGIN, *FIRMWARE, "CIAJ-4.1-FILE-SHARE-EXPOSED"),
    "ssh": (*LOGIN, *FIRMWARE, ADMIN),
    "telnet": (*LOGIN, *FIRMWARE, ADMIN),
    "http": (*LOGIN, *FIRMWARE, "CIAJ-1.4-CLOCK-SKEW", "CIAJ-4.1-EWS-HTTP-ONLY", ADMIN),
    "ipp": ("CIAJ-4.1-IPP-NO-AUTH", *FIRMWARE),
    "sip": (*SIP, *FIRMWARE, "CIAJ-1.4-CLOCK-SKEW", "CIAJ-2.3-VOIP-EXPOSED"),
    "snmp": (*LOGIN, *FIRMWARE, "CIAJ-1.4-CLOCK-SKEW", ADMIN),
    "ntp": ("CIAJ-1.4-NTP-NOT-SYNCED", "CIAJ-1.4-CLOCK-SKEW", "CIAJ-1.4-NTP-CONTROL-EXPOSED"),
    "dns": ("CIAJ-3.4-DNS-HIJACK", "CIAJ-3.4-OPEN-RESOLVER"),
    "ssdp": ("CIAJ-3.4-UPNP-IGD", "CIAJ-3.4-UPNP-EXPOSED-WAN", *LOGIN, *FIRMWARE, "CIAJ-1.4-CLOCK-SKEW", ADMIN),
}
# One exception: in valid-then-garbage mode the SSH identification line is well-formed (the garbage follows
# it), and CLEARTEXT-ADMIN judges an SSH port by that line alone; a pass there is read from a valid reply.
WELL_FORMED = {("valid-then-garbage", "ssh", "CIAJ-1.2-CLEARTEXT-ADMIN")}
HOST_BUDGET, CONCURRENCY = 20.0, 40
SCAN = ["--timeout", "1", "--connect-timeout", "0.5", "--probe-timeout", "4", "--login-timeout", "1"]
SCAN += ["--login-pace", "0", "--host-budget", str(HOST_BUDGET), "--concurrency", str(CONCURRENCY), "--lang", "en"]
# tcp/1 is shut on loopback: a host whose one service is UDP still shows it is up
SCAN += ["--ports", "1,2121:ftp,2222:ssh,2323:telnet,8080:http,8631:ipp,15060:sip"]
SCAN += ["--snmp-port", "1161", "--sip-port", "15060", "--ntp-port", "1123"]
# The child reads its own peak RSS at exit (atexit runs on the CLI's sys.exit).
WRAPPER = r"""
import atexit, sys
def peak():
    status = open("/proc/self/status").read()
    with open(sys.argv[1], "w") as f:
        f.write(status.split("VmHWM:")[1].split()[0])
atexit.register(peak)
from scanner.cli import main
sys.exit(main(sys.argv[2:]))
"""
NOISE = ("Traceback", "Task exception was never retrieved", "Future exception was never retrieved")
NOISE += ("Exception in callback",)


def hosts() -> list[dict[str, Any]]:
    """The fleet: one device spec per (mode, protocol), on 127.0.238.x."""
    out: list[dict[str, Any]] = []
    for i, (mode, protocol) in enumerate((m, p) for m in MODES for p in PROTOCOLS):
        out.append(
            {
                "name": f"hostile-{mode}-{protocol}",
                "address": f"127.0.238.{i + 1}",
                "persona": "router",
                "model": "HX-1",
                "firmware": "1.0",
                "services": {s: PORTS[s] for s in PROTOCOLS[protocol]},
                "hostile": mode,
                "hostile_seed": i,
                "drip_ms": 200,
            }
        )
    return out


@pytest.fixture
async def hostile_fleet() -> AsyncIterator[list[Device]]:
    devices = [Device(DeviceSpec.from_dict(h)) for h in hosts()]
    for d in devices:
        await d.start()
    yield devices
    for d in devices:
        await d.stop()


# A default sweep from the LAN (logins, SIP tests), and a safe one from the WAN vantage (the exposure checks)
VANTAGES = {"lan": [], "wan": ["--safe", "--vantage", "wan"]}


@pytest.mark.parametrize("vantage", list(VANTAGES))
async def test_a_sweep_of_hostile_hosts(hostile_fleet: list[Device], tmp_path: Path, vantage: str) -> None:
    addresses = [d.spec.address for d in hostile_fleet]
    peak = tmp_path / "vmhwm"
    args = [
        "scan",
        *addresses,
        *SCAN,
        *VANTAGES[vantage],
        "--out",
        str(tmp_path / "out"),
        "--db",
        str(tmp_path / "history.sqlite3"),
    ]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRAPPER, str(peak), *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(proc.communicate(), 300)
    elapsed = time.monotonic() - started
    err = stderr.decode(errors="replace")
    # 0 and 1 are the sweep's own verdicts (1: findings at or above --fail-on); 2 and 3 are errors and bugs
    assert proc.returncode in (0, 1), (proc.returncode, err[-3000:])
    assert not [n for n in NOISE if n in err], err[-3000:]

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    by_address = {d.spec.address: d for d in hostile_fleet}
    wrong = []
    for host in report["devices"]:
        spec = by_address[host["address"]].spec
        mode, protocol = spec.hostile, spec.name.rsplit("-", 1)[1]
        for f in host["findings"]:
            fed = f["id"] in FED_BY[protocol] and (mode, protocol, f["id"]) not in WELL_FORMED
            if f["status"] == "pass" and fed:
                wrong.append((mode, protocol, f["id"], f.get("evidence")))
    rss_mib = int(peak.read_text()) / 1024
    replies = sum(d.hostile.replies for d in hostile_fleet if d.hostile is not None)
    sent = sum(d.hostile.bytes_sent for d in hostile_fleet if d.hostile is not None)
    print(
        f"\nhostile sweep ({vantage}): {len(addresses)} hosts ({len(MODES)} modes x {len(PROTOCOLS)} protocols), "
        f"{replies} hostile replies ({sent / 2**20:.1f} MiB sent), exit {proc.returncode}, "
        f"{len(wrong)} wrong passes, peak RSS {rss_mib:.0f} MiB, {elapsed:.1f} s"
    )
    assert replies > 0
    assert wrong == [], wrong
    assert rss_mib < 300, rss_mib
    # every host at once (concurrency >= hosts): one host budget, grown at most to its longest phase, plus slack
    assert elapsed < HOST_BUDGET * -(-len(addresses) // CONCURRENCY) * 1.5 + 15, elapsed
    states = [h["state"] for h in report["devices"]]
    print(f"states: {states.count('up')} up, {states.count('budget')} budget, {states.count('down')} down")
    import shutil

    shutil.copy(tmp_path / "out" / "report.json", "/tmp/hostile-report.json")
