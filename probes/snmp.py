"""SNMP: v3 engine discovery (safe, no credential) and a v1/v2c system-group GET.

The discovery message is hand-built BER (probes.wire.ber) so that safe mode learns
an agent exists without sending any community string. The community GET is
hand-built too (probes.wire.snmp_wire: no pysnmp engine per request, garbage told
from silence) and counts as a credential attempt (risk class ``credential``);
so does the VACM walk of a found community (GETNEXT).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import ClassVar

from probes import clock
from probes.base import (
    HostSnapshot,
    Phase,
    Probe,
    ProbeConfig,
    ProbeContext,
    ProbeTarget,
    register,
)
from probes.datagram import DatagramProbe, absent
from probes.observations import Observation, Risk, Service, SnmpInfo
from probes.wire import ber, snmp_wire, udp
from profiles.errors import MalformedResponse, ProbeError, Refused, Timeout

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
HR_SYSTEM_DATE = "1.3.6.1.2.1.25.1.2.0"  # HOST-RESOURCES-MIB: the device clock
HR_DEVICE_DESCR = "1.3.6.1.2.1.25.3.2.1.3.1"  # HOST-RESOURCES-MIB: first device's description (MFPs: model)
ENT_SOFTWARE_REV = "1.3.6.1.2.1.47.1.1.1.1.10.1"  # ENTITY-MIB: software revision of the first entity
PRT_PRINTER_NAME = "1.3.6.1.2.1.43.5.1.1.16.1"  # Printer-MIB v2 (RFC 3805) prtGeneralPrinterName, hrDeviceIndex 1
PRT_SERIAL = "1.3.6.1.2.1.43.5.1.1.17.1"  # Printer-MIB v2 prtGeneralSerialNumber
SYSTEM = (SYS_DESCR, SYS_OBJECT_ID, SYS_NAME)
EXTRAS = (HR_DEVICE_DESCR, ENT_SOFTWARE_REV, HR_SYSTEM_DATE, PRT_PRINTER_NAME, PRT_SERIAL)
USM_STATS_UNKNOWN_ENGINE_IDS = "1.3.6.1.6.3.15.1.1.4.0"


def build_v3_discovery(msg_id: int, request_id: int) -> bytes:
    """An SNMPv3 noAuthNoPriv, reportable GET with empty engine id and user (RFC 3414 4)."""
    usm = ber.enc_seq(
        ber.enc_str(b""), ber.enc_int(0), ber.enc_int(0), ber.enc_str(b""), ber.enc_str(b""), ber.enc_str(b"")
    )
    pdu = ber.enc_seq(ber.enc_int(request_id), ber.enc_int(0), ber.enc_int(0), ber.enc_seq(), tag=ber.GET_REQUEST)
    return ber.enc_seq(
        ber.enc_int(3),
        ber.enc_seq(ber.enc_int(msg_id), ber.enc_int(65507), ber.enc_str(b"\x04"), ber.enc_int(3)),
        ber.enc_str(usm),
        ber.enc_seq(ber.enc_str(b""), ber.enc_str(b""), pdu),
    )


def parse_v3_message(data: bytes) -> tuple[int, bytes, int, int]:
    """(msgID, authoritative engine id, PDU tag, request id) of an SNMPv3 message; strict."""
    top = ber.Reader(data)
    msg = top.sub(ber.SEQUENCE)
    top.end()
    if msg.int() != 3:
        raise MalformedResponse("not an SNMPv3 message")
    header = msg.sub(ber.SEQUENCE)
    msg_id = header.int()
    header.int()  # max size
    flags = header.expect(ber.OCTET_STRING)
    if len(flags) != 1:
        raise MalformedResponse("bad msgFlags")
    if header.int() != 3:
        raise MalformedResponse("not USM")
    header.end()
    usm = ber.Reader(msg.expect(ber.OCTET_STRING)).sub(ber.SEQUENCE)
    engine_id = usm.expect(ber.OCTET_STRING)
    if len(engine_id) > 32:
        raise MalformedResponse("engine id longer than 32 octets")
    scoped = msg.sub(ber.SEQUENCE)
    msg.end()
    scoped.expect(ber.OCTET_STRING)
    scoped.expect(ber.OCTET_STRING)
    tag, pdu_bytes = scoped.read()
    scoped.end()
    pdu = ber.Reader(pdu_bytes)
    request_id = pdu.int()
    return msg_id, engine_id, tag, request_id


@register
class SnmpDiscovery(DatagramProbe[bytes]):
    """SNMPv3 engine discovery: proves an agent, reveals its engine id, sends no secret."""

    name = "snmp-discovery"
    phase = Phase.DISCOVERY
    description = "SNMPv3 engine-id discovery (no community, no user)"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The SNMP port, always (UDP has no connect to find it first)."""
        return [Service(config.snmp_port, "udp", "snmp")]

    def ask(self, target: ProbeTarget, ctx: ProbeContext) -> udp.Ask[bytes]:
        """One discovery exchange; its answer is the agent's engine id."""
        return v3_discovery(ctx)

    def unanswered(self, target: ProbeTarget, ctx: ProbeContext, error: ProbeError) -> list[Observation]:
        """Silence or refusal means no (v3) agent, not a failure; garbage is not silence."""
        return absent(error)

    async def answered(self, target: ProbeTarget, ctx: ProbeContext, answer: bytes) -> list[Observation]:
        """The agent and its engine id."""
        assert target.service is not None
        return [SnmpInfo(target.service, version="v3-discovery", engine_id=answer.hex())]


