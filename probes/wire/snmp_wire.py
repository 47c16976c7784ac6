"""SNMP v1/v2c GET on our own BER codec: one UDP socket per request, no pysnmp engine.

Building a pysnmp engine costs about 54 ms of CPU on the event loop per GET, and pysnmp drops a
malformed reply without a word, so garbage looked like silence, and silence is how an agent refuses
a wrong community. Here a reply from the agent's address and port that is no Response to this
request (wrong version, community or request-id, bad BER, trailing bytes) is counted, and a GET that
got only such replies is MalformedResponse, never Timeout (RFC 1157, RFC 3416).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from probes.wire import ber, udp
from profiles.errors import MalformedResponse, Timeout

VERSIONS = {"v1": 0, "v2c": 1}
EXCEPTIONS = (ber.NO_SUCH_OBJECT, ber.NO_SUCH_INSTANCE, ber.END_OF_MIB)
MAX_VARBINDS = 64


@dataclass(frozen=True, slots=True)
class Response:
    """A GetResponse-PDU: error-status, error-index and the varbinds as (oid, tag, raw value)."""

    error_status: int
    error_index: int
    varbinds: tuple[tuple[str, int, bytes], ...]


def build_get(version: str, community: str, request_id: int, oids: Sequence[str], pdu: int = ber.GET_REQUEST) -> bytes:
    """A v1/v2c GetRequest (or GetNextRequest) for ``oids``, values NULL."""
    binds = ber.enc_seq(*(ber.enc_seq(ber.enc_oid(oid), ber.enc_null()) for oid in oids))
    body = ber.enc_seq(ber.enc_int(request_id), ber.enc_int(0), ber.enc_int(0), binds, tag=pdu)
    return ber.enc_seq(ber.enc_int(VERSIONS[version]), ber.enc_str(community.encode("latin-1")), body)


def parse_response(data: bytes, version: str, community: str, request_id: int) -> Response:
    """The Response to our request, strictly: the same version, community and request-id, no trailing bytes."""
    top = ber.Reader(data)
    msg = top.sub(ber.SEQUENCE)
    top.end()
    if msg.int() != VERSIONS[version]:
        raise MalformedResponse("SNMP reply of another version")
    if msg.expect(ber.OCTET_STRING) != community.encode("latin-1"):
        raise MalformedResponse("SNMP reply for another community")
    pdu = msg.sub(ber.RESPONSE)
    msg.end()
    if pdu.int() != request_id:
        raise MalformedResponse("SNMP reply to another request")
    status, index = pdu.int(), pdu.int()
    binds = pdu.sub(ber.SEQUENCE)
    pdu.end()
    out: list[tuple[str, int, bytes]] = []
    while not binds.done():
        if len(out) >= MAX_VARBINDS:
            raise MalformedResponse("too many varbinds")
        vb = binds.sub(ber.SEQUENCE)
        oid = ber.dec_oid(vb.expect(ber.OID))
        tag, value = vb.read()
        vb.end()
        out.append((oid, tag, value))
    return Response(status, index, tuple(out))


def text(tag: int, value: bytes) -> str:
    """A value as text, as pysnmp's prettyPrint shows it (an OCTET STRING that is not text: '0x' and hex)."""
    if tag == ber.OCTET_STRING:
        try:
            decoded = value.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + value.hex()
        return decoded if all(c.isprintable() or c in "\r\n\t" for c in decoded) else "0x" + value.hex()
    if tag == ber.OID:
        return ber.dec_oid(value)
    if tag in (ber.INTEGER, ber.COUNTER32, ber.GAUGE32, ber.TIMETICKS, ber.COUNTER64) and len(value) > 9:
        # an INTEGER is at most 64 bits (and a sign octet); str() of a longer one raised ValueError past 4300 digits
        raise MalformedResponse(f"SNMP integer value of {len(value)} octets")
    if tag == ber.INTEGER:
        return str(int.from_bytes(value, "big", signed=True)) if value else "0"
    if tag in (ber.COUNTER32, ber.GAUGE32, ber.TIMETICKS, ber.COUNTER64):
        return str(int.from_bytes(value, "big"))
    if tag == ber.IPADDRESS and len(value) == 4:
        return str(ipaddress.IPv4Address(value))
    if tag == ber.NULL:
        return ""
    return "0x" + value.hex()


async def request(
    address: str, port: int, community: str, version: str, oids: Sequence[str], wait: float, pdu: int = ber.GET_REQUEST
) -> Response:
    """One GET (or GETNEXT) and its Response within ``wait`` seconds, one send (an agent's silence is its refusal
    of a wrong community, so nothing is retransmitted to make it talk). Raises Timeout on silence,
    MalformedResponse when only garbage came back, Refused/Unreachable on ICMP errors."""
    request_id = secrets.randbelow(2**31 - 1) + 1
    payload = build_get(version, community, request_id, oids, pdu)
    answers: list[Response] = []
    garbage: list[str] = []

    def accept(data: bytes) -> bool:
        try:
            answers.append(parse_response(data, version, community, request_id))
        except MalformedResponse as exc:
            garbage.append(str(exc))
            return False
        return True

    what = f"snmp {version} {address}:{port}"
    got = await udp.collect(address, port, lambda _: payload, accept, read_s=max(wait, 0.0), schedule=(0.0,), what=what)
    if answers:
        return answers[0]
    if got.rejected:
        detail = garbage[0] if garbage else "oversized datagram"
        raise MalformedResponse(f"{what}: {got.rejected} reply(ies), none a response to us: {detail}")
    raise Timeout(f"{what}: no answer within {wait:g}s")
