"""IPP on tcp/631: who the printer says it is, and whether it asks anyone for a password.

Read-only IPP/2.0 requests over HTTP POST (RFC 8010 encoding), never more:

- Get-Printer-Attributes (RFC 8011 4.2.5), asking only for identification and
  the security attributes, at the IPP Everywhere path ``/ipp/print``, then
  ``/ipp`` (Canon iR-ADV, Konica Minolta bizhub) and ``/`` while the answer is
  HTTP 404 or IPP client-error-not-found;
- when none of those is a printer, CUPS-Get-Printers (0x4002, a CUPS "get"
  operation on ``/``: https://apple.github.io/cups/doc/spec-ipp.html) to list a
  print server's queues (``/printers/NAME``, ``/classes/NAME``), then
  Get-Printer-Attributes on each of them, at most MAX_QUEUES. Only the path of
  a listed URI is used: every request goes to the address being scanned.

Never Print-Job, Validate-Job or anything that creates, changes or cancels.
Every URI asked is recorded with its status (``IppInfo.asked``). Answers are
parsed strictly and bounded (MAX_RESPONSE bytes, each value within the
message, at most MAX_VALUES values). ``uri-authentication-supported`` says, per
printer URI, what a client must present to submit a job (RFC 8011 5.4.2):
``none`` and ``requesting-user-name`` ask for nothing that proves who sent it.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field

from probes import http, wire
from probes.base import Phase, Probe, ProbeContext, ProbeTarget, register
from probes.observations import IppInfo, Observation
from profiles.errors import MalformedResponse, Timeout

GET_PRINTER_ATTRIBUTES = 0x000B
CUPS_GET_PRINTERS = 0x4002
OPERATIONS = {GET_PRINTER_ATTRIBUTES: "Get-Printer-Attributes", CUPS_GET_PRINTERS: "CUPS-Get-Printers"}
MAX_RESPONSE = 64 * 1024
MAX_VALUES = 512
MAX_TEXT = 200
MAX_QUEUES = 16  # queues of one print server asked for their attributes
PATHS = ("/ipp/print", "/ipp", "/")
NOT_FOUND = 0x0406
TAG_OPERATION, TAG_END, TAG_PRINTER = 0x01, 0x03, 0x04
T_INTEGER, T_CHARSET, T_LANGUAGE, T_URI, T_KEYWORD = 0x21, 0x47, 0x48, 0x45, 0x44
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
LISTED = ("printer-name", "printer-uri-supported")  # all CUPS-Get-Printers asks for
TEXT_TAGS = {0x41, 0x42, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49}  # text, name, keyword, uri, scheme, charset, lang, mime
STATUS_NAMES = {0x0000: "successful-ok", 0x0001: "successful-ok-ignored-or-substituted-attributes",
                0x0400: "client-error-bad-request", 0x0401: "client-error-forbidden",
                0x0402: "client-error-not-authenticated", 0x0403: "client-error-not-authorized",
                0x0406: "client-error-not-found", 0x0501: "server-error-operation-not-supported"}  # fmt: skip


def _attr(tag: int, name: str, value: bytes) -> bytes:
    n = name.encode()
    return struct.pack(">BH", tag, len(n)) + n + struct.pack(">H", len(value)) + value


def request(printer_uri: str | None, request_id: int, operation: int = GET_PRINTER_ATTRIBUTES) -> bytes:
    """One read-only request: Get-Printer-Attributes of a printer URI, or CUPS-Get-Printers (no URI)."""
    if operation not in OPERATIONS:
        raise ValueError(f"IPP operation 0x{operation:04x} is not one this probe may send")
    ops = _attr(T_CHARSET, "attributes-charset", b"utf-8") + _attr(T_LANGUAGE, "attributes-natural-language", b"en")
    names: tuple[str, ...] = REQUESTED
    if operation == CUPS_GET_PRINTERS:
        ops += _attr(T_INTEGER, "limit", struct.pack(">i", MAX_QUEUES))
        names = LISTED
    else:
        assert printer_uri is not None
        ops += _attr(T_URI, "printer-uri", printer_uri.encode())
    ops += _attr(T_KEYWORD, "requested-attributes", names[0].encode())
    ops += b"".join(_attr(T_KEYWORD, "", name.encode()) for name in names[1:])  # additional values
    return struct.pack(">BBHI", 2, 0, operation, request_id) + bytes([TAG_OPERATION]) + ops + bytes([TAG_END])


@dataclass
class Response:
    """An IPP response: status, request id and each printer group's attributes (value lists, as text)."""

    status: int
    request_id: int
    printers: list[dict[str, list[str]]] = field(default_factory=list)

    @property
    def printer(self) -> dict[str, list[str]]:
        """The first printer group (Get-Printer-Attributes has one)."""
        return self.printers[0] if self.printers else {}


