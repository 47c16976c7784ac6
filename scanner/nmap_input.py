"""`--from-nmap FILE`: the hosts an nmap run found up (nmap -oX), and the TCP ports it found open.

An admin who already runs nmap hands its XML over instead of a range (as changeme takes it): the
scope is exactly the hosts nmap reported ``up``, and their open TCP ports join the sweep's port
list, so a service on a port edgeaudit does not try by default is still reached. The file is the
user's input, so it is read bounded: a size ceiling, no entity declarations (nmap writes none, and
expat would expand internal ones), ``nmaprun`` as the root, each address and port validated, and
every defect a ScopeError naming the file (and the line where XML parsing stopped).
"""

from __future__ import annotations

import io
import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from probes.base import TCP_PORTS
from profiles.errors import ScopeError

MAX_BYTES = 64 * 1024 * 1024  # nmap's XML of a /16 with every host up and 1,000 ports each is well under this
MAX_PORTS = 1024  # distinct open ports added to the sweep's list, at most
# nmap's service names (nmap-services) that edgeaudit's probes know by another name, or by the same.
SERVICE_NAMES = {"ssl/http": "https", "http-proxy": "http", "http-alt": "http", "microsoft-ds": "smb"}
KNOWN = frozenset(TCP_PORTS.values())


@dataclass
class NmapHosts:
    """What one nmap XML file says: the hosts up, in file order, and the open TCP ports (port -> our name)."""

    path: str
    addresses: list[str] = field(default_factory=list)
    open_tcp: dict[int, str | None] = field(default_factory=dict)
    hosts_down: int = 0  # reported, and left out of the scope

    def describe(self) -> str:
        """The scope line's origin: which file, how many hosts up and down in it."""
        ports = f", {len(self.open_tcp)} open TCP port(s)" if self.open_tcp else ""
        return f"the {len(self.addresses)} host(s) nmap found up in {self.path} ({self.hosts_down} down{ports})"


def read(path: Path) -> NmapHosts:
    """Parse an nmap XML file; ScopeError for anything that is not nmap's XML or names no host up."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ScopeError(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MiB; not an nmap XML file to scan from")
        data = path.read_bytes()
    except OSError as exc:
        raise ScopeError(f"cannot read nmap file {path}: {exc.strerror}") from exc
    if b"<!ENTITY" in data:
        raise ScopeError(f"{path}: declares XML entities, which nmap's output never does")
    out = NmapHosts(str(path))
    root_seen = False
    try:
        # iterparse reads in chunks; each host's element is freed once read.
        for event, element in ET.iterparse(io.BytesIO(data), events=("start", "end")):
            if event == "start" and not root_seen:
                root_seen = True
                if element.tag != "nmaprun":
                    raise ScopeError(f"{path}: the root element is <{element.tag}>, not nmap's <nmaprun> (-oX)")
            elif event == "end" and element.tag == "host":
                _host(path, element, out)
                element.clear()
    except ET.ParseError as exc:
        raise ScopeError(f"{path}:{exc.position[0]}: not well-formed XML ({exc})") from exc
    if not root_seen:
        raise ScopeError(f"{path}: empty, not nmap XML")
    if not out.addresses:
        raise ScopeError(f"{path}: nmap found no host up ({out.hosts_down} down): nothing to scan")
    return out


def _host(path: Path, host: ET.Element, out: NmapHosts) -> None:
    status = host.find("status")
    if status is None or status.get("state") != "up":
        out.hosts_down += 1
        return
    addresses = [a for a in host.findall("address") if a.get("addrtype") in ("ipv4", "ipv6")]
    if not addresses:
        raise ScopeError(f"{path}: a host up with no IPv4 or IPv6 address")
    for element in addresses:
        text = element.get("addr", "")
        try:
            address = str(ipaddress.ip_address(text))
        except ValueError as exc:
            raise ScopeError(f"{path}: {text!r} is not an IP address") from exc
        if address not in out.addresses:
            out.addresses.append(address)
    for port in host.iterfind("ports/port"):
        state = port.find("state")
        if port.get("protocol") != "tcp" or state is None or state.get("state") != "open":
            continue
        try:
            number = int(port.get("portid", ""))
        except ValueError as exc:
            raise ScopeError(f"{path}: port {port.get('portid')!r} is not a number") from exc
        if not 0 < number < 65536:
            raise ScopeError(f"{path}: port {number} is not 1-65535")
        service = port.find("service")
        out.open_tcp.setdefault(number, _our_name(service.get("name") if service is not None else None, service))
        if len(out.open_tcp) > MAX_PORTS:
            raise ScopeError(f"{path}: more than {MAX_PORTS} distinct open ports; narrow the nmap run")


def _our_name(name: str | None, service: ET.Element | None) -> str | None:
    """nmap's service name as edgeaudit's probes know it (None: unknown, left to the port's default)."""
    if not name:
        return None
    if service is not None and service.get("tunnel") == "ssl" and name == "http":
        return "https"
    name = SERVICE_NAMES.get(name, name)
    return name if name in KNOWN else None
