"""UPnP: one unicast SSDP M-SEARCH to udp/1900, then the root device description it points to.

An Internet Gateway Device (IGD) opens ports in the router's firewall for
anyone who asks it, with no password: fine for game consoles on a home LAN, a
takeover path when it answers from the internet (CIAJ 3.4). The probe only
reads: M-SEARCH for ``upnp:rootdevice`` to the named address (never the
multicast group, so nothing else on the network is asked), and a GET of the
description, only when its LOCATION is on the same address. No SOAP action is
ever sent, read-only ones included.

The description is untrusted XML: at most MAX_DESCRIPTION bytes, a document
with a DOCTYPE (entity expansion) is refused, and element text is cut short.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from probes import http
from probes.base import HostSnapshot, Phase, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.datagram import DatagramProbe, port_state
from probes.observations import Observation, Service, UpnpInfo
from probes.wire import udp
from profiles.errors import MalformedResponse, ProbeError

SSDP_PORT = 1900
MAX_DESCRIPTION = 64 * 1024
MAX_TEXT = 200
MAX_HEADERS = 8 * 1024


def m_search(address: str) -> bytes:
    """A unicast M-SEARCH for root devices (UPnP Device Architecture 2.0, 1.3.2: HOST is the unicast address)."""
    host = f"[{address}]" if ":" in address else address
    return (
        "M-SEARCH * HTTP/1.1\r\n"
        f"HOST: {host}:{SSDP_PORT}\r\n"
        'MAN: "ssdp:discover"\r\n'
        "ST: upnp:rootdevice\r\n"
        f"USER-AGENT: {http.USER_AGENT} UPnP/2.0\r\n"
        "\r\n"
    ).encode()


def parse_ssdp(data: bytes) -> dict[str, str]:
    """Headers of an SSDP answer (``HTTP/1.1 200 OK``), lower-case names; MalformedResponse otherwise."""
    text = data[:MAX_HEADERS].decode("latin-1")
    status, *lines = text.split("\r\n")
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "200":
        raise MalformedResponse(f"SSDP: not an M-SEARCH answer: {status[:80]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers.setdefault(name.strip().lower(), value.strip()[: MAX_TEXT * 2])
    return headers


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_description(body: bytes) -> dict[str, list[str]]:
    """deviceType, serviceType and the root device's names from a description, bounded and without DTDs."""
    if b"\0" in body:  # UTF-16 or UTF-32 (UDA 2.0 2.1: UTF-8), where the byte check below would miss a DOCTYPE
        raise MalformedResponse("UPnP description: a NUL byte (not UTF-8)")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise MalformedResponse("UPnP description: a DOCTYPE or ENTITY declaration is refused")
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, ValueError) as exc:  # ValueError: encoding="UTF-32" declared ("multi-byte encodings")
        raise MalformedResponse(f"UPnP description: not XML ({exc})") from exc
    out: dict[str, list[str]] = {}
    for element in root.iter():
        name = _local(element.tag)
        if name in ("deviceType", "serviceType", "friendlyName", "manufacturer", "modelName", "modelNumber"):
            out.setdefault(name, []).append((element.text or "").strip()[:MAX_TEXT])
    if "deviceType" not in out:
        raise MalformedResponse("UPnP description: no deviceType")
    return out


def same_host(location: str, address: str) -> bool:
    """Whether a LOCATION URL points at the address that answered (else it is not fetched)."""
    try:
        parts = urlsplit(location)
        host = parts.hostname or ""
        return parts.scheme in ("http", "https") and ipaddress.ip_address(host) == ipaddress.ip_address(address)
    except ValueError:
        return False


@register
class UpnpSsdp(DatagramProbe[bytes]):
    """SSDP M-SEARCH to udp/1900 and the root device description."""

    name = "upnp"
    phase = Phase.DISCOVERY
    description = "UPnP: unicast SSDP M-SEARCH, then the device description (IGD or not); no SOAP actions"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """udp/1900, always."""
        return [Service(SSDP_PORT, "udp", "upnp")]

    def ask(self, target: ProbeTarget, ctx: ProbeContext) -> udp.Ask[bytes]:
        """One M-SEARCH to the address itself, resent once; any HTTP/1.x response answers it."""
        payload = m_search(target.address)

        def parse(reply: bytes) -> bytes | None:
            return reply if reply.startswith(b"HTTP/1.") else None

        return udp.Ask.resent(lambda _local: payload, parse, ctx.timeouts.read, "ssdp")

    def unanswered(self, target: ProbeTarget, ctx: ProbeContext, error: ProbeError) -> list[Observation]:
        """Silence or refusal is a port state; garbage is not silence."""
        return port_state(target, error)

    async def answered(self, target: ProbeTarget, ctx: ProbeContext, answer: bytes) -> list[Observation]:
        """One GET of the description it names; an unreadable description is a recorded reason."""
        assert target.service is not None
        headers = parse_ssdp(answer)
        location = headers.get("location", "")
        info = UpnpInfo(target.service, server=headers.get("server", ""), location=location, usn=headers.get("usn", ""))
        if not location:
            return [replace(info, description_error="the answer names no LOCATION")]
        if not same_host(location, target.address):
            return [replace(info, description_error=f"LOCATION is not on {target.address}: not fetched")]
        try:
            status, body = await http.fetch(location, ctx, MAX_DESCRIPTION)
            if status != 200:
                raise MalformedResponse(f"GET {location}: HTTP {status}")
            desc = parse_description(body)
        except ProbeError as exc:
            return [replace(info, description_error=str(exc))]
        return [
            replace(
                info,
                device_types=tuple(desc.get("deviceType", [])),
                service_types=tuple(desc.get("serviceType", [])),
                friendly_name=desc.get("friendlyName", [""])[0],
                manufacturer=desc.get("manufacturer", [""])[0],
                model_name=desc.get("modelName", [""])[0],
                model_number=desc.get("modelNumber", [""])[0],
            )
        ]
