"""NTP queries: mode 3 client (RFC 5905), mode 6 READVAR and mode 7 monlist exposure.

Mode 3 gives stratum, leap indicator and the device clock's offset. Modes 6
and 7 are the ntpd control and private protocols: READVAR discloses the
daemon's version and system, and MON_GETLIST ("monlist", CVE-2013-5211)
answers a small request with up to 100 records, a traffic amplifier. Each is
one read-only request; nothing is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import struct
from collections.abc import Awaitable, Callable, Sequence

from probes import wire
from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.clock import now
from probes.datagram import DatagramProbe, absent
from probes.observations import ClockReading, NtpControl, NtpInfo, Observation, Service
from probes.wire.udp import Ask, Collected, exchange_all
from profiles.errors import MalformedResponse, ProbeError

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
PACKET = struct.Struct("!BBbb4s4s4sQQQQ")
MAX_REPLY = 1024


def to_ntp(t: float) -> int:
    """Unix time -> 64-bit NTP timestamp."""
    return int((t + NTP_EPOCH_OFFSET) * 2**32) & 0xFFFFFFFFFFFFFFFF


def from_ntp(ts: int) -> float:
    """64-bit NTP timestamp -> Unix time."""
    return ts / 2**32 - NTP_EPOCH_OFFSET


def build_request(transmit: int) -> bytes:
    """A version 4 client request carrying ``transmit`` as its transmit timestamp."""
    return PACKET.pack(0x23, 0, 0, 0, b"\0" * 4, b"\0" * 4, b"\0" * 4, 0, 0, 0, transmit)


def parse_reply(data: bytes, origin: int, received_at: float) -> NtpInfo:
    """Parse and validate a server reply to our request; strict about size and mode.

    Bytes after the 48-byte header are allowed (up to MAX_REPLY): RFC 5905 7.3 and RFC 7822 put
    extension fields and a MAC there, which this probe does not read.
    """
    r = wire.Reader(data, "NTP reply", max_size=MAX_REPLY)
    b0, stratum, _poll, _prec, _rd, _disp, refid, _ref_ts, orig_ts, recv_ts, xmit_ts = r.unpack(
        PACKET, "header", short=f"NTP reply of {len(data)} bytes, need {PACKET.size}"
    )
    leap, version, mode = b0 >> 6, (b0 >> 3) & 7, b0 & 7
    if mode != 4:
        raise MalformedResponse(f"NTP mode {mode}, expected 4 (server)")
    if not 1 <= version <= 4:
        raise MalformedResponse(f"NTP version {version}: not a version this protocol has (RFC 5905: 1-4)")
    if orig_ts != origin:
        raise MalformedResponse("NTP origin timestamp does not match our request")
    code = refid.rstrip(b"\0")
    if stratum == 0 and code:
        # RFC 5905 7.4: a Kiss-o'-Death packet (RATE, DENY, RSTR, ...): a control message, not a time
        # reading; its timestamps must not be read as the device's clock. Stratum 0 with no kiss code
        # is an unsynchronised server's answer (real chrony with no source sends it, leap 3): a reading.
        kiss = code.decode("ascii") if code and code.isascii() and code.decode("ascii").isprintable() else code.hex()
        return NtpInfo(None, stratum=0, leap=leap, version=version, ref_id=kiss, kiss=kiss)
    if stratum == 1 or stratum > 15:
        ref_text = refid.rstrip(b"\0").decode("ascii", errors="replace")
    else:
        ref_text = ".".join(str(b) for b in refid)
    offset = None
    if recv_ts and xmit_ts:  # an unsynchronised server still stamps its own clock
        t1, t2, t3, t4 = from_ntp(origin), from_ntp(recv_ts), from_ntp(xmit_ts), received_at
        offset = ((t2 - t1) + (t3 - t4)) / 2
    return NtpInfo(None, stratum=stratum, leap=leap, version=version, ref_id=ref_text, offset_s=offset)


@register
class NtpQuery(DatagramProbe[tuple[NtpInfo, float]]):
    """Mode 3 query to udp/123."""

    name = "ntp-query"
    phase = Phase.DISCOVERY
    description = "NTP client query (mode 3)"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The NTP port, always."""
        return [Service(config.ntp_port, "udp", "ntp")]

    def ask(self, target: ProbeTarget, ctx: ProbeContext) -> Ask[tuple[NtpInfo, float]]:
        """One query with one retransmit; the answer is the reply and its round trip."""
        # Real time in the high bits for the offset, random low bits so a
        # forged reply cannot guess the origin timestamp.
        origin = (to_ntp(now()) & ~0xFFFFF) | secrets.randbits(20)
        sent_at = now()

        def parse(data: bytes) -> tuple[NtpInfo, float] | None:
            received_at = now()
            try:
                return parse_reply(data, origin, received_at), max(0.0, received_at - sent_at)
            except MalformedResponse:
                return None

        return Ask.resent(lambda _: build_request(origin), parse, ctx.timeouts.read, "ntp")

    def unanswered(self, target: ProbeTarget, ctx: ProbeContext, error: ProbeError) -> list[Observation]:
        """Silence or refusal means no NTP service; garbage is not silence."""
        return absent(error)

    async def answered(
        self, target: ProbeTarget, ctx: ProbeContext, answer: tuple[NtpInfo, float]
    ) -> list[Observation]:
        """The reading, and the clock offset when the server stamped its clock."""
        assert target.service is not None
        info, rtt = answer
        out: list[Observation] = [dataclasses.replace(info, service=target.service)]
        if info.offset_s is not None:
            # The offset formula cancels the path delay; what is left is the asymmetry, at most half the round trip.
            out.append(
                ClockReading(
                    target.service, source="ntp", offset_s=round(info.offset_s, 3), uncertainty_s=round(rtt / 2, 3)
                )
            )
        return out