def v3_discovery(ctx: ProbeContext) -> udp.Ask[bytes]:
    """The SNMPv3 discovery exchange (no secret sent): answered by a REPORT to our msgID, with the engine id."""
    msg_id = secrets.randbelow(2**31 - 1) + 1
    request_id = secrets.randbelow(2**31 - 1) + 1
    message = build_v3_discovery(msg_id, request_id)

    def parse(data: bytes) -> bytes | None:
        try:
            got_msg, engine, tag, _ = parse_v3_message(data)
        except MalformedResponse:
            return None
        return engine if got_msg == msg_id and tag == ber.REPORT else None

    return udp.Ask.resent(lambda _: message, parse, ctx.timeouts.read, "snmp v3 discovery")


async def v3_engine_id(address: str, port: int, ctx: ProbeContext) -> bytes | None:
    """The agent's engine id from one SNMPv3 discovery exchange (no secret sent); None when silent."""
    try:
        return await udp.ask(address, port, v3_discovery(ctx), ctx.deadline)
    except (Timeout, Refused):
        return None


async def snmp_get(
    address: str, port: int, community: str, version: str, oids: Sequence[str], wait: float
) -> dict[str, str]:
    """GET ``oids`` with a community (our BER codec, one datagram); oid -> text. Raises ProbeError:
    Timeout on silence (an agent's refusal of a wrong community), MalformedResponse on garbage."""
    got = await snmp_wire.request(address, port, community, version, oids, wait)
    if got.error_status:
        raise MalformedResponse(f"snmp {version} {address}:{port}: error-status {got.error_status}")
    return {oid: snmp_wire.text(tag, value) for oid, tag, value in got.varbinds if tag not in snmp_wire.EXCEPTIONS}


async def snmp_walk(
    address: str, port: int, community: str, version: str, prefix: str, wait: float, max_rows: int = 200
) -> dict[str, str]:
    """GETNEXT walk of one subtree (read-only, bounded rows, our codec); oid -> text. Raises ProbeError."""
    out: dict[str, str] = {}
    current = prefix
    while len(out) < max_rows:
        got = await snmp_wire.request(address, port, community, version, (current,), wait, pdu=ber.GET_NEXT)
        if got.error_status or len(got.varbinds) != 1:
            break  # v1's noSuchName past the last object, or an agent that ends the walk its own way
        oid, tag, value = got.varbinds[0]
        if tag in snmp_wire.EXCEPTIONS or not oid.startswith(prefix + "."):
            break
        if not _after(oid, current):
            raise MalformedResponse(f"snmp walk {address}:{port}: {oid} does not follow {current}")
        out[oid] = snmp_wire.text(tag, value)
        current = oid
    return out


def _after(oid: str, previous: str) -> bool:
    """Whether ``oid`` comes after ``previous`` in OID order (GETNEXT must advance, or a walk never ends)."""
    return tuple(map(int, oid.split("."))) > tuple(map(int, previous.split(".")))