def parse_response(data: bytes) -> Response:
    """Decode an IPP response strictly; MalformedResponse on anything truncated, oversized or out of order.

    Bytes after the end-of-attributes tag are allowed: RFC 8010 3.1.1 has a message's optional
    ``data`` (document content) follow it, and no read-only answer's attributes are in it.
    """
    r = wire.Reader(data, "IPP response", max_size=MAX_RESPONSE)
    major, _minor, status, request_id = r.unpack(">BBHI", "header")
    if major not in (1, 2):
        raise MalformedResponse(f"IPP version {major} is not one this probe reads")
    out = Response(status, request_id)
    group, name, values = 0, "", 0
    while True:
        if r.at_end:
            raise MalformedResponse("IPP response without an end-of-attributes tag")
        tag = r.u8("tag")
        if tag == TAG_END:
            return out
        if tag < 0x10:  # a delimiter: the next group begins (CUPS-Get-Printers sends one printer group per queue)
            group, name = tag, ""
            if group == TAG_PRINTER:
                out.printers.append({})
            continue
        if tag == 0x7F:
            raise MalformedResponse("IPP extended value tags are not read")
        raw_name = r.counted(2, "attribute name")
        if raw_name:
            name = raw_name.decode("utf-8", "replace")[:MAX_TEXT]
        elif not name:
            raise MalformedResponse("IPP additional value with no attribute before it")
        value = r.counted(2, f"value of {name}")
        values += 1
        if values > MAX_VALUES:
            raise MalformedResponse(f"IPP response with more than {MAX_VALUES} values")
        if group == TAG_PRINTER:
            out.printers[-1].setdefault(name, []).append(_text(tag, value))


def _text(tag: int, value: bytes) -> str:
    if tag in TEXT_TAGS:
        return value.decode("utf-8", "replace")[:MAX_TEXT]
    if tag == 0x22 and len(value) == 1:  # boolean
        return "true" if value[0] else "false"
    if tag in (0x21, 0x23) and len(value) == 4:  # integer, enum: exactly a signed 32-bit value
        return str(int.from_bytes(value, "big", signed=True))
    return value.hex()[:MAX_TEXT]


def status_name(status: int) -> str:
    """The RFC 8011 13.1 keyword of an IPP status code (hex when this probe does not name it)."""
    return STATUS_NAMES.get(status, f"0x{status:04x}")


@dataclass
class _Answer:
    path: str
    operation: int
    http_status: int
    response: Response | None  # None: no IPP body (an HTTP status other than 200)

    @property
    def found(self) -> bool:
        """A printer answered: an IPP successful-* status with a printer group."""
        return self.response is not None and self.response.status < 0x0100 and bool(self.response.printers)

    @property
    def not_found(self) -> bool:
        return self.http_status == 404 or (self.response is not None and self.response.status == NOT_FOUND)

    def line(self) -> str:
        """What evidence shows: operation, path and the answer's status."""
        got = status_name(self.response.status) if self.response is not None else f"HTTP {self.http_status}"
        return f"{OPERATIONS[self.operation]} {self.path}: {got}"


def queue_paths(listing: Response) -> list[str]:
    """The resource paths of the queues a CUPS-Get-Printers answer lists (first URI of each, bounded)."""
    out: list[str] = []
    for printer in listing.printers:
        for uri in printer.get("printer-uri-supported", [])[:1]:
            path = urllib.parse.urlsplit(uri).path
            if path.startswith("/") and path.isprintable() and " " not in path and path not in out:
                out.append(path)
    return out[:MAX_QUEUES]


