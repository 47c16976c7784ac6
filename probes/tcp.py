"""TCP connect discovery: open, closed (refused) or filtered (no answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from probes.base import (
    HostSnapshot,
    Phase,
    Probe,
    ProbeConfig,
    ProbeContext,
    ProbeTarget,
    map_errors,
    register,
)
from probes.observations import Observation, PortState, Service
from profiles.errors import MalformedResponse, Refused, Timeout


async def open_stream(target: ProbeTarget, ctx: ProbeContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the target's TCP service within the connect timeout, trying twice.

    Services reach this after discovery saw the port open, so one timeout is more
    likely a lost SYN, or a busy event loop late to see the SYN-ACK, than a closed
    port: a second attempt (as nmap retransmits) keeps that from becoming inconclusive.
    """
    assert target.service is not None
    what = f"connect {target.address}:{target.service.port}"
    for attempt in (1, 2):
        try:
            with map_errors(what):
                async with asyncio.timeout(ctx.budget(ctx.timeouts.connect)):
                    return await asyncio.open_connection(target.address, target.service.port, limit=65_536)
        except Timeout:
            if attempt == 2 or ctx.remaining() <= 0:
                raise
    raise AssertionError("unreachable")


async def read_line(reader: asyncio.StreamReader, wait: float, what: str, max_len: int) -> bytes:
    """One LF-terminated line within ``wait`` seconds (b"" at end of stream; the last line may lack its LF).

    Every line-based reader of a device goes through here: a line over ``max_len`` (or the stream's
    64 KiB limit) is MalformedResponse, silence past ``wait`` is Timeout, never a crash."""
    try:
        async with asyncio.timeout(wait):
            line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise MalformedResponse(f"{what}: a line over {exc.consumed} bytes") from exc
    except asyncio.IncompleteReadError as exc:
        line = exc.partial
    except TimeoutError as exc:
        raise Timeout(f"{what}: no line within {wait:g}s") from exc
    if len(line) > max_len:
        raise MalformedResponse(f"{what}: a line of {len(line)} bytes (at most {max_len})")
    return line


async def close_stream(writer: asyncio.StreamWriter) -> None:
    """Close a stream without letting a slow peer hold us (shielded, bounded, silent).

    A TLS peer that never answers our close_notify would keep the connection for asyncio's 30 s
    shutdown timeout and then fail ``wait_closed``, in a task nobody awaits any more ("Task exception
    was never retrieved" on stderr): past our own second the transport is aborted instead, and the
    task's outcome is always retrieved (also when we are cancelled while waiting)."""
    writer.close()
    closed = asyncio.ensure_future(writer.wait_closed())
    closed.add_done_callback(_retrieve)
    try:
        async with asyncio.timeout(1.0):
            await asyncio.shield(closed)
    except TimeoutError:
        writer.transport.abort()
    except OSError:  # ssl.SSLError included: a broken shutdown is still a closed stream
        pass


def _retrieve(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


@register
class TcpConnect(Probe):
    """Full TCP connect on each discovery port."""

    name = "tcp-connect"
    phase = Phase.DISCOVERY
    description = "TCP connect to management and service ports"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """Every configured TCP port."""
        return [Service(p, "tcp", config.service_name(p)) for p in config.tcp_ports]

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Connect once; refused is 'closed', no answer is 'filtered'."""
        try:
            _, writer = await open_stream(target, ctx)
        except Refused:
            return [PortState(target.service, state="closed")]
        except Timeout:
            return [PortState(target.service, state="filtered")]
        await close_stream(writer)
        return [PortState(target.service, state="open")]
