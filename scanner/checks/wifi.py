"""Wireless LAN security (MIC Wi-Fi guidance: WPA2 or WPA3, never WEP or TKIP; CIAJ 3.4 case 3).

Judged per network, from two sources:
- ``edgeaudit wifi`` captures (beacons and probe responses), one host per
  BSSID. WPS is judged on the frames seen: an AP that advertises it only to
  some clients may be missed.
- the router's own configuration, read in authenticated mode (uci, hostapd.conf
  or the vendor CLI, per profile): one finding per configured network, under
  the service key ``wifi SSID``.
A network whose RSN, WPA or WPS element (or configured security word) could not
be decoded is inconclusive on the checks that element decides, never passed.
"""

from __future__ import annotations

from collections.abc import Callable

from probes.observations import JSON, WifiNetwork
from scanner.checks import HostView, check, make_finding
from scanner.findings import Finding, Status

WEP = "CIAJ-3.4-WIFI-WEP"
TKIP = "CIAJ-3.4-WIFI-WPA-TKIP"
OPEN = "CIAJ-3.4-WIFI-OPEN"
WPS = "CIAJ-3.4-WIFI-WPS"
WIFI_CHECKS = (WEP, TKIP, OPEN, WPS)


def _evidence(net: WifiNetwork) -> dict[str, JSON]:
    return {
        "bssid": net.bssid,
        "ssid": net.ssid or "(hidden)",
        "channel": net.channel,
        "security": net.security,
        "group_cipher": net.group_cipher,
        "pairwise": list(net.pairwise),
        "akm": list(net.akms),
        "pmf": net.pmf,
        "wps": net.wps,
        "source": f"{net.source} ({net.where})" if net.where else net.source,
        "frames": net.frames,
    }


CIPHER_ELEMENTS = ("RSN element", "WPA element")


def _judge(
    view: HostView,
    check_id: str,
    verdict: Callable[[WifiNetwork], Status | None],
    about: tuple[str, ...],
    detail: Callable[[WifiNetwork], dict[str, JSON]] | None = None,
) -> list[Finding]:
    """One finding per network; a broken frame, or a broken element the check reads, makes it inconclusive."""
    out: list[Finding] = []
    nets = view.of(WifiNetwork)
    ssids = [n.ssid for n in nets if n.source.startswith("config")]
    for net in nets:
        evidence = _evidence(net)
        bad = [m for m in net.malformed if m.startswith(("frame:", "config:", *about))]
        status: Status | None
        if bad:
            evidence["reason"] = f"could not decode: {bad[0]}"
            status = Status.INCONCLUSIVE
        else:
            status = verdict(net)
            if status is Status.FAIL and detail is not None:
                evidence.update(detail(net))
        if status is not None:
            out.append(make_finding(check_id, view.address, status, view.mode, _key(net, ssids), evidence))
    return out


def _key(net: WifiNetwork, config_ssids: list[str]) -> str | None:
    """Configured networks share their router's address: each gets its own finding key, by SSID,
    and by where it is configured too when the SSID is on more than one (a dual-band router)."""
    if not net.source.startswith("config"):
        return None
    key = f"wifi {net.ssid or '(hidden)'}"
    return f"{key} ({net.where})" if config_ssids.count(net.ssid) > 1 else key


@check(WEP)
def wifi_wep(view: HostView) -> list[Finding]:
    """Privacy bit set and neither RSN nor WPA: WEP, broken for two decades."""
    return _judge(view, WEP, lambda n: Status.FAIL if n.security == "wep" else Status.PASS, CIPHER_ELEMENTS)


def weak(net: WifiNetwork) -> list[str]:
    """What of WPA (v1) and TKIP a network offers: WPA (v1) fails even with CCMP (the MIC guidance: WPA2 or WPA3)."""
    out = ["WPA (v1)"] if net.security == "wpa" or net.security.startswith("wpa/") else []
    if "TKIP" in net.pairwise or net.group_cipher == "TKIP":
        out.append("TKIP")
    return out


@check(TKIP)
def wifi_tkip(view: HostView) -> list[Finding]:
    """WPA1 (whatever its cipher, also beside WPA2: mixed mode), or TKIP as a pairwise or group cipher.

    Judged on protected networks only; a failure names what is offered (``offers``)."""

    def verdict(n: WifiNetwork) -> Status | None:
        if n.security in ("open", "wep", "owe"):
            return None
        return Status.FAIL if n.tkip or weak(n) else Status.PASS

    return _judge(view, TKIP, verdict, CIPHER_ELEMENTS, lambda n: {"offers": weak(n) or ["TKIP"]})


@check(OPEN)
def wifi_open(view: HostView) -> list[Finding]:
    """No encryption at all (Enhanced Open, OWE, encrypts without a password and passes)."""
    return _judge(view, OPEN, lambda n: Status.FAIL if n.security == "open" else Status.PASS, CIPHER_ELEMENTS)


@check(WPS)
def wifi_wps(view: HostView) -> list[Finding]:
    """Wi-Fi Protected Setup advertised: its PIN method can be brute-forced (turn WPS off)."""
    return _judge(view, WPS, lambda n: Status.FAIL if n.wps else Status.PASS, ("WPS element",))