@register
class SnmpCommunity(Probe):
    """System-group GET with the well-known community 'public' (a credential attempt)."""

    name = "snmp-community"
    risk = Risk.CREDENTIAL
    phase = Phase.FINGERPRINT
    description = "SNMP v2c then v1 GET of sysDescr/sysObjectID/sysName with community 'public'"
    communities: tuple[str, ...] = ("public",)
    # A silent agent costs two GETs' read timeouts with their retransmissions (v2c, then v1), and a v1
    # agent that answers gets its extra OIDs one GET each: more than --probe-timeout's 10 s in the worst
    # case, so this probe's own deadline is longer.
    deadline_s: ClassVar[float | None] = 20.0

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The SNMP port, even when v3 discovery was silent (v1/v2c-only agents)."""
        return [Service(config.snmp_port, "udp", "snmp")]

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Try each community once per version; silence is 'not accepted', not a pass."""
        assert target.service is not None
        for community in self.communities:
            for version in ("v2c", "v1"):
                # v2c reports a missing OID per varbind, so the version-bearing OIDs and the clock ride
                # along in the same GET (a second GET costs a second round trip); an agent that
                # errors on them is asked the system group alone. v1 fails a whole GET on one unknown
                # OID: it gets them one GET each, after the system group answered.
                asks = [SYSTEM + EXTRAS, SYSTEM] if version == "v2c" else [SYSTEM]
                got: dict[str, str] = {}
                sent_at = received_at = 0.0
                for oids in asks:
                    sent_at = clock.now()
                    try:
                        got = await snmp_get(
                            target.address, target.service.port, community, version, oids, ctx.budget(ctx.timeouts.read)
                        )
                    except (Timeout, Refused):
                        break
                    except MalformedResponse:
                        if oids is asks[-1]:
                            raise
                        continue
                    received_at = clock.now()
                    break
                if not got:
                    continue
                if version == "v1":
                    extra, clock_reading = await _v1_extras(target, ctx, community)
                else:
                    extra, clock_reading = _read_extras(target.service, got, sent_at, received_at)
                return [
                    SnmpInfo(
                        target.service,
                        version=version,
                        community=community,
                        sys_descr=got.get(SYS_DESCR),
                        sys_object_id=got.get(SYS_OBJECT_ID),
                        sys_name=got.get(SYS_NAME),
                        hr_device_descr=extra.get(HR_DEVICE_DESCR),
                        entity_software_rev=extra.get(ENT_SOFTWARE_REV),
                        printer_name=extra.get(PRT_PRINTER_NAME),
                        printer_serial=extra.get(PRT_SERIAL),
                    ),
                    *clock_reading,
                ]
        return []


def octets(text: str) -> bytes:
    """The codec's text of an OCTET STRING (probes.wire.snmp_wire: '0x..' when not printable) back to bytes."""
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            pass
    return text.encode("latin-1", errors="replace")


def _read_extras(
    service: Service, values: dict[str, str], sent_at: float, received_at: float
) -> tuple[dict[str, str], list[Observation]]:
    """Version-bearing values and the hrSystemDate clock reading from a GET's answer."""
    got: dict[str, str] = {}
    readings: list[Observation] = []
    for oid in EXTRAS:
        if not values.get(oid):
            continue
        if oid != HR_SYSTEM_DATE:
            got[oid] = values[oid][:200]
            continue
        try:
            device_time = clock.parse_date_and_time(octets(values[oid]))
        except MalformedResponse:
            continue
        # DateAndTime carries deci-seconds; an 8-octet value has no zone and is read as UTC.
        readings.append(clock.reading(service, "snmp-hrSystemDate", device_time, sent_at, received_at, 0.1))
    return got, readings


async def _v1_extras(
    target: ProbeTarget, ctx: ProbeContext, community: str
) -> tuple[dict[str, str], list[Observation]]:
    """The optional OIDs one GET each; an agent without them, or one that stops answering, only leaves them out."""
    assert target.service is not None
    got: dict[str, str] = {}
    readings: list[Observation] = []
    for oid in EXTRAS:
        sent_at = clock.now()
        try:
            value = await snmp_get(
                target.address, target.service.port, community, "v1", (oid,), ctx.budget(min(ctx.timeouts.read, 1.5))
            )
        except ProbeError:
            continue
        one, clock_reading = _read_extras(target.service, value, sent_at, clock.now())
        got.update(one)
        readings.extend(clock_reading)
    return got, readings
