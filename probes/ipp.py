"""IPP Get-Printer-Attributes on tcp/631: who the printer says it is, and whether it asks anyone for a password.

One IPP/2.0 request over HTTP POST (RFC 8010 encoding, RFC 8011 3.2.5),
operation Get-Printer-Attributes, asking only for identification and the
security attributes. It reads; no other operation is ever sent (never
Print-Job, Validate-Job or anything that creates or cancels a job). The path
is the IPP Everywhere one, ``/ipp/print``, then ``/`` when that is not found.

The answer is parsed strictly and bounded (MAX_RESPONSE bytes, each value
within the message, at most MAX_VALUES values): a message that runs past its
end is malformed. ``uri-authentication-supported`` says, per printer URI,
what a client must present to submit a job (RFC 8011 5.4.2): ``none`` and
``requesting-user-name`` ask for nothing that proves who sent it.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from probes import http
from probes.base import Phase, Probe, ProbeContext, ProbeTarget, register
from scanner.errors import MalformedResponse
from scanner.model import IppInfo, Observation

GET_PRINTER_ATTRIBUTES = 0x000B
MAX_RESPONSE = 64 * 1024
MAX_VALUES = 512
MAX_TEXT = 200
PATHS = ("/ipp/print", "/")
TAG_OPERATION, TAG_END, TAG_PRINTER = 0x01, 0x03, 0x04
T_CHARSET, T_LANGUAGE, T_URI, T_KEYWORD = 0x47, 0x48, 0x45, 0x44
REQUESTED = (
    "printer-make-and-model",
    "printer-info",
    "printer-firmware-name",
    "printer-firmware-string-version",
    "printer-uri-supported",
    "uri-security-supported",
    "uri-authentication-supported",
    "printer-is-accepting-jobs",
)
TEXT_TAGS = {0x41, 0x42, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49}  # text, name, keyword, uri, scheme, charset, lang, mime
STATUS_NAMES = {0x0000: "successful-ok", 0x0400: "client-error-bad-request", 0x0401: "client-error-forbidden",
                0x0402: "client-error-not-authenticated", 0x0403: "client-error-not-authorized",
                0x0406: "client-error-not-found", 0x0501: "server-error-operation-not-supported"}  # fmt: skip


def _attr(tag: int, name: str, value: bytes) -> bytes:
    n = name.encode()
    return struct.pack(">BH", tag, len(n)) + n + struct.pack(">H", len(value)) + value


def request(printer_uri: str, request_id: int) -> bytes:
    """The one request this probe sends: Get-Printer-Attributes for REQUESTED."""
    ops = _attr(T_CHARSET, "attributes-charset", b"utf-8") + _attr(T_LANGUAGE, "attributes-natural-language", b"en")
    ops += _attr(T_URI, "printer-uri", printer_uri.encode())
    ops += _attr(T_KEYWORD, "requested-attributes", REQUESTED[0].encode())
    ops += b"".join(_attr(T_KEYWORD, "", name.encode()) for name in REQUESTED[1:])  # additional values
    return (
        struct.pack(">BBHI", 2, 0, GET_PRINTER_ATTRIBUTES, request_id) + bytes([TAG_OPERATION]) + ops + bytes([TAG_END])
    )


@dataclass
class Response:
    """An IPP response: status, request id and the printer group's attributes (value lists, as text)."""

    status: int
    request_id: int
    printer: dict[str, list[str]] = field(default_factory=dict)


