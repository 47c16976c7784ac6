"""Wi-Fi security from the router's own configuration: uci, hostapd.conf and a vendor CLI (authenticated mode)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

import profiles
from probes.observations import Mode
from probes.wifi.config import parse_hostapd, parse_lines, parse_uci
from scanner.orchestrator import Engine, HostResult
from tests.conftest import StartDevice, config_for, with_settings

# As `uci show wireless` prints /etc/config/wireless (the shape of the OpenWrt wireless documentation's examples).
UCI = """\
wireless.radio0=wifi-device
wireless.radio0.type='mac80211'
wireless.radio0.band='2g'
wireless.radio1=wifi-device
wireless.radio1.type='mac80211'
wireless.radio1.disabled='1'
wireless.default_radio0=wifi-iface
wireless.default_radio0.device='radio0'
wireless.default_radio0.network='lan'
wireless.default_radio0.mode='ap'
wireless.default_radio0.ssid='Home'
wireless.default_radio0.encryption='sae-mixed'
wireless.default_radio0.key='not-read'
wireless.default_radio0.ieee80211w='1'
wireless.legacy=wifi-iface
wireless.legacy.device='radio0'
wireless.legacy.mode='ap'
wireless.legacy.ssid='Printer'
wireless.legacy.encryption='psk-mixed+tkip+ccmp'
wireless.legacy.wps_pushbutton='1'
wireless.guest=wifi-iface
wireless.guest.device='radio0'
wireless.guest.mode='ap'
wireless.guest.ssid='Guest'
wireless.guest.encryption='none'
wireless.old=wifi-iface
wireless.old.device='radio0'
wireless.old.mode='ap'
wireless.old.ssid='Old'
wireless.old.encryption='wep+shared'
wireless.off=wifi-iface
wireless.off.device='radio0'
wireless.off.mode='ap'
wireless.off.ssid='Switched off'
wireless.off.encryption='none'
wireless.off.disabled='1'
wireless.five=wifi-iface
wireless.five.device='radio1'
wireless.five.mode='ap'
wireless.five.ssid='On a disabled radio'
wireless.five.encryption='none'
wireless.uplink=wifi-iface
wireless.uplink.device='radio0'
wireless.uplink.mode='sta'
wireless.uplink.ssid='Neighbour'
wireless.uplink.encryption='psk2'
"""

HOSTAPD = """\
# hostapd.conf
interface=wlan0
driver=nl80211
ssid=Office
wpa=2
wpa_key_mgmt=WPA-PSK SAE
rsn_pairwise=CCMP
ieee80211w=1
wps_state=0
bss=wlan0_1
ssid=Defaults
wpa=2
wpa_key_mgmt=WPA-PSK
bss=wlan0_2
ssid=Ancient
wep_key0="abcde"
wep_default_key=0
bss=wlan0_3
ssid=Lobby
wpa=3
wpa_pairwise=TKIP CCMP
rsn_pairwise=CCMP
wps_state=2
bss=wlan0_4
ssid=Strict
wpa=2
wpa_key_mgmt=SAE
rsn_pairwise=CCMP
ieee80211w=2
"""


def test_uci_reads_enabled_access_points_only() -> None:
    nets = {n.ssid: n for n in parse_uci(UCI)}
    assert set(nets) == {"Home", "Printer", "Guest", "Old"}  # disabled iface, disabled radio, client mode left out
    assert (nets["Home"].security, nets["Home"].pmf, nets["Home"].tkip) == ("wpa2/wpa3", "capable", False)
    assert nets["Home"].pairwise == ("CCMP",) and set(nets["Home"].akms) == {"PSK", "SAE"}
    assert (nets["Printer"].security, nets["Printer"].pairwise, nets["Printer"].tkip) == (
        "wpa/wpa2",
        ("CCMP", "TKIP"),
        True,
    )
    assert nets["Printer"].wps and not nets["Home"].wps
    assert nets["Guest"].security == "open" and nets["Old"].security == "wep"
    assert all(not n.malformed for n in nets.values())


def test_hostapd_conf_applies_hostapds_own_defaults() -> None:
    nets = {n.ssid: n for n in parse_hostapd(HOSTAPD)}
    assert (nets["Office"].security, nets["Office"].pairwise, nets["Office"].pmf) == ("wpa2/wpa3", ("CCMP",), "capable")
    # wpa=2 with no cipher set: hostapd's wpa_pairwise default is TKIP, and rsn_pairwise takes it
    assert nets["Defaults"].security == "wpa2" and nets["Defaults"].pairwise == ("TKIP",) and nets["Defaults"].tkip
    assert nets["Ancient"].security == "wep"
    assert nets["Lobby"].security == "wpa/wpa2" and nets["Lobby"].tkip and nets["Lobby"].wps
    assert (nets["Strict"].security, nets["Strict"].pmf, nets["Strict"].tkip) == ("wpa3", "required", False)


def test_vendor_lines_and_unknown_words_are_recorded_not_guessed() -> None:
    network = re.compile(r"^\s*ssid (?P<ssid>\S+) security (?P<security>\S+)(?: cipher (?P<cipher>\S+))?")
    text = "Wireless LAN configuration\n ssid A security wpa2-psk cipher aes\n ssid B security wpa9-quantum\n"
    a, b = parse_lines(text, network)
    assert (a.security, a.pairwise, a.malformed) == ("wpa2", ("CCMP",), [])
    assert b.security == "unknown" and b.malformed == ["config: unknown security 'wpa9-quantum'"]
    bad_cipher = parse_uci(
        "wireless.r=wifi-device\nwireless.x=wifi-iface\nwireless.x.device='r'\nwireless.x.encryption='psk2+rot13'\n"
    )
    assert bad_cipher[0].malformed == ["config: unknown cipher 'rot13'"]


async def _scan(device_address: str, config_dev: object, auth: Path) -> HostResult:
    config = config_for(config_dev, Mode.DEFAULT)  # type: ignore[arg-type]
    pc = with_settings(config.probe_config, auth_file=str(auth), login_pace_s=0.0)
    engine = Engine(dataclasses.replace(config, probe_config=pc), profiles.load_all())
    return await asyncio.wait_for(engine.scan_host(device_address), 60)


def _auth(tmp_path: Path, address: str, user: str, password: str) -> Path:
    path = tmp_path / f"auth-{address}.toml"
    path.write_text(f'[[device]]\nhost = "{address}"\nusername = "{user}"\npassword = "{password}"\n')
    path.chmod(0o600)
    return path


def _verdicts(result: HostResult) -> dict[tuple[str, str | None], str]:
    return {(f.check_id, f.service): str(f.status) for f in result.findings if "WIFI" in f.check_id}


async def test_vendor_cli_router_with_weak_wifi_fails_each_check_per_network(
    emulated: StartDevice, tmp_path: Path
) -> None:
    weak = await emulated(
        services=["ssh"],
        cli="yamaha",
        users={"admin": "Lab-Own-3"},
        dns_servers=["127.0.0.1"],
        wifi=[
            {"ssid": "HOME", "security": "wpa2-psk", "cipher": "aes", "wps": True},
            {"ssid": "GUEST", "security": "wep"},
            {"ssid": "OLD", "security": "wpa-psk", "cipher": "tkip"},
            {"ssid": "FREE", "security": "none"},
        ],
    )
    result = await _scan(weak.spec.address, weak, _auth(tmp_path, weak.spec.address, "admin", "Lab-Own-3"))
    v = _verdicts(result)
    assert v[("CIAJ-3.4-WIFI-WEP", "wifi GUEST")] == "fail" and v[("CIAJ-3.4-WIFI-WEP", "wifi HOME")] == "pass"
    assert v[("CIAJ-3.4-WIFI-WPA-TKIP", "wifi OLD")] == "fail" and v[("CIAJ-3.4-WIFI-WPA-TKIP", "wifi HOME")] == "pass"
    assert v[("CIAJ-3.4-WIFI-OPEN", "wifi FREE")] == "fail" and v[("CIAJ-3.4-WIFI-OPEN", "wifi OLD")] == "pass"
    assert v[("CIAJ-3.4-WIFI-WPS", "wifi HOME")] == "fail" and v[("CIAJ-3.4-WIFI-WPS", "wifi GUEST")] == "pass"
    assert ("CIAJ-3.4-WIFI-WPA-TKIP", "wifi FREE") not in v  # open and WEP networks are not judged on TKIP
    settings = result.device.settings
    assert settings.dns_servers == ("127.0.0.1",)
    assert settings.wifi is not None and len(settings.wifi) == 4
    assert weak.config_attempts == []


async def test_one_ssid_on_two_radios_gets_a_finding_per_radio(emulated: StartDevice, tmp_path: Path) -> None:
    dual = await emulated(
        services=["ssh", "http"],
        cli="openwrt",
        http_title="OpenWrt - LuCI",
        http_mode="form",
        users={"root": "Lab-Own-5"},
        wifi=[{"ssid": "Home", "security": "wpa2-psk", "cipher": "aes"}, {"ssid": "Home", "security": "wep"}],
    )
    result = await _scan(dual.spec.address, dual, _auth(tmp_path, dual.spec.address, "root", "Lab-Own-5"))
    wep = {f.service: str(f.status) for f in result.findings if f.check_id == "CIAJ-3.4-WIFI-WEP"}
    assert wep == {"wifi Home (wireless.wifinet0)": "pass", "wifi Home (wireless.wifinet1)": "fail"}


async def test_openwrt_router_with_wpa3_passes_and_its_networks_come_from_uci(
    emulated: StartDevice, tmp_path: Path
) -> None:
    good = await emulated(
        services=["ssh", "http"],
        cli="openwrt",
        http_title="OpenWrt - LuCI",
        http_mode="form",
        users={"root": "Lab-Own-4"},
        firmware="23.05.5",
        wifi=[
            {"ssid": "Office", "security": "wpa3-sae", "pmf": 2},
            {"ssid": "Office-legacy", "security": "wpa2/wpa3-psk", "cipher": "aes", "pmf": 1},
        ],
        dns_servers=["127.0.0.53"],
    )
    result = await _scan(good.spec.address, good, _auth(tmp_path, good.spec.address, "root", "Lab-Own-4"))
    assert result.device.profile == "openwrt"
    v = _verdicts(result)
    assert v and set(v.values()) == {"pass"}
    assert {s for _, s in v} == {"wifi Office", "wifi Office-legacy"}
    sources = {str(f.evidence["source"]) for f in result.findings if "WIFI" in f.check_id}
    assert sources == {"config: uci show wireless (wireless.wifinet0)", "config: uci show wireless (wireless.wifinet1)"}
    assert result.device.settings.dns_servers == ("127.0.0.53",)
