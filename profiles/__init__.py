"""Device profiles: one schema-checked YAML file per device family.

A profile says how to recognise a family (fingerprints over observed fields),
how to read its firmware version, what baselines that version is judged
against, and its default credentials, each fact with a public source.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from profiles import versions, yamltext
from profiles.errors import ProfileError

FIELDS = (
    "snmp.sys_descr",
    "snmp.sys_object_id",
    "snmp.hr_device_descr",
    "snmp.entity_software_rev",
    "snmp.printer_name",
    "http.server",
    "http.title",
    "http.realm",
    "ssh.banner",
    "telnet.banner",
    "ftp.banner",
    "sip.server",
    "sip.user_agent",
    "cli.version",
    "pjl.id",
    "ipp.make_and_model",
    "ipp.firmware",
)


@dataclass(frozen=True)
class Fingerprint:
    """One rule: a regex (or OID prefix) over one observed field."""

    field: str
    regex: re.Pattern[str] | None
    prefix: str | None
    weight: int


@dataclass(frozen=True)
class Baseline:
    """Known-good facts for one firmware branch (or all versions when branch is None)."""

    branch: str | None
    latest: str | None
    minimum_supported: str | None
    end_of_life: dt.date | None
    source: str
    as_of: dt.date


@dataclass(frozen=True)
class Credential:
    """A documented default credential."""

    protocol: str
    username: str
    password: str
    source: str
    note: str = ""


# CIAJ 4.3/4.4 fax safeguards, in report order (profiles: fax_safeguards; checks: scanner.checks.fax).
FAX_SAFEGUARDS = ("destination-check", "memory-reception", "direct-dial", "pc-fax", "forwarding")


@dataclass(frozen=True)
class FaxSafeguard:
    """Where a family's fax safeguard can be read (an SNMP OID), or what the installer checks by hand."""

    name: str  # one of FAX_SAFEGUARDS
    source: str
    oid: str | None = None
    in_force: tuple[str, ...] = ()  # values of the OID meaning the safeguard is on
    not_in_force: tuple[str, ...] = ()
    checklist: dict[str, str] = field(default_factory=dict)  # lang -> where to look on the panel or console

    def judge(self, value: str) -> bool | None:
        """In force (True), not (False), or a value the profile does not know (None)."""
        if value in self.in_force:
            return True
        if value in self.not_in_force:
            return False
        return None


# Commands a profile may declare as read-only: a viewing verb, no shell syntax.
# Checked by the schema, at load, and again by the probe before anything is sent.
READ_ONLY_COMMAND = re.compile(
    r"^(show|display|cat|uci show|uci -q show|get|more) [^;|&`$<>(){}\\\r\n]*$"  # IOS, Yamaha, NEC, Linux, OpenWrt
    r"|^/[a-z0-9-]+( [a-z0-9-]+)* print( detail)?$"  # RouterOS
)
SIP_SERVER_CLASSES = ("pbx", "voip-gateway")  # SIP servers: an INVITE to any other class could ring a phone
BOOL_FACTS = ("logging_enabled", "ntp_synced")
LIST_FACTS = ("log_hosts", "ntp_servers", "dns_servers")
TEXT_FACTS = ("version",)


@dataclass(frozen=True)
class FactRule:
    """A regex over a command's output that sets one configuration fact.

    Boolean facts take ``value`` when the regex matches; list and text facts take
    the ``value`` group (every match, for lists).
    """

    fact: str
    regex: re.Pattern[str]
    value: bool | None = None


@dataclass(frozen=True)
class ReadOnlyCommand:
    """One allowlisted read-only CLI command and how to read its output."""

    protocol: str
    command: str
    purpose: str
    valid: re.Pattern[str] | None = None  # output must match for its facts to count (else: an error page)
    facts: tuple[FactRule, ...] = ()
    wifi_format: str | None = None  # purpose wifi: "uci", "hostapd" or "lines" (probes.wifi.config)
    wifi_network: re.Pattern[str] | None = None  # format "lines": one network per matching line