def parse_response(data: bytes) -> Response:
    """Decode an IPP response strictly; MalformedResponse on anything truncated, oversized or out of order."""
    if len(data) > MAX_RESPONSE:
        raise MalformedResponse(f"IPP response over {MAX_RESPONSE} bytes")
    if len(data) < 9:
        raise MalformedResponse("IPP response shorter than its header")
    major, _minor, status, request_id = struct.unpack(">BBHI", data[:8])
    if major not in (1, 2):
        raise MalformedResponse(f"IPP version {major} is not one this probe reads")
    out = Response(status, request_id)
    group, name, values, i = 0, "", 0, 8
    while True:
        if i >= len(data):
            raise MalformedResponse("IPP response without an end-of-attributes tag")
        tag = data[i]
        i += 1
        if tag == TAG_END:
            return out
        if tag < 0x10:  # a delimiter: the next group begins
            group, name = tag, ""
            continue
        if tag == 0x7F:
            raise MalformedResponse("IPP extended value tags are not read")
        if i + 2 > len(data):
            raise MalformedResponse("IPP attribute truncated in its name length")
        (name_len,) = struct.unpack(">H", data[i : i + 2])
        i += 2
        if i + name_len + 2 > len(data):
            raise MalformedResponse("IPP attribute name runs past the end")
        if name_len:
            name = data[i : i + name_len].decode("utf-8", "replace")[:MAX_TEXT]
        elif not name:
            raise MalformedResponse("IPP additional value with no attribute before it")
        i += name_len
        (value_len,) = struct.unpack(">H", data[i : i + 2])
        i += 2
        if i + value_len > len(data):
            raise MalformedResponse("IPP attribute value runs past the end")
        value = data[i : i + value_len]
        i += value_len
        values += 1
        if values > MAX_VALUES:
            raise MalformedResponse(f"IPP response with more than {MAX_VALUES} values")
        if group == TAG_PRINTER:
            out.printer.setdefault(name, []).append(_text(tag, value))


def _text(tag: int, value: bytes) -> str:
    if tag in TEXT_TAGS:
        return value.decode("utf-8", "replace")[:MAX_TEXT]
    if tag == 0x22 and len(value) == 1:  # boolean
        return "true" if value[0] else "false"
    if tag in (0x21, 0x23) and len(value) == 4:  # integer, enum
        return str(struct.unpack(">i", value)[0])
    return value.hex()[:MAX_TEXT]


@register
class IppAttributes(Probe):
    """Get-Printer-Attributes over HTTP on the IPP port."""

    name = "ipp"
    phase = Phase.FINGERPRINT
    services = frozenset({"ipp"})
    description = "IPP Get-Printer-Attributes (make and model, firmware, URI security and authentication); nothing else"

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """/ipp/print, then / on 404; an HTTP 401/403 is an answer too: the printer wants a password."""
        assert target.service is not None
        host = f"[{target.address}]" if ":" in target.address else target.address
        status, body, path = 0, b"", PATHS[0]
        for path in PATHS:
            printer_uri = f"ipp://{host}:{target.service.port}{path}"
            request_id = secrets.randbelow(0x7FFFFFFF) + 1
            status, body = await http.fetch(
                f"http://{host}:{target.service.port}{path}",
                ctx,
                MAX_RESPONSE + 1,
                method="POST",
                content=request(printer_uri, request_id),
                headers={"Content-Type": "application/ipp"},
            )
            if status != 404:
                break
        if status in (401, 403):
            return [IppInfo(target.service, path=path, http_status=status)]
        if status != 200:
            raise MalformedResponse(f"IPP POST {path}: HTTP {status}")
        response = parse_response(body)
        if response.request_id != request_id:
            raise MalformedResponse("IPP response for another request id")
        attrs = response.printer

        def first(name: str) -> str:
            return attrs.get(name, [""])[0]

        return [
            IppInfo(
                target.service,
                path=path,
                http_status=status,
                ipp_status=STATUS_NAMES.get(response.status, f"0x{response.status:04x}"),
                make_and_model=first("printer-make-and-model"),
                info=first("printer-info"),
                firmware=tuple(
                    _pairs(attrs.get("printer-firmware-name", []), attrs.get("printer-firmware-string-version", []))
                ),
                printer_uris=tuple(attrs.get("printer-uri-supported", [])),
                uri_security=tuple(attrs.get("uri-security-supported", [])),
                uri_authentication=tuple(attrs.get("uri-authentication-supported", [])),
                accepting_jobs=first("printer-is-accepting-jobs") == "true",
            )
        ]


def _pairs(names: Sequence[str], versions: Sequence[str]) -> list[str]:
    """printer-firmware-name with its string version, as "NAME VERSION" (the lists run in parallel)."""
    return [f"{n} {v}".strip() for n, v in zip(names or [""] * len(versions), versions, strict=False)]