@register
class IppAttributes(Probe):
    """Get-Printer-Attributes over HTTP on the IPP port (and CUPS-Get-Printers on a print server)."""

    name = "ipp"
    phase = Phase.FINGERPRINT
    services = frozenset({"ipp"})
    imports = http.LIBRARIES
    description = (
        "IPP Get-Printer-Attributes (make and model, firmware, URI security and authentication) and, on a CUPS "
        "server, CUPS-Get-Printers to find its queues; read-only operations only"
    )

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """The IPP Everywhere paths, then a print server's queues; an HTTP 401/403 is an answer: a password."""
        assert target.service is not None
        host = f"[{target.address}]" if ":" in target.address else target.address
        base = f"{host}:{target.service.port}"
        answers: list[_Answer] = []
        for path in PATHS:
            answers.append(await _ask(base, path, GET_PRINTER_ATTRIBUTES, ctx))
            if not answers[-1].not_found:
                break
        last = answers[-1]
        if last.not_found:  # no printer at the usual paths: a CUPS server names its queues
            listing = await _ask(base, "/", CUPS_GET_PRINTERS, ctx)
            answers.append(listing)
            paths = queue_paths(listing.response) if listing.response is not None else []
            queues = [await _ask(base, p, GET_PRINTER_ATTRIBUTES, ctx) for p in paths]
            answers += queues
            if queues:
                asked = tuple(a.line() for a in answers)
                return [_info(target, a, asked) for a in queues]
        if last.http_status not in (200, 401, 403, 404):
            raise MalformedResponse(f"IPP POST {last.path}: HTTP {last.http_status}")
        if all(a.http_status == 404 for a in answers):
            raise MalformedResponse(f"IPP POST {', '.join(a.path for a in answers)}: HTTP 404 (no IPP here)")
        return [_info(target, last, tuple(a.line() for a in answers))]


async def _ask(base: str, path: str, operation: int, ctx: ProbeContext) -> _Answer:
    """One POST of one read-only request, within the probe's deadline."""
    request_id = secrets.randbelow(0x7FFFFFFF) + 1
    printer_uri = f"ipp://{base}{path}" if operation == GET_PRINTER_ATTRIBUTES else None
    try:
        async with asyncio.timeout_at(ctx.deadline):
            status, body = await http.fetch(
                f"http://{base}{path}",
                ctx,
                MAX_RESPONSE + 1,
                method="POST",
                content=request(printer_uri, request_id, operation),
                headers={"Content-Type": "application/ipp"},
            )
    except TimeoutError as exc:
        raise Timeout(f"IPP POST {path}: no answer before the deadline") from exc
    if status != 200:
        return _Answer(path, operation, status, None)
    response = parse_response(body)
    if response.request_id != request_id:
        raise MalformedResponse("IPP response for another request id")
    return _Answer(path, operation, status, response)


def _info(target: ProbeTarget, answer: _Answer, asked: tuple[str, ...]) -> IppInfo:
    assert target.service is not None
    response = answer.response
    if response is None:  # 401/403 (a password is asked), or 404
        return IppInfo(target.service, path=answer.path, http_status=answer.http_status, asked=asked)
    attrs = response.printer

    def first(name: str) -> str:
        return attrs.get(name, [""])[0]

    return IppInfo(
        target.service,
        path=answer.path,
        http_status=answer.http_status,
        ipp_status=status_name(response.status),
        make_and_model=first("printer-make-and-model"),
        info=first("printer-info"),
        firmware=tuple(
            _pairs(attrs.get("printer-firmware-name", []), attrs.get("printer-firmware-string-version", []))
        ),
        printer_uris=tuple(attrs.get("printer-uri-supported", [])),
        uri_security=tuple(attrs.get("uri-security-supported", [])),
        uri_authentication=tuple(attrs.get("uri-authentication-supported", [])),
        accepting_jobs=first("printer-is-accepting-jobs") == "true",
        asked=asked,
    )


def _pairs(names: Sequence[str], versions: Sequence[str]) -> list[str]:
    """printer-firmware-name with its string version, as "NAME VERSION" (the lists run in parallel)."""
    return [f"{n} {v}".strip() for n, v in zip(names or [""] * len(versions), versions, strict=False)]
