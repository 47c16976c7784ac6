"""The device record kept in history: what a host is, what it showed, what logged in, what it is set to.

One codec, ``DeviceRecord.to_json``/``from_json``, for the history database and for the
report document (the ``device`` of reports/schema.json). Fingerprints are typed entries
(service, kind, value; an IPP queue's path apart); what a kind means (an identity, a
private key) is a property of the kind. Records written before fingerprints were typed
keep that meaning in the key (``"tcp/22 host key"``): ``from_json`` reads them, and no
other code parses such keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import profiles
from probes.observations import (
    JSON,
    Banner,
    ConfigFacts,
    DhcpOffer,
    HostAlive,
    HostKey,
    HttpInfo,
    IppInfo,
    LoginResult,
    NtpInfo,
    Observation,
    Service,
    SipInfo,
    SnmpInfo,
    UpnpInfo,
    WifiNetwork,
)
from profiles.errors import StoreError


class Kind(StrEnum):
    """What a fingerprint is (its value is the device's own text, hostile input)."""

    BANNER = "banner"  # SSH / Telnet / FTP greeting
    SERVER = "server"  # HTTP Server header
    TITLE = "title"  # HTML <title>
    CERTIFICATE = "certificate"  # SHA-256 of the TLS certificate
    SIP = "sip"  # SIP Server or User-Agent
    IPP_MAKE_AND_MODEL = "ipp make-and-model"  # printer-make-and-model of one queue (path)
    IPP_FIRMWARE = "ipp firmware"  # printer-firmware-string-version of one queue (path)
    ENGINE_ID = "engine-id"  # SNMP snmpEngineID
    SYS_DESCR = "sysDescr"  # SNMP sysDescr.0
    PRINTER_SERIAL = "printer serial"  # Printer-MIB prtGeneralSerialNumber
    UPNP = "upnp"  # SSDP SERVER and USN
    NTP = "ntp"  # stratum, leap indicator, reference id
    HOST_KEY = "host key"  # SSH host key: algorithm and fingerprint
    AUTH_METHODS = "auth methods"  # SSH authentication methods offered

    @property
    def identity(self) -> bool:
        """Long-lived and the device's own: the same one seen from two vantages is the same device."""
        return self in _IDENTITY

    @property
    def private_key(self) -> bool:
        """Proves a private key: two devices showing the same one share that key."""
        return self in _PRIVATE_KEY

    @property
    def per_path(self) -> bool:
        """Recorded per IPP path (one printer, or each queue of a print server, per port)."""
        return self in _PER_PATH


_PRIVATE_KEY = frozenset({Kind.HOST_KEY, Kind.CERTIFICATE})
_IDENTITY = _PRIVATE_KEY | {Kind.ENGINE_ID}
_PER_PATH = {Kind.IPP_MAKE_AND_MODEL: "make-and-model", Kind.IPP_FIRMWARE: "firmware"}  # -> the label's tail
_BY_VALUE = {str(k): k for k in Kind}


@dataclass(frozen=True)
class Fingerprint:
    """One thing a service said about the device."""

    service: str  # the service's key, "tcp/22"
    kind: Kind
    value: str
    path: str = ""  # per-path kinds only: the IPP path ("/ipp/print", "/printers/office")

    def __post_init__(self) -> None:
        if bool(self.path) != self.kind.per_path:
            raise ValueError(f"fingerprint {self.kind}: path {self.path!r} (a path is for IPP kinds, and needed)")

    @property
    def slot(self) -> tuple[str, Kind, str]:
        """What one record holds one value of: (service, kind, path)."""
        return (self.service, self.kind, self.path)

    @property
    def label(self) -> str:
        """For people (evidence, diff): ``tcp/22 host key``, ``tcp/631 ipp /ipp/print make-and-model``."""
        if self.kind.per_path:
            return f"{self.service} ipp {self.path} {_PER_PATH[self.kind]}"
        return f"{self.service} {self.kind}"

    def to_json(self) -> dict[str, JSON]:
        """JSON form."""
        out: dict[str, JSON] = {"service": self.service, "kind": str(self.kind), "value": self.value}
        if self.path:
            out["path"] = self.path
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> Fingerprint:
        """Inverse of ``to_json``."""
        return cls(_str(data, "service"), Kind(_str(data, "kind")), _str(data, "value"), _str(data, "path", ""))

    @classmethod
    def from_legacy(cls, name: str, value: str) -> Fingerprint:
        """An entry of the string-keyed map earlier versions wrote (``"udp/161 engine-id": "80001f88..."``)."""
        service, _, said = name.partition(" ")
        kind = _BY_VALUE.get(said)
        if kind is not None and not kind.per_path:
            return cls(service, kind, value)
        if said.startswith("ipp "):  # "ipp <path> make-and-model": the path may hold anything but its end
            path, _, tail = said.removeprefix("ipp ").rpartition(" ")
            for kind, label_tail in _PER_PATH.items():
                if tail == label_tail and path:
                    return cls(service, kind, value, path)
        raise StoreError(f"device record: unknown fingerprint {name!r}")


@dataclass(frozen=True)
class Login:
    """A credential that logged in (the password is a secret: reports mask it)."""

    service: str  # the service's key
    username: str
    password: str
    source: str | None  # "profile:<id>", "generic", "extended", "anonymous", "snmp-default", "user"

    def to_json(self) -> dict[str, JSON]:
        """JSON form."""
        return {"service": self.service, "username": self.username, "password": self.password, "source": self.source}

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> Login:
        """Inverse of ``to_json``."""
        source = data.get("source")
        return cls(_str(data, "service"), _str(data, "username"), _str(data, "password"), _opt(source, "source"))


@dataclass(frozen=True)
class Settings:
    """What the device's own configuration (or DHCP server) says: compared between sweeps. None: not read."""

    config_sha256: str | None = None  # hash of the read-only configuration output
    dns_servers: tuple[str, ...] | None = None  # the resolvers in its configuration, sorted
    dhcp_dns: tuple[str, ...] | None = None  # the resolvers its DHCP server hands out, in its order
    wifi: tuple[str, ...] | None = None  # its configured networks, "SSID: security pairwise[ WPS]", sorted

    def to_json(self) -> dict[str, JSON]:
        """JSON form: only the settings that were read."""
        out: dict[str, JSON] = {}
        if self.config_sha256 is not None:
            out["config_sha256"] = self.config_sha256
        for name, servers in (("dhcp_dns", self.dhcp_dns), ("dns_servers", self.dns_servers), ("wifi", self.wifi)):
            if servers is not None:
                out[name] = list(servers)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> Settings:
        """Inverse of ``to_json``."""
        return cls(
            _opt(data.get("config_sha256"), "config_sha256"),
            _strs(data, "dns_servers"),
            _strs(data, "dhcp_dns"),
            _strs(data, "wifi"),
        )


@dataclass(frozen=True)
class AirNetwork:
    """A wireless network seen over the air (``edgeaudit wifi``) on the device it was joined to."""

    bssid: str
    ssid: str
    channel: int | None
    security: str

    def to_json(self) -> dict[str, JSON]:
        """JSON form."""
        return {"bssid": self.bssid, "ssid": self.ssid, "channel": self.channel, "security": self.security}

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> AirNetwork:
        """Inverse of ``to_json``."""
        channel = data.get("channel")
        if channel is not None and (not isinstance(channel, int) or isinstance(channel, bool)):
            raise StoreError(f"device record: channel {channel!r} is not a number")
        return cls(_str(data, "bssid"), _str(data, "ssid"), channel, _str(data, "security"))


@dataclass(frozen=True)
class DeviceRecord:
    """A host as one sweep recorded it: identity (from the matched profile), services, fingerprints, ..."""

    profile: str | None = None
    device_class: str | None = None  # "class" in JSON: router, pbx, mfp, ...
    vendor: str | None = None
    product: str | None = None
    model: str | None = None
    firmware: str | None = None
    mac: str | None = None
    services: tuple[Service, ...] = ()
    fingerprints: tuple[Fingerprint, ...] = ()  # at most one per slot
    logins: tuple[Login, ...] = ()
    settings: Settings = field(default_factory=Settings)
    wan_address: str | None = None  # merge: the WAN host joined to this LAN device
    vantage: str | None = None  # merge: "wan" on a WAN host joined to no LAN device
    joined_by: str | None = None  # wifi: how the networks' BSSID was tied to this device
    wifi: tuple[AirNetwork, ...] = ()  # wifi: the networks seen over the air

    def __post_init__(self) -> None:
        slots = [f.slot for f in self.fingerprints]
        if len(set(slots)) != len(slots):
            raise ValueError("a device record holds one fingerprint per (service, kind, path)")

    def fingerprint(self, service: str, kind: Kind, path: str = "") -> str | None:
        """The value of one fingerprint, None when the record has none."""
        return next((f.value for f in self.fingerprints if f.slot == (service, kind, path)), None)

    def to_json(self) -> dict[str, JSON]:
        """JSON form (secrets unmasked: mask at render time)."""
        out: dict[str, JSON] = {
            "profile": self.profile,
            "class": self.device_class,
            "vendor": self.vendor,
            "product": self.product,
            "model": self.model,
            "firmware": self.firmware,
            "mac": self.mac,
            "services": [s.to_json() for s in self.services],
            "fingerprints": [f.to_json() for f in self.fingerprints],
            "logins": [x.to_json() for x in self.logins],
            "settings": self.settings.to_json(),
        }
        for name, value in (("wan_address", self.wan_address), ("vantage", self.vantage)):
            if value is not None:
                out[name] = value
        if self.joined_by is not None or self.wifi:
            out["joined_by"] = self.joined_by
            out["wifi"] = [n.to_json() for n in self.wifi]
        return out

    @classmethod
    def from_json(cls, data: JSON) -> DeviceRecord:
        """Inverse of ``to_json``; also reads the records earlier versions wrote (missing keys, keyed fingerprints)."""
        if not isinstance(data, dict):
            raise StoreError(f"device record: not an object: {data!r:.80}")
        try:
            prints = data.get("fingerprints") or []
            if isinstance(prints, dict):  # written before fingerprints were typed
                fingerprints = [Fingerprint.from_legacy(str(k), _text(v, str(k))) for k, v in prints.items()]
            else:
                fingerprints = [Fingerprint.from_json(_obj(p)) for p in _list(prints, "fingerprints")]
            text = {name: _opt(data.get(name), name) for name in _TEXT_KEYS}
            return cls(
                profile=text["profile"],
                device_class=text["class"],
                vendor=text["vendor"],
                product=text["product"],
                model=text["model"],
                firmware=text["firmware"],
                mac=text["mac"],
                wan_address=text["wan_address"],
                vantage=text["vantage"],
                joined_by=text["joined_by"],
                services=tuple(_service(_obj(s)) for s in _list(data.get("services") or [], "services")),
                fingerprints=tuple(sort_fingerprints(fingerprints)),
                logins=tuple(Login.from_json(_obj(x)) for x in _list(data.get("logins") or [], "logins")),
                settings=Settings.from_json(_obj(data.get("settings") or {})),
                wifi=tuple(AirNetwork.from_json(_obj(n)) for n in _list(data.get("wifi") or [], "wifi")),
            )
        except (ValueError, TypeError) as exc:  # an unknown kind, a path where none belongs, two of one slot
            raise StoreError(f"device record: {exc}") from exc


@dataclass(frozen=True)
class Baseline:
    """A host as an earlier sweep recorded it: what configuration drift is measured against."""

    sweep_id: str
    started_at: float
    device: DeviceRecord


_TEXT_KEYS = (
    "profile", "class", "vendor", "product", "model", "firmware", "mac", "wan_address", "vantage", "joined_by",
)  # fmt: skip


def sort_fingerprints(fingerprints: Iterable[Fingerprint]) -> list[Fingerprint]:
    """A record's order: by service, kind, path."""
    return sorted(fingerprints, key=lambda f: (f.service, str(f.kind), f.path))


def _service(data: Mapping[str, JSON]) -> Service:
    port = data.get("port")
    if not isinstance(port, int) or isinstance(port, bool):
        raise StoreError(f"device record: service port {port!r} is not a number")
    return Service(port, _str(data, "transport"), _str(data, "name"))


def _obj(value: JSON) -> Mapping[str, JSON]:
    if not isinstance(value, dict):
        raise StoreError(f"device record: {value!r:.80} is not an object")
    return value


def _list(value: JSON, name: str) -> list[JSON]:
    if not isinstance(value, list):
        raise StoreError(f"device record: {name} is not a list")
    return value


def _text(value: JSON, name: str) -> str:
    if not isinstance(value, str):
        raise StoreError(f"device record: {name} {value!r:.80} is not text")
    return value


def _opt(value: JSON, name: str) -> str | None:
    return None if value is None else _text(value, name)


def _str(data: Mapping[str, JSON], name: str, default: str | None = None) -> str:
    if name not in data and default is not None:
        return default
    return _text(data.get(name), name)


def _strs(data: Mapping[str, JSON], name: str) -> tuple[str, ...] | None:
    value = data.get(name)
    return None if value is None else tuple(_text(v, name) for v in _list(value, name))


def describe(
    observations: Iterable[Observation], services: Iterable[Service], match: profiles.Match | None
) -> DeviceRecord:
    """The device record kept in history, from what a host showed: identity and fingerprints (for diffs)."""
    prints: dict[tuple[str, Kind, str], Fingerprint] = {}  # one per slot: the last observation wins
    logins: list[Login] = []  # credentials that worked (secrets: masked in reports)
    # what the device's own configuration says (drift between sweeps)
    config_sha256: str | None = None
    dns_servers: tuple[str, ...] | None = None
    dhcp_dns: tuple[str, ...] | None = None
    wifi: list[str] = []
    mac = None

    def add(svc: Service, kind: Kind, value: str, path: str = "") -> None:
        fp = Fingerprint(svc.key, kind, value, path)
        prints[fp.slot] = fp

    for obs in observations:
        svc = obs.service
        if isinstance(obs, HostAlive) and obs.mac:
            mac = obs.mac
        if svc is None:
            continue
        if isinstance(obs, Banner):
            add(svc, Kind.BANNER, obs.text)
        elif isinstance(obs, HttpInfo):
            add(svc, Kind.SERVER, obs.server or "")
            add(svc, Kind.TITLE, obs.title or "")
            if obs.cert_sha256:
                add(svc, Kind.CERTIFICATE, obs.cert_sha256)
        elif isinstance(obs, SipInfo):
            add(svc, Kind.SIP, obs.server or obs.user_agent or "")
        elif isinstance(obs, IppInfo):  # what the printer (or each print-server queue) says it is
            if obs.make_and_model:
                add(svc, Kind.IPP_MAKE_AND_MODEL, obs.make_and_model, obs.path)
            if obs.firmware:
                add(svc, Kind.IPP_FIRMWARE, ", ".join(obs.firmware), obs.path)
        elif isinstance(obs, SnmpInfo):
            if obs.engine_id:
                add(svc, Kind.ENGINE_ID, obs.engine_id)
            if obs.sys_descr:
                add(svc, Kind.SYS_DESCR, obs.sys_descr)
            if obs.printer_serial:  # a printer's own serial number: the same device across address changes
                add(svc, Kind.PRINTER_SERIAL, obs.printer_serial)
        elif isinstance(obs, UpnpInfo):
            add(svc, Kind.UPNP, " ".join(x for x in (obs.server, obs.usn) if x))
        elif isinstance(obs, NtpInfo):
            add(svc, Kind.NTP, f"stratum {obs.stratum} leap {obs.leap} ref {obs.ref_id}")
        elif isinstance(obs, HostKey):
            add(svc, Kind.HOST_KEY, f"{obs.algorithm} {obs.fingerprint}")
            if obs.auth_methods:
                add(svc, Kind.AUTH_METHODS, ",".join(obs.auth_methods))
        elif isinstance(obs, ConfigFacts):
            if obs.config_sha256:
                config_sha256 = obs.config_sha256
            if obs.dns_servers is not None:
                dns_servers = tuple(sorted(obs.dns_servers))
        elif isinstance(obs, DhcpOffer):
            dhcp_dns = tuple(obs.dns_servers)  # in the server's order: clients try the first one first
        elif isinstance(obs, WifiNetwork) and obs.source.startswith("config"):
            wifi.append(f"{obs.ssid}: {obs.security} {'+'.join(obs.pairwise) or '-'}{' WPS' if obs.wps else ''}")
        elif isinstance(obs, LoginResult) and obs.username is not None and not obs.accepts_anything:
            logins.append(Login(svc.key, obs.username, obs.password or "", obs.source))
    return DeviceRecord(
        profile=match.profile.id if match else None,
        device_class=match.profile.device_class if match else None,
        vendor=match.profile.vendor if match else None,
        product=match.profile.product if match else None,
        model=match.model if match else None,
        firmware=match.version if match else None,
        mac=mac,
        services=tuple(sorted(services)),
        fingerprints=tuple(sort_fingerprints(prints.values())),
        logins=tuple(logins),
        settings=Settings(config_sha256, dns_servers, dhcp_dns, tuple(sorted(wifi)) if wifi else None),
    )
