"""Authenticated mode: read-only logins the operator owns, per host, range or profile (TOML).

    # edgeaudit --auth-file FILE
    [[device]]
    host = "192.0.2.1"          # or: range = "192.0.2.0/24", or: profile = "cisco-ios"
    username = "audit"
    password = "..."            # or: key_file = "~/.ssh/audit_ed25519"

    [[device]]                  # an SNMP v2c community, for read-only GETs
    profile = "ricoh"
    protocol = "snmp"
    community = "..."

The most specific entry of the protocol wins: host, then the longest range,
then profile. SSH logins only run the matched profile's allowlisted read-only
commands; SNMP communities only GET the OIDs a profile declares (fax
safeguards). They are never guessed at, and never written to the history
database (it stores the file's path).
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

from probes.options import OptionSet, input_file, option, option_set, read_toml
from profiles.errors import UsageError

KEYS = {"host", "range", "profile", "username", "password", "key_file", "port", "protocol", "community"}
PROTOCOLS = ("ssh", "snmp")


@dataclass(frozen=True)
class AuthEntry:
    """One read-only login and what it applies to."""

    username: str
    password: str | None = None
    key_file: str | None = None
    host: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    profile: str | None = None
    port: int | None = None  # default: the SSH service the sweep found
    protocol: str = "ssh"
    community: str | None = None  # protocol "snmp": a v2c community (a secret)


def load(path: str) -> tuple[AuthEntry, ...]:
    """Parse and validate the file (once per version of it); UsageError names the entry at fault."""
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise UsageError(f"--auth-file {path}: {exc.strerror}") from exc
    return _load(path, st.st_mtime_ns, st.st_size)


@cache
def _load(path: str, _mtime_ns: int, _size: int) -> tuple[AuthEntry, ...]:
    file = Path(path)
    text, raw = read_toml("--auth-file", file)
    try:
        mode = file.stat().st_mode
    except OSError as exc:
        raise UsageError(f"--auth-file {path}: {exc.strerror}") from exc
    # tomllib keeps no positions: an entry's line is that of its [[device]] header, counted in the text
    headers = [n for n, line in enumerate(text.splitlines(), 1) if re.match(r"\s*\[\[\s*device\s*\]\]", line)]
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"edgeaudit: warning: --auth-file {path} is readable by others (chmod 600 it)", file=sys.stderr)
    if set(raw) - {"device"}:
        raise UsageError(
            f"--auth-file {path}: only [[device]] tables are allowed, found {sorted(set(raw) - {'device'})}"
        )
    entries: list[AuthEntry] = []
    devices = raw.get("device", [])
    if not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
        raise UsageError(f"--auth-file {path}: device must be [[device]] tables")
    for i, item in enumerate(devices):
        line = f":{headers[i]}" if len(headers) == len(devices) else ""
        where = f"--auth-file {path}{line}: device #{i + 1}"
        unknown = set(item) - KEYS
        if unknown:
            raise UsageError(f"{where}: unknown keys {sorted(unknown)}")
        scopes = [k for k in ("host", "range", "profile") if k in item]
        if len(scopes) != 1:
            raise UsageError(f"{where}: give exactly one of host, range, profile")
        protocol = item.get("protocol", "ssh")
        if protocol not in PROTOCOLS:
            raise UsageError(f"{where}: protocol must be one of {', '.join(PROTOCOLS)}")
        if protocol == "snmp":
            if not isinstance(item.get("community"), str) or not item["community"]:
                raise UsageError(f'{where}: protocol = "snmp" needs community')
            if {"username", "password", "key_file"} & set(item):
                raise UsageError(f'{where}: protocol = "snmp" takes a community, not a login')
        else:
            if "community" in item:
                raise UsageError(f'{where}: community is for protocol = "snmp"')
            if not isinstance(item.get("username"), str) or not item["username"]:
                raise UsageError(f"{where}: username is required")
            if ("password" in item) == ("key_file" in item):
                raise UsageError(f"{where}: give exactly one of password, key_file")
        network = None
        host = None
        try:
            if "range" in item:
                network = ipaddress.ip_network(str(item["range"]), strict=False)
            if "host" in item:
                host = str(ipaddress.ip_address(str(item["host"])))
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from exc
        key_file = os.path.expanduser(str(item["key_file"])) if "key_file" in item else None
        if key_file and not Path(key_file).is_file():
            raise UsageError(f"{where}: key_file {key_file}: no such file")
        port = item.get("port")
        if port is not None and not (isinstance(port, int) and 0 < port < 65536):
            raise UsageError(f"{where}: port must be 1-65535")
        entries.append(
            AuthEntry(
                username=str(item.get("username", "")),
                password=str(item["password"]) if "password" in item else None,
                key_file=key_file,
                host=host,
                network=network,
                profile=str(item["profile"]) if "profile" in item else None,
                port=port,
                protocol=protocol,
                community=str(item["community"]) if "community" in item else None,
            )
        )
    return tuple(entries)


@option_set
@dataclass(frozen=True)
class AuthOptions(OptionSet):
    """Authenticated mode: the operator's own read-only logins."""

    name: ClassVar[str] = "auth"
    title: ClassVar[str] = "authenticated mode"

    auth_file: str | None = option(
        None,
        flag="--auth-file",
        metavar="FILE",
        help="authenticated mode: TOML of read-only SSH logins per host, range or profile; runs the profile's "
        'allowlisted read-only commands (logging, NTP, version) and nothing else; entries with protocol = "snmp" '
        "give an MFP's community for the fax-safeguard GETs",
        parse=input_file("--auth-file"),
        load=load,
        legacy="auth_file",
    )


def lookup(
    entries: tuple[AuthEntry, ...], address: str, profile_id: str | None, protocol: str = "ssh"
) -> AuthEntry | None:
    """The most specific entry of a protocol for a host: its address, the longest range holding it, its profile."""
    ip = ipaddress.ip_address(address)
    entries = tuple(e for e in entries if e.protocol == protocol)
    for e in entries:
        if e.host is not None and ipaddress.ip_address(e.host) == ip:
            return e
    ranges = [e for e in entries if e.network is not None and ip.version == e.network.version and ip in e.network]
    if ranges:
        return max(ranges, key=lambda e: e.network.prefixlen if e.network else -1)
    for e in entries:
        if e.profile is not None and e.profile == profile_id:
            return e
    return None
