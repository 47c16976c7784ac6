"""What one emulated device is, as the lab YAML writes it: its persona, services and weaknesses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FAX_SETTINGS = ("double_entry", "memory_reception", "direct_dial", "pc_fax", "forwarding")
DEFAULT_PORTS = {
    "ftp": 21, "ssh": 22, "telnet": 23, "http": 80, "snmp": 161, "ntp": 123, "sip": 5060, "sip_tcp": 5060,
    "ipp": 631, "pjl": 9100, "dns": 53, "ssdp": 1900,
}  # fmt: skip
TCP_SERVICES = ("ftp", "ssh", "telnet", "http", "ipp", "pjl", "sip_tcp")


@dataclass
class DeviceSpec:
    """One emulated device, as written in the lab YAML."""

    name: str
    address: str
    persona: str  # router | mfp | pbx | phone
    model: str
    firmware: str
    services: dict[str, int]
    communities: list[str] = field(default_factory=list)
    http_mode: str = "basic"  # basic | form | redirect | open
    ntp_stratum: int = 3
    clock_skew_s: float = 0.0  # the device clock minus real time (NTP, HTTP Date, SIP Date, hrSystemDate)
    ntp_control: list[int] = field(default_factory=list)  # NTP modes answered besides 3: 6 (READVAR), 7 (monlist)
    hang: list[str] = field(default_factory=list)  # services that accept but never answer
    garbage: list[str] = field(default_factory=list)  # services that answer junk
    users: dict[str, str] = field(default_factory=dict)  # admin accounts (SSH, Telnet, HTTP, FTP)
    lockout_after: int | None = None  # lock an account after this many failed logins
    lockout_window_s: float | None = None  # ... within this many seconds (None: it never forgets a failure)
    refusal_delay_s: float = 0.0  # a refused FTP, Telnet or SSH login is answered this late (pam_faildelay: 3 s)
    cli: str | None = None  # SSH CLI persona: yamaha | cisco (default cisco-like)
    logging: dict[str, Any] = field(default_factory=lambda: {"enabled": True, "remote": []})
    ntp_servers: list[str] = field(default_factory=list)
    sip_user_agent: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)  # SIP user -> password
    guest_calls: bool = False  # unauthenticated INVITEs reach the dialplan
    answer_after_s: float | None = None  # a routed call is answered (200) this long after 183; 0: at once, no
    # provisional; None: the trunk never answers (503 when the dial plan's Dial times out, as recorded)
    guest_routes: list[str] = field(default_factory=list)  # dial prefixes the guest context routes out
    auth_reject_uniform: bool = True  # same answer for unknown users and wrong passwords
    refer_allowed: bool = False  # out-of-dialog REFER (transfer) accepted from anyone
    options_reveal_users: bool = False  # OPTIONS to an unknown user gets 404, to a known one 200
    sip_wrong_secret: str = "403"  # a checked wrong answer gets "403" (chan_sip) or "challenge" (a fresh 401)
    sip_dialplan: list[str] | None = None  # guest context patterns OPTIONS answers from (None: extensions, routes)
    ftp_anonymous: bool = False
    host_key_seed: str | None = None  # devices with the same seed share one SSH host key (a cloned image)
    wan_address: str | None = None  # the node's WAN address, where ``wan_services`` also listen
    wan_services: list[str] = field(default_factory=list)  # services reachable from outside (no WAN filtering)
    dns_servers: list[str] = field(default_factory=list)  # the router's upstream resolvers, as its config shows them
    # Wireless networks as the router's config shows them: {ssid, security, cipher, wps, pmf}; security is one of
    # none, wep, wpa-psk, wpa2-psk, wpa/wpa2-psk, wpa3-sae, wpa2/wpa3-psk (the CLI family renders its own words)
    wifi: list[dict[str, Any]] = field(default_factory=list)
    http_title: str | None = None  # the web UI's page title, when not the persona's own
    fax: dict[str, bool] = field(default_factory=dict)  # MFP fax settings (FAX_SETTINGS), read over SNMP
    ipp_auth: str = "none"  # IPP job submission: none (anyone) | basic (ipps URI, TLS and a password required)
    # every service hostile (lab.emulator.hostile): garbage | valid-then-garbage | huge | drip; dns and ssdp
    # are served only by a hostile device
    hostile: str | None = None
    hostile_seed: int = 0
    drip_ms: float = 200.0  # drip: one byte this often

    def listen_on(self, service: str) -> list[str]:
        """The addresses one service listens on: the LAN address, and the WAN one when it is exposed there."""
        if self.wan_address and service in self.wan_services:
            return [self.address, self.wan_address]
        return [self.address]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceSpec:
        """Build from YAML; services may be a list of names (default ports) or a name->port map."""
        services = data.get("services", [])
        if isinstance(services, list):
            services = {s: DEFAULT_PORTS[s] for s in services}
        unknown_fax = set(data.get("fax") or {}) - set(FAX_SETTINGS)
        if unknown_fax:
            raise ValueError(f"{data['name']}: unknown fax settings {sorted(unknown_fax)}")
        return cls(
            name=data["name"],
            address=data["address"],
            persona=data["persona"],
            model=data["model"],
            firmware=str(data["firmware"]),
            services=dict(services),
            communities=list(data.get("communities", [])),
            http_mode=data.get("http_mode", "basic"),
            ntp_stratum=int(data.get("ntp_stratum", 3)),
            clock_skew_s=float(data.get("clock_skew_s", 0)),
            ntp_control=[int(m) for m in data.get("ntp_control", [])],
            hang=list(data.get("hang", [])),
            garbage=list(data.get("garbage", [])),
            users={str(k): str(v) for k, v in (data.get("users") or {}).items()},
            lockout_after=data.get("lockout_after"),
            lockout_window_s=data.get("lockout_window_s"),
            refusal_delay_s=float(data.get("refusal_delay_s", 0.0)),
            cli=data.get("cli"),
            logging=dict(data.get("logging") or {"enabled": True, "remote": []}),
            ntp_servers=[str(s) for s in data.get("ntp_servers", [])],
            sip_user_agent=data.get("sip_user_agent"),
            extensions={str(k): str(v) for k, v in (data.get("extensions") or {}).items()},
            guest_calls=bool(data.get("guest_calls", False)),
            answer_after_s=None if data.get("answer_after_s") is None else float(data["answer_after_s"]),
            guest_routes=[str(r) for r in data.get("guest_routes", [])],
            auth_reject_uniform=bool(data.get("auth_reject_uniform", True)),
            refer_allowed=bool(data.get("refer_allowed", False)),
            options_reveal_users=bool(data.get("options_reveal_users", False)),
            sip_dialplan=None if data.get("sip_dialplan") is None else [str(p) for p in data["sip_dialplan"]],
            sip_wrong_secret=str(data.get("sip_wrong_secret", "403")),
            ftp_anonymous=bool(data.get("ftp_anonymous", False)),
            host_key_seed=data.get("host_key_seed"),
            wan_address=data.get("wan_address"),
            wan_services=[str(x) for x in data.get("wan_services", [])],
            dns_servers=[str(x) for x in data.get("dns_servers", [])],
            wifi=[dict(w) for w in data.get("wifi", [])],
            ipp_auth=str(data.get("ipp_auth", "none")),
            fax={str(k): bool(v) for k, v in (data.get("fax") or {}).items()},
            http_title=data.get("http_title"),
            hostile=data.get("hostile"),
            hostile_seed=int(data.get("hostile_seed", 0)),
            drip_ms=float(data.get("drip_ms", 200.0)),
        )
