"""`edgeaudit wifi`: judge the wireless networks a capture (or a monitor interface) shows.

Each network becomes findings under the Wi-Fi checks (scanner.checks.wifi),
recorded in the history as a sweep of vantage ``air``. With ``--join SWEEP``, a
network whose BSSID belongs to a device of that sweep is reported on that
device's address: the same MAC, or the same first five octets and a last
octet at most ``NEAR`` apart (access points derive their BSSIDs from the base
MAC). Anything else stays under its BSSID.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Sequence

from probes import wifi
from probes.observations import Mode, WifiNetwork
from probes.wifi import radio as wifi_radio
from profiles.errors import UsageError
from scanner import checks as checks_mod
from scanner import command, outfiles
from scanner.checks.wifi import WIFI_CHECKS
from scanner.device import AirNetwork, DeviceRecord
from scanner.findings import Finding
from scanner.orchestrator import HostResult
from scanner.store import Store, SweepRecord, default_path

NEAR = 8
UNJOINED = DeviceRecord(device_class="wireless network")  # a BSSID no swept device's MAC explains


def observation(net: wifi.Network, source: str) -> WifiNetwork:
    """The typed observation for one decoded network."""
    suites = net.rsn or net.wpa
    pmf = "no"
    if net.rsn is not None and net.rsn.mfp_required:
        pmf = "required"
    elif net.rsn is not None and net.rsn.mfp_capable:
        pmf = "capable"
    return WifiNetwork(
        None,
        bssid=net.bssid,
        ssid=net.ssid,
        channel=net.channel,
        security=net.security,
        group_cipher=suites.group if suites else None,
        pairwise=tuple(sorted(set((net.rsn.pairwise if net.rsn else ()) + (net.wpa.pairwise if net.wpa else ())))),
        akms=tuple(sorted(set((net.rsn.akms if net.rsn else ()) + (net.wpa.akms if net.wpa else ())))),
        pmf=pmf,
        tkip=net.uses_tkip,
        wps=net.wps,
        wps_configured=net.wps_configured,
        wps_locked=net.wps_locked,
        source=source,
        frames=net.frames,
        malformed=tuple(net.malformed),
    )


def _octets(mac: str) -> list[int] | None:
    parts = mac.lower().replace("-", ":").split(":")
    try:
        out = [int(p, 16) for p in parts]
    except ValueError:
        return None
    return out if len(out) == 6 and all(0 <= o < 256 for o in out) else None


def owner(bssid: str, sweep: SweepRecord) -> tuple[str, str, DeviceRecord] | None:
    """(address, how, device) of the swept device a BSSID belongs to, if exactly one fits."""
    b = _octets(bssid)
    if b is None:
        return None
    exact, near = [], []
    for host in sweep.hosts:
        m = _octets(host.device.mac or "")
        if m is None:
            continue
        if m == b:
            exact.append(host)
        elif m[:5] == b[:5] and abs(m[5] - b[5]) <= NEAR:
            near.append(host)
    if len(exact) == 1:
        return exact[0].address, f"BSSID is its MAC ({exact[0].device.mac})", exact[0].device
    if not exact and len(near) == 1:
        return near[0].address, f"BSSID next to its MAC ({near[0].device.mac})", near[0].device
    return None


def judge(address: str, observations: Sequence[WifiNetwork]) -> list[Finding]:
    """The Wi-Fi checks on one device's (or BSSID's) networks."""
    view = checks_mod.HostView(address, Mode.SAFE, tuple(observations), None, dt.date.today(), vantage="air")
    registry = checks_mod.load_all()
    return [f for check_id in WIFI_CHECKS for f in registry[check_id](view)]


def run_wifi(args: argparse.Namespace) -> int:
    """Read the capture or listen, judge, record, write reports; exit by --fail-on."""
    if bool(args.pcap) == bool(args.iface):
        raise UsageError("give one of --pcap FILE or --iface MONITOR-INTERFACE")
    if args.pcap:
        source = f"capture {args.pcap}"
        capture = wifi.read_capture(args.pcap)
        judgeable(args.pcap, capture)
        networks = capture.networks
        print(f"edgeaudit: {describe(capture)}", flush=True)
    else:
        if not command.is_root():
            raise UsageError("--iface needs root (a monitor-mode capture)")
        if not 1 <= args.seconds <= 3600:
            raise UsageError("--seconds must be 1..3600")
        source = f"monitor {args.iface}"
        networks = asyncio.run(wifi.listen(args.iface, args.seconds))
    store = Store(args.db or default_path())
    sweep = store.load(store.resolve(args.join)) if args.join else None
    groups: dict[str, list[WifiNetwork]] = {}
    devices: dict[str, DeviceRecord] = {}
    for net in networks:
        obs = observation(net, source)
        found = owner(net.bssid, sweep) if sweep else None
        address = found[0] if found else net.bssid
        groups.setdefault(address, []).append(obs)
        known = found[2] if found else UNJOINED
        devices[address] = dataclasses.replace(known, mac=known.mac or net.bssid, joined_by=found[1] if found else None)
    targets: list[str] = [source] + ([f"join {sweep.id}"] if sweep else [])
    sweep_id = store.begin("wifi", str(Mode.SAFE), {"targets": targets}, {}, "air")
    now = time.time()
    for address, observations in sorted(groups.items()):
        device = dataclasses.replace(devices[address], wifi=tuple(_summary(o) for o in observations))
        store.host_done(sweep_id, HostResult(address, "up", now, now, judge(address, observations), device))
    store.finish(sweep_id, "complete")
    record = store.load(sweep_id)
    print(f"edgeaudit: {len(networks)} wireless network(s) in {source}", flush=True)
    outfiles.write_reports(record, args)
    return command.worst_exit(record.findings, args.fail_on)


def judgeable(path: object, capture: wifi.Capture) -> None:
    """Refuse (exit 2) a capture that yields no network: never a silent "0 networks" and exit 0."""
    if capture.networks:
        return
    where = f"--pcap {path}: {capture.format}, {capture.linktype_names()}"
    if not set(capture.linktypes) & set(wifi_radio.DOT11_LINKTYPES):
        raise UsageError(
            f"{where}: {capture.records} record(s), none on an 802.11 link type "
            "(read: 105 raw 802.11, 127 radiotap, 119 Prism, 163 AVS); nothing to judge"
        )
    if not capture.dot11:
        raise UsageError(f"{where}: no 802.11 frame in the capture; nothing to judge")
    raise UsageError(f"{where}: {capture.dot11} 802.11 frame(s) but no network decoded ({describe(capture)})")


def describe(capture: wifi.Capture) -> str:
    """One line on what the capture held and what of it was dropped."""
    parts = [
        f"{capture.records} record(s) on {capture.linktype_names()}",
        f"{capture.management} beacon/probe response(s)",
        f"{len(capture.networks)} network(s)",
    ]
    if capture.damaged:
        parts.append(f"{capture.damaged} beacon/probe response(s) dropped for a bad FCS")
    if capture.broken:
        parts.append(f"{capture.undecoded} radio header(s) not decoded (first: {capture.broken[0]})")
    if capture.truncated:
        parts.append(f"incomplete: {capture.truncated}")
    return "; ".join(parts)


def _summary(obs: WifiNetwork) -> AirNetwork:
    return AirNetwork(obs.bssid, obs.ssid, obs.channel, obs.security)