def is_read_only(command: str) -> bool:
    """Whether a command has the read-only shape every profile command must have."""
    return bool(READ_ONLY_COMMAND.match(command))


@dataclass(frozen=True)
class Profile:
    """A device family."""

    id: str
    device_class: str
    vendor: str
    product: str
    path: str
    fingerprints: tuple[Fingerprint, ...]
    version_scheme: str = "dotted"
    baselines: tuple[Baseline, ...] = ()
    default_credentials: tuple[Credential, ...] = ()
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    read_only_commands: tuple[ReadOnlyCommand, ...] = ()
    http_login: dict[str, Any] = field(default_factory=dict)  # the web UI's login form (schema: http_login)
    lockout_attempts: int | None = None  # failed logins that lock an account on this family
    lockout_window_s: int | None = None  # seconds it counts them over (0: never forgets; None: not declared)
    lockout_texts: tuple[str, ...] = ()  # what the device says when it locks (lower case)
    cpes: tuple[tuple[str, str, str], ...] = ()  # (part, vendor, product); product may hold {model}
    sip_dial_prefixes: tuple[str, ...] = ()  # international prefixes the family's dial plans use
    fax_safeguards: tuple[FaxSafeguard, ...] = ()

    def cpes_for(self, model: str | None) -> list[tuple[str, str, str]]:
        """CPE (part, vendor, product) triples for a matched model ({model} entries need one)."""
        out = []
        for part, vendor, template in self.cpes:
            if "{model}" in template and not model:
                continue
            out.append((part, vendor, template.replace("{model}", (model or "").lower())))
        return out

    def baseline_for(self, version: str) -> Baseline | None:
        """The baseline of the branch the version belongs to (longest branch wins), else the catch-all."""
        best: Baseline | None = None
        for b in self.baselines:
            if b.branch is None:
                best = best or b
            elif versions.branch_of(version, b.branch, self.version_scheme) and (
                best is None or best.branch is None or len(b.branch) > len(best.branch)
            ):
                best = b
        return best


@dataclass(frozen=True)
class Match:
    """The profile a host matched, with what was extracted."""

    profile: Profile
    score: int
    version: str | None
    model: str | None
    matched: tuple[str, ...]  # "field: value" evidence


