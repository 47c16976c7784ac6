"""TCP connect discovery: open, closed (refused) or filtered (no answer)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
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
from probes.wire import syn
from profiles.errors import MalformedResponse, Refused, Timeout, Unreachable


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
        """Connect (a lost SYN retried once, as nmap retransmits); refused is 'closed', no answer 'filtered'.

        In a privileged sweep the port gets the sweep's SYN knock instead (probes.wire.syn): the
        same three answers, from one raw socket, with no connection made."""
        assert target.service is not None
        port = target.service.port
        knocker = syn.active()
        ask = knocker.knock if knocker is not None and knocker.takes(target.address, port) else connect_only
        for attempt in (1, 2):
            try:
                await ask(target.address, port, ctx.budget(ctx.timeouts.connect))
            except Refused:
                return [PortState(target.service, state="closed")]
            except Timeout:
                if attempt == 2 or ctx.remaining() <= 0:
                    return [PortState(target.service, state="filtered")]
                continue
            return [PortState(target.service, state="open")]
        raise AssertionError("unreachable")


async def connect_only(address: str, port: int, wait: float) -> None:
    """A bare non-blocking connect and close: no transport, no stream (discovery connects to 12 ports a host).

    Raises Refused, Timeout or Unreachable as ``map_errors`` maps them."""
    loop = asyncio.get_running_loop()
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:  # a name: let the resolver pick, as open_connection would
        infos = await loop.getaddrinfo(address, port, type=socket.SOCK_STREAM)
        if not infos:
            raise Unreachable(f"connect {address}:{port}: no address") from None
        family = infos[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        with map_errors(f"connect {address}:{port}"):
            async with asyncio.timeout(wait):
                await loop.sock_connect(sock, (address, port))
    finally:
        sock.close()
