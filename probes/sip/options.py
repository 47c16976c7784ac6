"""SIP OPTIONS fingerprint over UDP (a datagram probe, probes.datagram), TCP and TLS (RFC 3261 transactions, see
probes.sip.sipnet)."""

from __future__ import annotations

from collections.abc import Sequence

from probes import clock
from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.datagram import DatagramProbe, port_state
from probes.observations import Observation, PortState, Service, SipInfo
from probes.sip import sipmsg, sipnet
from probes.wire.udp import Ask
from profiles.errors import MalformedResponse, ProbeError, Refused


async def options(target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
    """One OPTIONS transaction on a stream (TCP, or TLS for sips): SipInfo and the Date as a clock reading.

    A refused connection is a closed port; a connection that then says nothing is no answer either way
    (a ProbeError). Over UDP, ``SipOptions`` asks the same in its datagram form (no channel)."""
    assert target.service is not None
    service = target.service
    sent_at = clock.now()
    try:
        channel = await sipnet.open_channel(target, ctx)
    except Refused:
        return [PortState(service, state="closed")]
    try:

        def build(tx: sipmsg.Transaction) -> bytes:
            return sipmsg.build_options(tx, target.address, service.port, channel.local, channel.transport)

        try:
            msg = await sipnet.request(channel, build, "OPTIONS", ctx)
        except Refused:
            return [PortState(service, state="closed")]
    finally:
        await channel.aclose()
    return described(service, msg, sent_at, clock.now())


def described(service: Service, msg: sipmsg.SipMessage, sent_at: float, received_at: float) -> list[Observation]:
    """An OPTIONS answer: SipInfo, and its Date as a clock reading."""
    out: list[Observation] = []
    date = msg.get("date")
    if date:
        try:
            device_time = clock.parse_http_date(date)  # SIP-date is RFC 1123 in GMT, as HTTP's
        except MalformedResponse:
            pass
        else:
            out.append(clock.reading(service, "sip-date", device_time, sent_at, received_at, 1.0))
    info = SipInfo(
        service,
        status=msg.status or 0,
        reason=msg.reason,
        server=msg.get("server"),
        user_agent=msg.get("user-agent"),
        allow=tuple(v.upper() for v in msg.values("allow"))[:32],
        supported=tuple(msg.values("supported"))[:32],
        date=date,
    )
    return [info, *out]


@register
class SipOptions(DatagramProbe[tuple[sipmsg.SipMessage, float, float]]):
    """OPTIONS to udp/5060: Server/User-Agent, Allow, Supported."""

    name = "sip-options"
    phase = Phase.DISCOVERY
    description = "SIP OPTIONS over UDP"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The SIP UDP port, always."""
        return [Service(config.sip_port, "udp", "sip")]

    def ask(self, target: ProbeTarget, ctx: ProbeContext) -> Ask[tuple[sipmsg.SipMessage, float, float]]:
        """OPTIONS, retransmitted on timer E; the first final response of its transaction answers it.

        A message that is not one (a provisional response, another transaction's, garbage) is ignored,
        as RFC 3261 17.1.2 has a client transaction do: silence stays silence."""
        assert target.service is not None
        address, port = target.address, target.service.port
        sent: list[sipmsg.Transaction] = []
        sent_at = clock.now()

        def build(local: tuple[str, int]) -> bytes:
            sent.append(sipmsg.Transaction.new("OPTIONS", local[0]))
            return sipmsg.build_options(sent[0], address, port, local, "UDP")

        def parse(data: bytes) -> tuple[sipmsg.SipMessage, float, float] | None:
            try:
                msg = sipmsg.parse(data)
            except MalformedResponse:
                return None
            final = bool(sent) and sent[0].matches(msg) and (msg.status or 0) >= 200
            return (msg, sent_at, clock.now()) if final else None

        span = sipnet.span(ctx)
        return Ask(build, parse, sipnet.timer_e(span), span, "sip/udp", garbage_is_silence=True)

    def unanswered(self, target: ProbeTarget, ctx: ProbeContext, error: ProbeError) -> list[Observation]:
        """ICMP port unreachable is a closed port, UDP silence a filtered one (nothing there, or dropped)."""
        return port_state(target, error)

    async def answered(
        self, target: ProbeTarget, ctx: ProbeContext, answer: tuple[sipmsg.SipMessage, float, float]
    ) -> list[Observation]:
        """SipInfo, and the Date as a clock reading."""
        assert target.service is not None
        msg, sent_at, received_at = answer
        return described(target.service, msg, sent_at, received_at)


@register
class SipOptionsStream(Probe):
    """OPTIONS over TCP (sip) and TLS (sips) on ports discovery found open."""

    name = "sip-options-stream"
    phase = Phase.FINGERPRINT
    services = frozenset({"sip", "sips"})
    description = "SIP OPTIONS over TCP and TLS"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """Open TCP ports named sip or sips."""
        return [s for s in host.services_named(self.services) if s.transport == "tcp"]

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One OPTIONS on a fresh connection, framed by Content-Length."""
        return await options(target, ctx)