def _schema() -> dict[str, Any]:
    text = resources.files("profiles").joinpath("schema.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@functools.cache
def _validator() -> Any:
    """The profile schema's validator, built once. jsonschema is imported here, not with the package:
    profiles.errors is imported by every module, and a sweep that matches no profile (discover) never
    loads one."""
    import jsonschema

    return jsonschema.Draft202012Validator(_schema())


def _path_text(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _date(value: Any, file: str, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ProfileError(file, where, f"not a date: {value!r}") from exc


def parse_profile(data: Any, file: str) -> Profile:
    """Validate one profile document against the schema and its own references."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        raise ProfileError(file, _path_text(err.absolute_path), err.message)
    sources: dict[str, dict[str, str]] = data.get("sources", {})

    def need_source(ref: str, where: str) -> str:
        if ref not in sources:
            raise ProfileError(file, where, f"unknown source {ref!r} (not in sources)")
        return ref

    fps: list[Fingerprint] = []
    for i, fp in enumerate(data["fingerprints"]):
        where = f"fingerprints[{i}]"
        regex = None
        if "regex" in fp:
            try:
                regex = re.compile(fp["regex"])
            except re.error as exc:
                raise ProfileError(file, f"{where}.regex", f"bad regular expression: {exc}") from exc
        fps.append(Fingerprint(fp["field"], regex, fp.get("prefix"), int(fp.get("weight", 1))))
    firmware = data.get("firmware", {})
    scheme = firmware.get("scheme", "dotted")
    baselines: list[Baseline] = []
    for i, b in enumerate(firmware.get("baselines", [])):
        where = f"firmware.baselines[{i}]"
        for key in ("latest", "minimum_supported", "branch"):
            if b.get(key) is not None:
                try:
                    versions.key(str(b[key]), scheme)
                except ValueError as exc:
                    raise ProfileError(file, f"{where}.{key}", str(exc)) from exc
        baselines.append(
            Baseline(
                branch=str(b["branch"]) if b.get("branch") is not None else None,
                latest=str(b["latest"]) if b.get("latest") is not None else None,
                minimum_supported=str(b["minimum_supported"]) if b.get("minimum_supported") else None,
                end_of_life=_date(b["end_of_life"], file, f"{where}.end_of_life") if b.get("end_of_life") else None,
                source=need_source(b["source"], f"{where}.source"),
                as_of=_date(b["as_of"], file, f"{where}.as_of"),
            )
        )
    creds = tuple(
        Credential(
            c["protocol"],
            str(c["username"]),
            str(c["password"]),
            need_source(c["source"], f"default_credentials[{i}].source"),
            c.get("note", ""),
        )
        for i, c in enumerate(data.get("default_credentials", []))
    )
    lockout: dict[str, Any] = data.get("lockout", {})
    if lockout:
        need_source(lockout["source"], "lockout.source")
    http_login: dict[str, Any] = data.get("http_login", {})
    if http_login:
        need_source(http_login["source"], "http_login.source")
        for key in ("success_location", "success_body", "failure_body"):
            if key in http_login:
                try:
                    re.compile(http_login[key])
                except re.error as exc:
                    raise ProfileError(file, f"http_login.{key}", f"bad regular expression: {exc}") from exc
    return Profile(
        id=data["id"],
        device_class=data["class"],
        vendor=data["vendor"],
        product=data.get("product", ""),
        path=file,
        fingerprints=tuple(fps),
        version_scheme=scheme,
        baselines=tuple(baselines),
        default_credentials=creds,
        sources=sources,
        read_only_commands=_commands(data.get("read_only_commands", []), file),
        http_login=http_login,
        lockout_attempts=lockout.get("attempts"),
        lockout_window_s=lockout.get("window_s"),
        lockout_texts=tuple(str(t).lower() for t in lockout.get("texts", [])),
        cpes=tuple((c["part"], c["vendor"], c["product"]) for c in data.get("cpe", [])),
        sip_dial_prefixes=tuple(str(p) for p in data.get("sip_dial_prefixes", [])),
        fax_safeguards=tuple(
            FaxSafeguard(
                name=name,
                source=need_source(f["source"], f"fax_safeguards.{name}.source"),
                oid=f["snmp"]["oid"] if "snmp" in f else None,
                in_force=tuple(str(v) for v in f.get("snmp", {}).get("in_force", [])),
                not_in_force=tuple(str(v) for v in f.get("snmp", {}).get("not_in_force", [])),
                checklist=dict(f.get("checklist", {})),
            )
            for name, f in sorted(data.get("fax_safeguards", {}).items(), key=lambda kv: FAX_SAFEGUARDS.index(kv[0]))
        ),
    )


def _regex(text: str, file: str, where: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(text, flags)
    except re.error as exc:
        raise ProfileError(file, where, f"bad regular expression: {exc}") from exc


def _commands(raw: list[dict[str, Any]], file: str) -> tuple[ReadOnlyCommand, ...]:
    out: list[ReadOnlyCommand] = []
    for i, c in enumerate(raw):
        where = f"read_only_commands[{i}]"
        if not is_read_only(c["command"]):
            raise ProfileError(file, f"{where}.command", f"{c['command']!r} is not a read-only command")
        rules: list[FactRule] = []
        for j, f in enumerate(c.get("facts", [])):
            fw = f"{where}.facts[{j}]"
            regex = _regex(f["regex"], file, f"{fw}.regex", re.MULTILINE)
            if f["fact"] in BOOL_FACTS:
                if not isinstance(f.get("value"), bool):
                    raise ProfileError(file, fw, f"{f['fact']} needs value: true or false")
            elif "value" not in regex.groupindex:
                raise ProfileError(file, f"{fw}.regex", f"{f['fact']} needs a (?P<value>...) group")
            rules.append(FactRule(f["fact"], regex, f.get("value")))
        valid = _regex(c["valid"], file, f"{where}.valid", re.MULTILINE) if "valid" in c else None
        wifi = c.get("wifi") or {}
        if (c["purpose"] == "wifi") != bool(wifi):
            raise ProfileError(file, where, "purpose wifi and a wifi block go together")
        network = _regex(wifi["network"], file, f"{where}.wifi.network") if "network" in wifi else None
        if (wifi.get("format") == "lines") != (network is not None):
            raise ProfileError(file, f"{where}.wifi", "format lines, and only it, needs a network regex")
        if network is not None and not {"ssid", "security"} <= set(network.groupindex):
            raise ProfileError(file, f"{where}.wifi.network", "needs (?P<ssid>...) and (?P<security>...) groups")
        out.append(
            ReadOnlyCommand(c["protocol"], c["command"], c["purpose"], valid, tuple(rules), wifi.get("format"), network)
        )
    return tuple(out)


def load_file(path: Path) -> Profile:
    """Load and validate one profile file."""
    try:
        data = yamltext.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(str(path), "(file)", f"cannot read YAML: {exc}") from exc
    profile = parse_profile(data, str(path))
    if path.stem != profile.id:
        raise ProfileError(str(path), "id", f"id {profile.id!r} must equal the file name {path.stem!r}")
    return profile


def builtin_dir() -> Path:
    """Directory of the profiles shipped with edgeaudit."""
    return Path(str(resources.files("profiles")))


def load_all(extra_dirs: Sequence[Path] = ()) -> list[Profile]:
    """Every built-in profile plus those in ``extra_dirs``; duplicate ids are an error."""
    profiles: dict[str, Profile] = {}
    for directory in (builtin_dir(), *extra_dirs):
        for path in sorted(directory.glob("*.yaml")):
            p = load_file(path)
            if p.id in profiles:
                raise ProfileError(str(path), "id", f"duplicate profile id {p.id!r} (also {profiles[p.id].path})")
            profiles[p.id] = p
    return sorted(profiles.values(), key=lambda p: p.id)


def match(profiles: Sequence[Profile], values: Mapping[str, Sequence[str]]) -> Match | None:
    """Best-scoring profile for the observed values per fingerprint field (probes.observations.field_values)."""
    best: Match | None = None
    for profile in profiles:
        score = 0
        version: str | None = None
        model: str | None = None
        hits: list[str] = []
        for fp in profile.fingerprints:
            for value in values.get(fp.field, []):
                if fp.prefix is not None:
                    ok = value == fp.prefix or value.startswith(fp.prefix + ".")
                    m = None
                else:
                    assert fp.regex is not None
                    m = fp.regex.search(value)
                    ok = m is not None
                if not ok:
                    continue
                score += fp.weight
                hits.append(f"{fp.field}: {value[:120]}")
                if m is not None:
                    groups = m.groupdict()
                    version = version or groups.get("version")
                    model = model or groups.get("model")
                break
        if score and (best is None or score > best.score):
            best = Match(profile, score, version, model, tuple(hits))
    return best


def refine(found: Match, values: Mapping[str, Sequence[str]]) -> Match:
    """Fill a match's missing version from what an authenticated read showed (the CLI's own words)."""
    if found.version is not None:
        return found
    for value in values.get("cli.version", ()):
        return dataclasses.replace(found, version=value, matched=(*found.matched, f"cli.version: {value[:120]}"))
    return found