# Mode 6 (control) and mode 7 (private) ------------------------------------------

CONTROL_HEADER = struct.Struct("!BBHHHHH")  # li/vn/mode, r/e/m/opcode, sequence, status, assoc, offset, count
MODE7_HEADER = struct.Struct("!BBBBHH")  # r/m/vn/mode, a/sequence, implementation, request, err/items, mbz/size
READVAR = 2
MON_GETLIST_1 = 42
IMPL_XNTPD = 3
MONLIST_REQUEST_SIZE = 48
KEEP_VARIABLES = ("version", "system", "processor", "stratum", "refid")
MAX_VARIABLE_TEXT = 4096


def build_readvar(sequence: int) -> bytes:
    """A mode 6 READVAR request for the system variables (association 0)."""
    return CONTROL_HEADER.pack((2 << 3) | 6, READVAR, sequence, 0, 0, 0, 0)


def parse_readvar(data: bytes, sequence: int) -> tuple[tuple[str, str], ...]:
    """The kept variables of a mode 6 READVAR response to our sequence number.

    Bytes after the data are allowed: RFC 9327 2 pads it to a 4-octet boundary and may append an
    authenticator. One response carries the whole answer here (offset 0); a fragment is refused.
    """
    r = wire.Reader(data, "NTP control reply")
    b0, b1, seq, _status, _assoc, offset, count = r.unpack(
        CONTROL_HEADER, "header", short=f"NTP control reply of {len(data)} bytes"
    )
    if b0 & 7 != 6 or not b1 & 0x80 or b1 & 0x1F != READVAR or seq != sequence:
        raise MalformedResponse("not a mode 6 READVAR response to our request")
    if b1 & 0x40:
        raise MalformedResponse("NTP control error response")
    if offset != 0:
        raise MalformedResponse(f"NTP control response out of order (offset {offset})")
    body = r.take(count, "data", short="NTP control response truncated")
    text = body[:MAX_VARIABLE_TEXT].decode("ascii", errors="replace")
    found: dict[str, str] = {}
    for part in text.replace("\r\n", ",").split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if sep and name in KEEP_VARIABLES and name not in found:
            found[name] = value.strip().strip('"')[:120]
    return tuple(sorted(found.items()))


def is_control_response(data: bytes, sequence: int) -> bool:
    """A mode 6 response (error or not) to our sequence number: the control interface answered."""
    try:
        b0, b1, seq, *_rest = wire.Reader(data, "NTP control reply").unpack(CONTROL_HEADER, "header")
    except MalformedResponse:
        return False
    return b0 & 7 == 6 and bool(b1 & 0x80) and seq == sequence and 1 <= (b0 >> 3) & 7 <= 4


