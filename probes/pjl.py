"""PJL INFO ID on the raw print port (--intrusive only): the printer's own model string.

The only bytes sent are the Universal Exit Language sequence, a bare ``@PJL``
line and one ``@PJL INFO ID`` inquiry, which read and never print or change
the panel (HP PJL Technical Reference, INFO category). The answer is read
up to its form feed, bounded in size and time.
"""

from __future__ import annotations

import asyncio

from probes.base import Phase, Probe, ProbeContext, ProbeTarget, map_errors, register
from probes.observations import Observation, PjlId, Risk
from profiles.errors import MalformedResponse

UEL = b"\x1b%-12345X"
INQUIRY = UEL + b"@PJL\r\n@PJL INFO ID\r\n" + UEL
MAX_REPLY = 4096


def parse_info_id(data: bytes) -> str:
    """The ID text of an INFO ID answer: the line after the echoed command, quotes removed."""
    if len(data) > MAX_REPLY:
        raise MalformedResponse("PJL answer too long")
    text = data.replace(UEL, b"").split(b"\x0c", 1)[0].decode("latin-1")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.upper().startswith("@PJL INFO ID") and i + 1 < len(lines):
            value = lines[i + 1].strip('"').strip()
            if value and not value.upper().startswith("@PJL"):
                return value[:200]
    raise MalformedResponse("no INFO ID answer in the PJL reply")


@register
class PjlInfoId(Probe):
    """One read-only PJL inquiry on tcp/9100."""

    name = "pjl-info-id"
    risk = Risk.INTRUSIVE
    phase = Phase.FINGERPRINT
    services = frozenset({"jetdirect"})
    description = "PJL INFO ID on the raw print port (read-only inquiry; --intrusive only)"

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Send the inquiry, read to the form feed."""
        assert target.service is not None
        what = f"pjl {target.address}:{target.service.port}"
        with map_errors(what):
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(target.address, target.service.port), ctx.budget(ctx.timeouts.connect)
            )
            try:
                writer.write(INQUIRY)
                await asyncio.wait_for(writer.drain(), ctx.budget(ctx.timeouts.read))
                data = b""
                while b"\x0c" not in data and len(data) <= MAX_REPLY:
                    chunk = await asyncio.wait_for(reader.read(1024), ctx.budget(ctx.timeouts.read))
                    if not chunk:
                        break
                    data += chunk
            finally:
                writer.close()
        return [PjlId(target.service, id=parse_info_id(data))]
