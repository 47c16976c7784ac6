"""SIP OPTIONS fingerprint over UDP, with RFC 3261 retransmission and matching."""

from __future__ import annotations

from collections.abc import Sequence

from probes import clock, sipmsg
from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.udp import exchange
from scanner.errors import MalformedResponse, Refused, Timeout
from scanner.model import Observation, Service, SipInfo

T1 = 0.5  # RFC 3261 timer T1; non-INVITE retransmits at T1, 2*T1, 4*T1 ...


@register
class SipOptions(Probe):
    """OPTIONS to udp/5060: Server/User-Agent, Allow, Supported."""

    name = "sip-options"
    phase = Phase.DISCOVERY
    description = "SIP OPTIONS over UDP"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The SIP UDP port, always."""
        return [Service(config.sip_port, "udp", "sip")]

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Send OPTIONS; the first matching final (or any) response wins. Silence: nothing there."""
        assert target.service is not None
        port = target.service.port
        got: list[sipmsg.SipMessage] = []
        tx: list[sipmsg.Transaction] = []
        sent_at = clock.now()
        received_at: list[float] = []

        def build(local: tuple[str, int]) -> bytes:
            tx.append(sipmsg.Transaction.new("OPTIONS", local[0]))
            return sipmsg.build_options(tx[0], target.address, port, local, "UDP")

        def accept(data: bytes) -> bool:
            try:
                msg = sipmsg.parse(data)
            except MalformedResponse:
                return False
            if not tx or not tx[0].matches(msg) or (msg.status or 0) < 200:
                return False  # provisional or foreign: keep waiting
            got.append(msg)
            received_at.append(clock.now())
            return True

        try:
            await exchange(target.address, port, build, accept, ctx, schedule=(0.0, T1, 3 * T1), what="sip OPTIONS")
        except (Timeout, Refused):
            return []
        msg = got[0]
        out: list[Observation] = []
        date = msg.get("date")
        if date:
            try:
                device_time = clock.parse_http_date(date)  # SIP-date is RFC 1123 in GMT, as HTTP's
            except MalformedResponse:
                pass
            else:
                out.append(clock.reading(target.service, "sip-date", device_time, sent_at, received_at[0], 1.0))
        return [
            SipInfo(
                target.service,
                status=msg.status or 0,
                reason=msg.reason,
                server=msg.get("server"),
                user_agent=msg.get("user-agent"),
                allow=tuple(v.upper() for v in msg.values("allow"))[:32],
                supported=tuple(msg.values("supported"))[:32],
                date=date,
            ),
            *out,
        ]
