"""NTP mode 3 client query (RFC 5905): stratum, leap indicator, offset."""

from __future__ import annotations

import secrets
import struct
import time
from collections.abc import Sequence

from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.udp import exchange
from scanner.errors import MalformedResponse, Refused, Timeout
from scanner.model import NtpInfo, Observation, Service

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
PACKET = struct.Struct("!BBbb4s4s4sQQQQ")


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
    """Parse and validate a server reply to our request; strict about size and mode."""
    if len(data) < PACKET.size:
        raise MalformedResponse(f"NTP reply of {len(data)} bytes, need {PACKET.size}")
    if len(data) > 1024:
        raise MalformedResponse("NTP reply too large")
    b0, stratum, _poll, _prec, _rd, _disp, refid, _ref_ts, orig_ts, recv_ts, xmit_ts = PACKET.unpack_from(data)
    leap, version, mode = b0 >> 6, (b0 >> 3) & 7, b0 & 7
    if mode != 4:
        raise MalformedResponse(f"NTP mode {mode}, expected 4 (server)")
    if orig_ts != origin:
        raise MalformedResponse("NTP origin timestamp does not match our request")
    if stratum in (0, 1) or stratum > 15:
        ref_text = refid.rstrip(b"\0").decode("ascii", errors="replace")
    else:
        ref_text = ".".join(str(b) for b in refid)
    offset = None
    if stratum and recv_ts and xmit_ts:
        t1, t2, t3, t4 = from_ntp(origin), from_ntp(recv_ts), from_ntp(xmit_ts), received_at
        offset = ((t2 - t1) + (t3 - t4)) / 2
    return NtpInfo(None, stratum=stratum, leap=leap, version=version, ref_id=ref_text, offset_s=offset)


@register
class NtpQuery(Probe):
    """Mode 3 query to udp/123."""

    name = "ntp-query"
    phase = Phase.DISCOVERY
    description = "NTP client query (mode 3)"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The NTP port, always."""
        return [Service(config.ntp_port, "udp", "ntp")]

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One query with one retransmit; silence means no NTP service."""
        assert target.service is not None
        # Real time in the high bits for the offset, random low bits so a
        # forged reply cannot guess the origin timestamp.
        origin = (to_ntp(time.time()) & ~0xFFFFF) | secrets.randbits(20)
        replies: list[NtpInfo] = []

        def accept(data: bytes) -> bool:
            try:
                info = parse_reply(data, origin, time.time())
            except MalformedResponse:
                return False
            replies.append(info)
            return True

        try:
            await exchange(
                target.address,
                target.service.port,
                lambda _: build_request(origin),
                accept,
                ctx,
                schedule=(0.0, 1.0),
                what="ntp",
            )
        except (Timeout, Refused):
            return []
        info = replies[0]
        return [
            NtpInfo(
                target.service,
                stratum=info.stratum,
                leap=info.leap,
                version=info.version,
                ref_id=info.ref_id,
                offset_s=info.offset_s,
            )
        ]