def is_private_response(data: bytes) -> bool:
    """A mode 7 response (error or not): ntpd's private interface answered (it has no transaction id)."""
    try:
        b0, *_rest = wire.Reader(data, "NTP mode 7 reply").unpack(MODE7_HEADER, "header")
    except MalformedResponse:
        return False
    return b0 & 7 == 7 and bool(b0 & 0x80)


def build_monlist() -> bytes:
    """A mode 7 MON_GETLIST_1 request (implementation XNTPD), padded as ntpdc pads it."""
    return bytes([(2 << 3) | 7, 0, IMPL_XNTPD, MON_GETLIST_1]).ljust(MONLIST_REQUEST_SIZE, b"\0")


def parse_monlist(data: bytes) -> int:
    """Number of records in a mode 7 monlist response (a valid response, even with none, is exposure).

    ntpd's private protocol has no RFC; its header counts the records and gives their size, and
    bytes after the records are allowed (what a record holds is not read, only that it is there).
    """
    r = wire.Reader(data, "NTP mode 7 reply")
    b0, _auth_seq, _impl, request, err_items, size_word = r.unpack(
        MODE7_HEADER, "header", short=f"NTP mode 7 reply of {len(data)} bytes"
    )
    if b0 & 7 != 7 or not b0 & 0x80 or request != MON_GETLIST_1:
        raise MalformedResponse("not a mode 7 monlist response")
    if err_items >> 12:
        raise MalformedResponse(f"NTP mode 7 error {err_items >> 12}")
    items, size = int(err_items) & 0x0FFF, int(size_word) & 0x0FFF
    r.skip(items * size, "records", short="NTP mode 7 response shorter than its records")
    return items


@register
class NtpControlQuery(Probe):
    """One READVAR and one monlist request to an NTP service that answered mode 3."""

    name = "ntp-control"
    phase = Phase.ASSESS  # its wait for silence overlaps the paced login series instead of lengthening a phase
    services = frozenset({"ntp"})
    description = "NTP mode 6 READVAR and mode 7 monlist (one request each, read-only)"

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Silence to both is the hardened answer; any mode 6/7 response is exposure, garbage is neither."""
        assert target.service is not None
        service = target.service
        sequence = secrets.randbits(16)
        readvar, monlist = build_readvar(sequence), build_monlist()
        # The service answered mode 3 moments ago, in milliseconds: a short wait after two sends is a
        # fair "no answer" here, and keeps a hardened daemon's silence from costing the full read timeout.
        quick = dataclasses.replace(ctx, timeouts=dataclasses.replace(ctx.timeouts, read=min(ctx.timeouts.read, 1.0)))

        def ask(payload: bytes, accept: Callable[[bytes], bool], what: str) -> Awaitable[Collected]:
            # Refused (the port closed since) propagates: inconclusive, not a pass.
            return exchange_all(target.address, service.port, payload, accept, quick, schedule=(0.0, 0.5), what=what)

        # Both at once: a hardened daemon's silence costs one wait, not two.
        got6, got7 = await asyncio.gather(
            ask(readvar, lambda d: is_control_response(d, sequence), "ntp mode 6"),
            ask(monlist, is_private_response, "ntp mode 7"),
        )
        variables: tuple[tuple[str, str], ...] = ()
        for datagram in got6.kept:
            with contextlib.suppress(MalformedResponse):
                variables = parse_readvar(datagram, sequence)
                break
        records = 0
        for datagram in got7.kept:
            with contextlib.suppress(MalformedResponse):
                records += parse_monlist(datagram)
        # Bytes answered per request sent: a retransmit doubles what was asked, not the answer's size.
        return [
            NtpControl(
                service,
                mode6=bool(got6.received_bytes),
                mode7=bool(got7.received_bytes),
                variables=variables,
                mode6_bytes=(len(readvar) * max(got6.sends, 1), got6.received_bytes),
                mode7_bytes=(len(monlist) * max(got7.sends, 1), got7.received_bytes),
                unreadable=got6.rejected + got7.rejected,
                monlist_records=records,
            )
        ]
