"""Wi-Fi security as a router's own configuration states it (authenticated mode, read-only commands).

Three formats, named by a profile's ``wifi`` block on a read-only command:

- ``uci``: OpenWrt's ``uci show wireless`` (``wireless.SECTION.option='value'``);
- ``hostapd``: a hostapd.conf (``key=value``, a ``bss=`` line starts another network);
- ``lines``: a vendor CLI listing, one network per line, read by the profile's
  ``network`` regex with named groups ``ssid``, ``security`` and optionally
  ``cipher`` and ``wps``.

Every format's words go through one vocabulary (:func:`normalise`), so a
network reads the same whether it came from a capture or a config. A word the
vocabulary does not know is recorded in ``malformed`` (the checks then say
inconclusive, never pass). Parsing is bounded: at most MAX_NETWORKS networks
per output, lines longer than MAX_LINE ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_NETWORKS = 64
MAX_LINE = 1024

# security word (lower case) -> (security, AKMs, WPA1 present)
SECURITY_WORDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "none": ("open", ()),
    "open": ("open", ()),
    "owe": ("owe", ("OWE",)),
    "wep": ("wep", ()),
    "wep-open": ("wep", ()),
    "wep-shared": ("wep", ()),
    "wep+open": ("wep", ()),
    "wep+shared": ("wep", ()),
    "psk": ("wpa", ("PSK",)),
    "wpa-psk": ("wpa", ("PSK",)),
    "wpa": ("wpa", ("802.1X",)),
    "psk2": ("wpa2", ("PSK",)),
    "wpa2-psk": ("wpa2", ("PSK",)),
    "wpa2": ("wpa2", ("802.1X",)),
    "psk-mixed": ("wpa/wpa2", ("PSK",)),
    "wpa-mixed": ("wpa/wpa2", ("802.1X",)),
    "wpa/wpa2-psk": ("wpa/wpa2", ("PSK",)),
    "sae": ("wpa3", ("SAE",)),
    "wpa3-sae": ("wpa3", ("SAE",)),
    "wpa3": ("wpa3", ("802.1X",)),
    "sae-mixed": ("wpa2/wpa3", ("PSK", "SAE")),
    "wpa2/wpa3-psk": ("wpa2/wpa3", ("PSK", "SAE")),
    "wpa3-mixed": ("wpa2/wpa3", ("802.1X",)),
}
CIPHER_WORDS = {
    "ccmp": "CCMP",
    "aes": "CCMP",
    "tkip": "TKIP",
    "gcmp": "GCMP",
    "ccmp256": "CCMP-256",
    "gcmp256": "GCMP-256",
}


@dataclass
class ConfiguredNetwork:
    """One network as the configuration states it."""

    ssid: str
    security: str = "unknown"
    akms: tuple[str, ...] = ()
    pairwise: tuple[str, ...] = ()
    pmf: str = "no"  # "required", "capable", "no"
    wps: bool = False
    where: str = ""  # the uci section, hostapd bss or listing line it came from
    malformed: list[str] = field(default_factory=list)

    @property
    def tkip(self) -> bool:
        """WPA1 enabled, or TKIP as a cipher."""
        return self.security.startswith("wpa/") or self.security == "wpa" or "TKIP" in self.pairwise


def normalise(net: ConfiguredNetwork, security: str, cipher: str | None = None) -> None:
    """Set security, AKMs, ciphers and the default PMF of ``net`` from a security word and a cipher word.

    The security word may carry ciphers as OpenWrt writes them (``psk2+ccmp``,
    ``psk-mixed+tkip+ccmp``). With no cipher named, a network with RSN means
    CCMP (OpenWrt's default) and WPA1 alone means TKIP.
    """
    word = security.strip().lower()
    parts = word.split("+")
    base, ciphers = parts[0], [c for c in parts[1:] if c]
    if base == "wep" and ciphers and set(ciphers) <= {"open", "shared"}:  # wep+open: an auth mode, not a cipher
        ciphers = []
    if cipher:
        ciphers += [c for c in re.split(r"[+/ ,]+", cipher.strip().lower()) if c]
    if base not in SECURITY_WORDS:
        net.malformed.append(f"config: unknown security {security!r}")
        return
    net.security, net.akms = SECURITY_WORDS[base]
    names: list[str] = []
    for c in ciphers:
        if c in ("mixed", "auto"):
            continue
        if c not in CIPHER_WORDS:
            net.malformed.append(f"config: unknown cipher {c!r}")
            return
        names.append(CIPHER_WORDS[c])
    if not names and net.security not in ("open", "wep"):
        names = ["TKIP"] if net.security == "wpa" else ["CCMP"]
    net.pairwise = tuple(sorted(set(names)))
    if net.security == "wpa3":
        net.pmf = "required"
    elif net.security == "wpa2/wpa3":
        net.pmf = "capable"


def _pmf(value: str) -> str:
    return {"2": "required", "1": "capable"}.get(value.strip(), "no")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) <= MAX_LINE]


_UCI = re.compile(r"^wireless\.(?P<section>[A-Za-z0-9_@\[\]-]+)(?:\.(?P<option>[A-Za-z0-9_]+))?='?(?P<value>.*?)'?$")


def parse_uci(text: str) -> list[ConfiguredNetwork]:
    """``uci show wireless``: every enabled wifi-iface in AP mode, on an enabled radio."""
    sections: dict[str, dict[str, str]] = {}
    for line in _lines(text):
        m = _UCI.match(line.strip())
        if not m:
            continue
        opts = sections.setdefault(m["section"], {})
        if m["option"] is None:
            opts["="] = m["value"]
        else:
            opts[m["option"]] = m["value"]
    out: list[ConfiguredNetwork] = []
    for name, opts in sections.items():
        if opts.get("=") != "wifi-iface" or opts.get("mode", "ap") != "ap" or opts.get("disabled") == "1":
            continue
        radio = sections.get(opts.get("device", ""), {})
        if radio.get("disabled") == "1":
            continue
        net = ConfiguredNetwork(opts.get("ssid", ""), where=f"wireless.{name}")
        normalise(net, opts.get("encryption", "none"))
        if "ieee80211w" in opts:
            net.pmf = _pmf(opts["ieee80211w"])
        net.wps = opts.get("wps_pushbutton") == "1" or opts.get("wps_label") == "1"
        out.append(net)
        if len(out) >= MAX_NETWORKS:
            break
    return out


def parse_hostapd(text: str) -> list[ConfiguredNetwork]:
    """A hostapd.conf: the first network, then one per ``bss=`` line."""
    blocks: list[dict[str, str]] = [{}]
    for raw in _lines(text):
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if key == "bss":
            if len(blocks) >= MAX_NETWORKS:
                break
            blocks.append({"bss": value})
            continue
        blocks[-1][key.strip()] = value.strip()
    out: list[ConfiguredNetwork] = []
    for i, opts in enumerate(blocks):
        if "ssid" not in opts and "ssid2" not in opts:
            continue
        net = ConfiguredNetwork(
            opts.get("ssid", opts.get("ssid2", "")), where=opts.get("bss") or opts.get("interface", f"bss {i}")
        )
        try:
            wpa = int(opts.get("wpa", "0"))
        except ValueError:
            net.malformed.append(f"config: wpa={opts['wpa']!r} is not a number")
            out.append(net)
            continue
        mgmt = set(opts.get("wpa_key_mgmt", "WPA-PSK").split())
        if wpa == 0:
            wep = any(f"wep_key{k}" in opts for k in range(4))
            normalise(net, "wep" if wep else "none")
        else:
            sae, psk = (
                bool(mgmt & {"SAE", "FT-SAE", "SAE-EXT-KEY"}),
                bool(mgmt & {"WPA-PSK", "FT-PSK", "WPA-PSK-SHA256"}),
            )
            if mgmt == {"OWE"}:
                word = "owe"
            elif wpa & 1:
                word = "psk-mixed" if wpa & 2 else "psk"
            else:
                word = "sae-mixed" if sae and psk else ("sae" if sae else "psk2")
            if not (sae or psk) and mgmt != {"OWE"}:
                word = {"psk": "wpa", "psk-mixed": "wpa-mixed", "psk2": "wpa2"}.get(word, word)
            # hostapd's defaults: wpa_pairwise=TKIP, and rsn_pairwise takes wpa_pairwise's value when unset
            wpa_p = opts.get("wpa_pairwise", "TKIP").split()
            rsn_p = opts.get("rsn_pairwise", " ".join(wpa_p)).split()
            ciphers = sorted({*(wpa_p if wpa & 1 else []), *(rsn_p if wpa & 2 else [])})
            normalise(net, word, " ".join(ciphers) or None)
            if "ieee80211w" in opts:
                net.pmf = _pmf(opts["ieee80211w"])
        net.wps = opts.get("wps_state", "0") in ("1", "2")
        out.append(net)
    return out


def parse_lines(text: str, network: re.Pattern[str]) -> list[ConfiguredNetwork]:
    """A vendor listing: one network per line that ``network`` matches (groups ssid, security, cipher, wps)."""
    out: list[ConfiguredNetwork] = []
    for number, line in enumerate(_lines(text), 1):
        m = network.search(line)
        if m is None:
            continue
        groups = m.groupdict()
        net = ConfiguredNetwork(groups.get("ssid") or "", where=f"line {number}")
        normalise(net, groups.get("security") or "", groups.get("cipher"))
        net.wps = (groups.get("wps") or "").lower() in ("on", "enable", "enabled", "yes", "1")
        out.append(net)
        if len(out) >= MAX_NETWORKS:
            break
    return out
