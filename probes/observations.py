"""What probes observe: services, and one typed observation per fact (the probes layer's output).

Checks read these; they hold no verdict (that is scanner.findings)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from profiles import FIELDS

JSON = Any  # a value that json.dumps accepts; kept loose on purpose at the edges


class Risk(StrEnum):
    """What a probe may do to a device."""

    SAFE = "safe"  # reads what any client sees; no credentials
    CREDENTIAL = "credential"  # tries credentials, capped and paced
    ACCESS = "access"  # asks a service for access without credentials (SIP INVITE, REGISTER); completes nothing
    INTRUSIVE = "intrusive"  # opt-in extras (PJL, REFER, ...)


class Mode(StrEnum):
    """Sweep mode chosen on the command line; gates probe risk classes."""

    SAFE = "safe"
    DEFAULT = "default"
    INTRUSIVE = "intrusive"

    def allows(self, risk: Risk) -> bool:
        """Whether a probe of this risk class may run in this mode."""
        allowed = {
            Mode.SAFE: {Risk.SAFE},
            Mode.DEFAULT: {Risk.SAFE, Risk.CREDENTIAL, Risk.ACCESS},
            Mode.INTRUSIVE: {Risk.SAFE, Risk.CREDENTIAL, Risk.ACCESS, Risk.INTRUSIVE},
        }
        return risk in allowed[self]


@dataclass(frozen=True, order=True)
class Service:
    """A transport endpoint on a device and the protocol we expect there."""

    port: int
    transport: str  # "tcp" | "udp"
    name: str  # "ssh", "http", "sip", ...

    @property
    def key(self) -> str:
        """Stable text form, e.g. ``tcp/22``."""
        return f"{self.transport}/{self.port}"

    def to_json(self) -> dict[str, JSON]:
        """JSON form."""
        return {"port": self.port, "transport": self.transport, "name": self.name}


@dataclass(frozen=True)
class Observation:
    """Base of every observation a probe returns."""

    kind: ClassVar[str] = "observation"
    proves_open: ClassVar[bool] = False  # an answer on this service proves it is up

    service: Service | None


@dataclass(frozen=True)
class PortState(Observation):
    """TCP connect result: open, closed (refused) or filtered (no answer)."""

    kind: ClassVar[str] = "port"
    state: str = "filtered"

    @property
    def is_open(self) -> bool:
        """True when the port accepted a connection."""
        return self.state == "open"


@dataclass(frozen=True)
class HostAlive(Observation):
    """Layer 2/3 evidence that the address is in use (ARP reply, ICMP echo reply)."""

    kind: ClassVar[str] = "alive"
    method: str = ""
    mac: str | None = None


@dataclass(frozen=True)
class Banner(Observation):
    """The first line(s) a TCP service sends on connect (SSH, Telnet, FTP)."""

    kind: ClassVar[str] = "banner"
    proves_open: ClassVar[bool] = True
    protocol: str = ""
    text: str = ""
    login_prompt: bool = False


@dataclass(frozen=True)
class HttpInfo(Observation):
    """Response to ``GET /`` on an HTTP(S) service."""

    kind: ClassVar[str] = "http"
    proves_open: ClassVar[bool] = True
    tls: bool = False
    status: int = 0
    server: str | None = None
    title: str | None = None
    auth_scheme: str | None = None  # from WWW-Authenticate: "basic", "digest", ...
    realm: str | None = None
    location: str | None = None
    redirects_to_https: bool = False
    login_form: bool = False
    date: str | None = None
    cert_sha256: str | None = None


@dataclass(frozen=True)
class SipInfo(Observation):
    """Answer to a SIP OPTIONS request."""

    kind: ClassVar[str] = "sip"
    proves_open: ClassVar[bool] = True
    status: int = 0
    reason: str = ""
    server: str | None = None
    user_agent: str | None = None
    allow: tuple[str, ...] = ()
    supported: tuple[str, ...] = ()
    date: str | None = None


@dataclass(frozen=True)
class SnmpInfo(Observation):
    """SNMP agent facts: v3 engine discovery and/or a v1/v2c system group GET."""

    kind: ClassVar[str] = "snmp"
    proves_open: ClassVar[bool] = True
    version: str = ""  # "v3-discovery", "v1", "v2c"
    community: str | None = None  # the community that answered (a secret)
    engine_id: str | None = None
    sys_descr: str | None = None
    sys_object_id: str | None = None
    sys_name: str | None = None
    hr_device_descr: str | None = None  # HOST-RESOURCES-MIB hrDeviceDescr.1
    entity_software_rev: str | None = None  # ENTITY-MIB entPhysicalSoftwareRev.1
    printer_name: str | None = None  # Printer-MIB prtGeneralPrinterName.1 (printers: often the model)
    printer_serial: str | None = None  # Printer-MIB prtGeneralSerialNumber.1


@dataclass(frozen=True)
class NtpInfo(Observation):
    """Answer to an NTP mode 3 client query."""

    kind: ClassVar[str] = "ntp"
    proves_open: ClassVar[bool] = True
    stratum: int = 0
    leap: int = 0
    version: int = 0
    ref_id: str = ""
    offset_s: float | None = None
    kiss: str | None = None  # a Kiss-o'-Death code (stratum 0, RFC 5905 7.4): no clock reading at all

    @property
    def synchronized(self) -> bool:
        """RFC 5905: stratum 16 (or 0, kiss-o'-death) or leap 3 means unsynchronized."""
        return self.leap != 3 and 1 <= self.stratum <= 15


@dataclass(frozen=True)
class SipCallTest(Observation):
    """One unauthenticated INVITE and how the dialog went (CIAJ part 2, toll fraud).

    ``outcome``: "routed" (a ringing/progress reply, or a trunk's 5xx), "answered" (200: the
    scanner sent ACK and BYE at once), "rejected" (404/403/484/...), "challenged" (401/407),
    or "no-final" (nothing final before the deadline; CANCEL was sent).
    """

    kind: ClassVar[str] = "sip-call"
    number: str = ""
    purpose: str = ""  # "baseline" (a random extension), "international", or "transfer" (REFER, --intrusive)
    outcome: str = ""
    statuses: tuple[int, ...] = ()  # final and provisional statuses to the INVITE, in order
    transcript: tuple[str, ...] = ()  # "> INVITE", "< 183 Session Progress", "> CANCEL", ...
    ended: str = ""  # how the scanner ended it: "final reply" (ACKed), "CANCEL", "BYE", "not ended"


@dataclass(frozen=True)
class SipRegisterTest(Observation):
    """A REGISTER without credentials and without Contact (a binding query: nothing is registered)."""

    kind: ClassVar[str] = "sip-register"
    user: str = ""
    status: int = 0
    reason: str = ""

    @property
    def registrar(self) -> bool:
        """Whether it was answered as a registrar answers (a challenge, 2xx, 403 or 404), not as a phone (405/501)."""
        return 200 <= self.status < 300 or self.status in (401, 403, 404, 407)


@dataclass(frozen=True)
class SipSecretTest(Observation):
    """Extension enumeration (REGISTER answers vs a random user's) and capped digest guesses (CIAJ part 2)."""

    kind: ClassVar[str] = "sip-secret"
    baseline_status: int = 0  # a random user's REGISTER (no credentials)
    candidates: int = 0  # extensions to enumerate (default list or --sip-extensions)
    probed: tuple[tuple[str, int], ...] = ()  # (extension, status) of the unauthenticated REGISTERs
    refusal_status: int | None = None  # what a random user's wrong digest answer got (403, or a fresh 401)
    options_baseline_status: int | None = None  # a random user's OPTIONS, when REGISTER told nothing apart
    options_baselines: tuple[tuple[str, int], ...] = ()  # (random user, status), one per candidate shape
    options_probed: tuple[tuple[str, int], ...] = ()  # (extension, status) of those OPTIONS
    enumeration_note: str | None = None  # why the answers could not tell extensions apart, when they could not
    found: tuple[str, ...] = ()  # extensions whose answer differed from the baseline
    weak: tuple[tuple[str, str, str], ...] = ()  # (extension, secret, source) that registered (secret: masked)
    tried: tuple[str, ...] = ()  # "extension (source)" guesses, in order
    skipped: tuple[str, ...] = ()  # guesses the per-extension cap kept back
    not_checked: tuple[str, ...] = ()  # guesses the device did not check (a fresh challenge, 404): not failures
    no_auth: bool = False  # the registrar accepted the REGISTER without asking for credentials
    stopped: str | None = None
    complete: bool = True


@dataclass(frozen=True)
class DnsAnswer(Observation):
    """What the device's resolver answered for one canary name (an A query with RD and DO set)."""

    kind: ClassVar[str] = "dns"
    proves_open: ClassVar[bool] = True
    name: str = ""
    rcode: str = ""  # "NOERROR", "NXDOMAIN", "REFUSED", "SERVFAIL", ...
    recursion_available: bool = False  # RA flag
    authenticated: bool = False  # AD flag: the resolver says it validated the answer with DNSSEC
    addresses: tuple[str, ...] = ()
    expected: tuple[str, ...] = ()  # pinned addresses or a trusted resolver's (empty: nothing to compare with)
    expected_from: str = ""
    resolver: str = ""  # the resolver asked when it is not the device itself (one its DHCP server hands out)


@dataclass(frozen=True)
class DhcpOffer(Observation):
    """What the device's DHCP server hands out to a new client (its OFFER to a DISCOVER, or ACK to an INFORM)."""

    kind: ClassVar[str] = "dhcp"
    proves_open: ClassVar[bool] = True
    method: str = ""  # "discover" or "inform": what got the answer
    server_id: str = ""  # option 54
    dns_servers: tuple[str, ...] = ()  # option 6, in the server's order
    routers: tuple[str, ...] = ()  # option 3
    domain: str = ""  # option 15
    lease_s: int | None = None  # option 51 (an ACK to INFORM carries none)
    unanswered: tuple[tuple[str, str], ...] = ()  # (handed-out resolver, why it gave no answer to compare)


@dataclass(frozen=True)
class WifiNetwork(Observation):
    """One wireless network (BSS) as its beacons and probe responses, or the router's own config, describe it."""

    kind: ClassVar[str] = "wifi"
    bssid: str = ""
    ssid: str = ""
    channel: int | None = None
    security: str = ""  # open, wep, wpa, wpa2, wpa3, wpa2/wpa3, wpa/wpa2, owe, unknown
    group_cipher: str | None = None
    pairwise: tuple[str, ...] = ()
    akms: tuple[str, ...] = ()
    pmf: str = "no"  # "required", "capable" or "no"
    tkip: bool = False
    wps: bool = False
    wps_configured: bool | None = None
    wps_locked: bool | None = None
    source: str = ""  # "capture FILE", "monitor IFACE", or "config: COMMAND"
    where: str = ""  # config only: the uci section, hostapd bss or listing line (one SSID may be on two radios)
    frames: int = 0
    malformed: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpnpInfo(Observation):
    """A UPnP root device: its SSDP answer to M-SEARCH and, when fetched, its device description."""

    kind: ClassVar[str] = "upnp"
    proves_open: ClassVar[bool] = True
    server: str = ""
    location: str = ""
    usn: str = ""
    device_types: tuple[str, ...] = ()  # every deviceType in the description (root first)
    service_types: tuple[str, ...] = ()
    friendly_name: str = ""
    manufacturer: str = ""
    model_name: str = ""
    model_number: str = ""
    description_error: str | None = None  # why the description was not read (then only SSDP is known)

    @property
    def igd(self) -> bool:
        """An Internet Gateway Device: it can open ports in the router's firewall on request."""
        return any("InternetGatewayDevice" in t for t in self.device_types) or any(
            "WANIPConnection" in t or "WANPPPConnection" in t for t in self.service_types
        )


@dataclass(frozen=True)
class IppInfo(Observation):
    """A printer's answer to IPP Get-Printer-Attributes (or the HTTP 401/403 that refused it)."""

    kind: ClassVar[str] = "ipp"
    proves_open: ClassVar[bool] = True
    path: str = ""
    http_status: int = 0
    ipp_status: str = ""  # "successful-ok", ...
    make_and_model: str = ""
    info: str = ""
    firmware: tuple[str, ...] = ()  # "NAME VERSION" per printer-firmware-name/-string-version pair
    printer_uris: tuple[str, ...] = ()
    uri_security: tuple[str, ...] = ()  # per printer URI: none, tls, ...
    uri_authentication: tuple[str, ...] = ()  # per printer URI: none, requesting-user-name, basic, digest, ...
    accepting_jobs: bool = False
    asked: tuple[str, ...] = ()  # every request the probe sent on this service: "OPERATION PATH: status"

    @property
    def asks_for_password(self) -> bool:
        """Whether a job needs more than a claimed name: HTTP auth on the request, or per-URI authentication."""
        if self.http_status in (401, 403) or self.ipp_status == "client-error-not-authenticated":
            return True
        weak = {"none", "requesting-user-name"}
        return bool(self.uri_authentication) and not any(a in weak for a in self.uri_authentication)


@dataclass(frozen=True)
class FaxSetting(Observation):
    """One fax safeguard as the device's own setting shows it (an SNMP GET of the OID its profile declares)."""

    kind: ClassVar[str] = "fax"
    safeguard: str = ""  # profiles.FAX_SAFEGUARDS
    read_from: str = ""  # "snmp OID"
    value: str | None = None  # None: the agent has no such object (the profile says what a value means)
    community_from: str = ""  # "auth-file", "found in this sweep" (the community itself is not kept)


@dataclass(frozen=True)
class PjlId(Observation):
    """The printer's answer to PJL INFO ID (--intrusive only)."""

    kind: ClassVar[str] = "pjl"
    proves_open: ClassVar[bool] = True
    id: str = ""


@dataclass(frozen=True)
class NtpControl(Observation):
    """Answers to NTP mode 6 (control: READVAR) and mode 7 (private: MON_GETLIST) queries."""

    kind: ClassVar[str] = "ntp-control"
    proves_open: ClassVar[bool] = True
    mode6: bool = False  # a mode 6 response to our READVAR: the control interface answers anyone
    mode7: bool = False  # a mode 7 response to our monlist: the private interface answers (CVE-2013-5211)
    variables: tuple[tuple[str, str], ...] = ()  # a few READVAR values (version, system, stratum)
    mode6_bytes: tuple[int, int] = (0, 0)  # (bytes asked, bytes answered in every datagram of the answer)
    mode7_bytes: tuple[int, int] = (0, 0)
    unreadable: int = 0  # datagrams from the service that were no response to either request
    monlist_records: int = 0  # client records in the monlist datagrams that parse

    @staticmethod
    def amplification(asked_answered: tuple[int, int]) -> float | None:
        """Bytes answered per byte asked (None: nothing answered)."""
        asked, answered = asked_answered
        return round(answered / asked, 1) if asked and answered else None


@dataclass(frozen=True)
class ClockReading(Observation):
    """The device's clock as one protocol showed it, as an offset from the scanner's clock."""

    kind: ClassVar[str] = "clock"
    source: str = ""  # "ntp", "http-date", "sip-date", "snmp-hrSystemDate"
    offset_s: float = 0.0  # device minus scanner, seconds
    uncertainty_s: float = 0.0  # resolution and round trip


@dataclass(frozen=True)
class ConfigFacts(Observation):
    """What a device's read-only configuration says, read with credentials the user supplied.

    ``None`` means "not shown by any command that ran"; an empty tuple means a
    command that lists them answered and listed none.
    """

    kind: ClassVar[str] = "config"
    proves_open: ClassVar[bool] = True
    username: str = ""
    commands: tuple[str, ...] = ()  # commands that answered, in order
    logging_enabled: bool | None = None
    log_hosts: tuple[str, ...] | None = None
    ntp_servers: tuple[str, ...] | None = None
    ntp_synced: bool | None = None
    version: str | None = None
    dns_servers: tuple[str, ...] | None = None  # the resolvers the device forwards to or hands out
    # The strength of the --auth-file password that logged in (never the password itself); None for a key login
    password_length: int | None = None
    password_classes: tuple[str, ...] = ()  # "digits", "lower", "upper", "symbols"
    password_bits: float | None = None  # length x log2(alphabet of its classes): the brute-force search space
    password_weakness: str | None = None  # a known default or generic guess, one repeated character, user name + a few
    config_sha256: str | None = None  # hash of the purpose=config output, for drift between sweeps


@dataclass(frozen=True)
class SyslogSeen(Observation):
    """Syslog messages from this device that reached the scanner's listener during the sweep."""

    kind: ClassVar[str] = "syslog"
    listener: str = ""  # "udp 198.18.1.254:5514"
    messages: int = 0  # datagrams/frames that are syslog messages (RFC 5424 or RFC 3164)
    unreadable: int = 0  # what else arrived from the address: credits nothing
    sample: str = ""  # the first message, bounded


@dataclass(frozen=True)
class HostKey(Observation):
    """A service's long-term public key: SSH host key (fingerprint SHA256:...), and what SSH offers."""

    kind: ClassVar[str] = "hostkey"
    proves_open: ClassVar[bool] = True
    algorithm: str = ""
    fingerprint: str = ""
    auth_methods: tuple[str, ...] = ()  # offered to a random user (not asked in safe mode)


@dataclass(frozen=True)
class LoginResult(Observation):
    """What a capped, paced series of login attempts on one service found (CIAJ 1.2).

    ``username``/``password``/``source`` are set when a candidate worked (the first
    success stops the series). ``accepts_anything`` means a random user and password
    were accepted first, so no success or failure on this service can be trusted.
    """

    kind: ClassVar[str] = "login"
    proves_open: ClassVar[bool] = True
    protocol: str = ""
    username: str | None = None
    password: str | None = None  # a secret: masked in reports
    source: str | None = None  # "profile:<id>", "generic", "anonymous", "snmp-default", "user"
    # Candidates as (username, source), in order; passwords are never listed.
    tried: tuple[tuple[str, str], ...] = ()  # attempted on this service, the random baseline first
    refused_elsewhere: tuple[tuple[str, str], ...] = ()  # another service of the host already refused them
    refused_before: tuple[tuple[str, str], ...] = ()  # refused in an earlier sweep (--extended-credentials)
    skipped: tuple[tuple[str, str], ...] = ()  # not tried: their account had reached its cap
    not_reached: tuple[tuple[str, str], ...] = ()  # after the first success
    access: str | None = None  # SNMP: read-only / read-write / read-write possible / unknown: ...
    stopped: str | None = None  # why the series ended early: success, lockout/ban signal, cap
    accepts_anything: bool = False
    complete: bool = True  # False when a lockout/ban signal, a network error or the deadline cut it short
    # --extended-credentials: (extended pairs this host has refused so far, in any sweep; those for this
    # service; whether later sweeps go on: not when the family never forgets failures, so caps stay spent)
    extended_progress: tuple[int, int, bool] | None = None

    @property
    def attempts(self) -> int:
        """Attempts made on this service, the baseline included."""
        return len(self.tried)


@dataclass(frozen=True)
class ProbeFailure(Observation):
    """A probe that could not get a trustworthy answer. Never read as a pass."""

    kind: ClassVar[str] = "failure"
    probe: str = ""
    error: str = ""  # ProbeError subclass name
    reason: str = ""


def field_values(observations: Iterable[Observation]) -> dict[str, list[str]]:
    """Observed values per fingerprint field of the profiles (profiles.FIELDS): what profile matching reads."""
    out: dict[str, list[str]] = {f: [] for f in FIELDS}
    for obs in observations:
        if isinstance(obs, SnmpInfo):
            if obs.sys_descr:
                out["snmp.sys_descr"].append(obs.sys_descr)
            if obs.sys_object_id:
                out["snmp.sys_object_id"].append(obs.sys_object_id)
            if obs.hr_device_descr:
                out["snmp.hr_device_descr"].append(obs.hr_device_descr)
            if obs.entity_software_rev:
                out["snmp.entity_software_rev"].append(obs.entity_software_rev)
            if obs.printer_name:
                out["snmp.printer_name"].append(obs.printer_name)
        elif isinstance(obs, HttpInfo):
            for name, value in (("http.server", obs.server), ("http.title", obs.title), ("http.realm", obs.realm)):
                if value:
                    out[name].append(value)
        elif isinstance(obs, Banner) and obs.text:
            out[f"{obs.protocol}.banner"].append(obs.text)
        elif isinstance(obs, PjlId) and obs.id:
            out["pjl.id"].append(obs.id)
        elif isinstance(obs, IppInfo):
            if obs.make_and_model:
                out["ipp.make_and_model"].append(obs.make_and_model)
            out["ipp.firmware"] += obs.firmware
        elif isinstance(obs, ConfigFacts) and obs.version:
            out["cli.version"].append(obs.version)
        elif isinstance(obs, SipInfo):
            if obs.server:
                out["sip.server"].append(obs.server)
            if obs.user_agent:
                out["sip.user_agent"].append(obs.user_agent)
    return out
