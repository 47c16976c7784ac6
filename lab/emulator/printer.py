"""The MFP persona's printer services: read-only PJL (9100), IPP Get-Printer-Attributes, MIB values.

PJL answers only the inquiries a careful scanner may send (INFO ID, INFO CONFIG,
INFO STATUS, INQUIRE). Anything else on 9100 is print data or a state change;
it is recorded in ``job_bytes``/``pjl_writes`` and not answered, so a test can
prove edgeaudit never sends it.
"""

from __future__ import annotations

import hashlib
import struct
import time
from typing import TYPE_CHECKING

from lab.emulator.spec import FAX_SETTINGS
from probes.wire import ber

if TYPE_CHECKING:
    from lab.emulator.spec import DeviceSpec

UEL = b"\x1b%-12345X"
MAX_PJL = 4096

# OIDs the MFP agent answers besides the system group.
HR_SYSTEM_DATE = "1.3.6.1.2.1.25.1.2.0"
HR_DEVICE_DESCR = "1.3.6.1.2.1.25.3.2.1.3.1"
PRT_PRINTER_NAME = "1.3.6.1.2.1.43.5.1.1.16.1"
PRT_SERIAL = "1.3.6.1.2.1.43.5.1.1.17.1"
PRT_CONSOLE_DISPLAY = "1.3.6.1.2.1.43.16.5.1.2.1.1"
PRT_INTERPRETER_DESCR = "1.3.6.1.2.1.43.15.1.1.3.1.1"
# The EL-M family's fax settings (enterprise 99999, fictional), as the edgelab-mfp profile declares them:
# INTEGER 1 = on/allowed, 2 = off/prohibited, for each raw setting.
FAX_SETTINGS_OID = "1.3.6.1.4.1.99999.3.1"


def serial(spec: DeviceSpec) -> str:
    """A stable serial number for the device."""
    return "EL" + hashlib.sha256(spec.name.encode()).hexdigest()[:8].upper()


def mib_values(spec: DeviceSpec, skew_s: float) -> dict[str, bytes]:
    """Printer-MIB and HOST-RESOURCES values (BER-encoded) for the MFP agent."""
    t = time.gmtime(time.time() + skew_s)
    date = struct.pack(">HBBBBBB", t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, 0) + b"+\x00\x00"
    return {
        HR_SYSTEM_DATE: ber.enc_str(date),
        HR_DEVICE_DESCR: ber.enc_str(f"EdgeLab {spec.model}".encode()),
        PRT_PRINTER_NAME: ber.enc_str(f"EdgeLab {spec.model}".encode()),
        PRT_SERIAL: ber.enc_str(serial(spec).encode()),
        PRT_CONSOLE_DISPLAY: ber.enc_str(b"Ready"),
        PRT_INTERPRETER_DESCR: ber.enc_str(f"PJL firmware {spec.firmware}".encode()),
        **{
            f"{FAX_SETTINGS_OID}.{i}.0": ber.enc_int(1 if spec.fax[name] else 2)
            for i, name in enumerate(FAX_SETTINGS, 1)
            if name in spec.fax
        },
    }


def pjl_answer(spec: DeviceSpec, command: str) -> bytes | None:
    """The reply to one read-only PJL inquiry; None for anything that is not one."""
    cmd = " ".join(command.upper().split())
    if cmd == "@PJL INFO ID":
        body = f'"EdgeLab {spec.model}"'
    elif cmd == "@PJL INFO CONFIG":
        body = "\r\n".join(
            [
                "IN TRAYS [1 ENUMERATED]",
                "\tINTRAY1 MP",
                "MEMORY=268435456",
                f"FIRMWARE={spec.firmware}",
                f"SERIALNUMBER={serial(spec)}",
                "LANGUAGES [2 ENUMERATED]",
                "\tPCL",
                "\tPOSTSCRIPT",
            ]
        )
    elif cmd == "@PJL INFO STATUS":
        body = 'CODE=10001\r\nDISPLAY="Ready"\r\nONLINE=TRUE'
    elif cmd.startswith("@PJL INQUIRE "):
        var = cmd.split()[2] if len(cmd.split()) > 2 else ""
        body = {"LANG": "EN", "COPIES": "1", "PAPER": "A4"}.get(var, "?")
    else:
        return None
    return f"{command.strip()}\r\n{body}\r\n\x0c".encode()


# IPP (RFC 8010/8011), just enough for Get-Printer-Attributes.
IPP_GET_PRINTER_ATTRIBUTES = 0x000B
TAG_OPERATION, TAG_PRINTER, TAG_END = 0x01, 0x04, 0x03
T_INTEGER, T_BOOLEAN, T_ENUM, T_TEXT, T_NAME, T_KEYWORD, T_URI, T_CHARSET, T_LANG = (
    0x21, 0x22, 0x23, 0x41, 0x42, 0x44, 0x45, 0x47, 0x48,
)  # fmt: skip


def _attr(tag: int, name: str, value: bytes) -> bytes:
    n = name.encode()
    return struct.pack(">BH", tag, len(n)) + n + struct.pack(">H", len(value)) + value


def ipp_response(spec: DeviceSpec, request: bytes) -> bytes:
    """Answer an IPP request: attributes for Get-Printer-Attributes, operation-not-supported otherwise."""
    if len(request) < 8:
        return struct.pack(">BBHI", 2, 0, 0x0400, 0) + bytes([TAG_END])  # client-error-bad-request
    _major, _minor, op, req_id = struct.unpack(">BBHI", request[:8])
    head = _attr(T_CHARSET, "attributes-charset", b"utf-8") + _attr(T_LANG, "attributes-natural-language", b"en")
    if op != IPP_GET_PRINTER_ATTRIBUTES:
        return struct.pack(">BBHI", 2, 0, 0x0501, req_id) + bytes([TAG_OPERATION]) + head + bytes([TAG_END])
    secure = spec.ipp_auth != "none"
    uri = f"{'ipps' if secure else 'ipp'}://{spec.address}/ipp/print".encode()
    attrs = b"".join(
        [
            _attr(T_URI, "printer-uri-supported", uri),
            _attr(T_KEYWORD, "uri-security-supported", b"tls" if secure else b"none"),
            _attr(T_KEYWORD, "uri-authentication-supported", spec.ipp_auth.encode()),
            _attr(T_NAME, "printer-name", spec.name.encode()),
            _attr(T_TEXT, "printer-make-and-model", f"EdgeLab {spec.model}".encode()),
            _attr(T_TEXT, "printer-info", f"EdgeLab {spec.model} MFP".encode()),
            _attr(T_NAME, "printer-firmware-name", b"EdgeLab MFP firmware"),
            _attr(T_TEXT, "printer-firmware-string-version", spec.firmware.encode()),
            _attr(T_ENUM, "printer-state", struct.pack(">i", 3)),
            _attr(T_BOOLEAN, "printer-is-accepting-jobs", b"\x01"),
        ]
    )
    return (
        struct.pack(">BBHI", 2, 0, 0x0000, req_id)
        + bytes([TAG_OPERATION])
        + head
        + bytes([TAG_PRINTER])
        + attrs
        + (bytes([TAG_END]))
    )
