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
from probes.observations import Observation, PortState, ProbeFailure, Service
from probes.wire import syn
from profiles.errors import MalformedResponse, ProbeError, Refused, Timeout, Unreachable


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
    """Each discovery port of a host: open, closed (refused) or filtered (silent after a retry)."""

    name = "tcp-connect"
    phase = Phase.DISCOVERY
    description = "TCP connect (SYN knocks when root) to management and service ports"

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """Every configured TCP port; as root and for an IPv4 address, one run that knocks them all."""
        if config.privileged and syn.SUPPORTED and _ipv4(host.address):
            return [None]
        return _services(config)

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One port (``target.service``), or every port at once (no service: the sweep's SYN knocks).

        A privileged sweep knocks with one SYN per port from its raw socket (probes.wire.syn):
        the same three answers as a connect, with no connection made. What it cannot knock (no
        raw socket could be opened, a port already in flight) is connected to instead."""
        if target.service is not None:
            return await _connect_port(target.address, target.service, ctx)
        services = _services(ctx.config)
        knocker = syn.active()
        states: dict[int, str] = {}
        if knocker is not None:
            states = await knocker.knock_all(
                target.address, [s.port for s in services], ctx.budget(ctx.timeouts.connect)
            )
        out: list[Observation] = []
        rest: list[Service] = []
        for service in services:
            state = states.get(service.port)
            if state is None:
                rest.append(service)
            elif state.startswith("unreachable"):
                reason = f"SYN {target.address}:{service.port}: {state.partition(': ')[2]}"
                out.append(ProbeFailure(service, probe=self.name, error="Unreachable", reason=reason))
            else:
                out.append(PortState(service, state=state))
        if rest:
            out += await _connect_ports(target.address, rest, ctx, self.name)
        return out


CONNECTS_AT_ONCE = 4  # a host's ports connected to at once, when one run covers them all without a raw socket


def _services(config: ProbeConfig) -> list[Service]:
    return [Service(p, "tcp", config.service_name(p)) for p in config.tcp_ports]


def _ipv4(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 4
    except ValueError:
        return False


async def _connect_port(address: str, service: Service, ctx: ProbeContext) -> list[Observation]:
    """Connect (a lost SYN retried once, as nmap retransmits); refused is 'closed', no answer 'filtered'."""
    for attempt in (1, 2):
        try:
            await connect_only(address, service.port, ctx.budget(ctx.timeouts.connect))
        except Refused:
            return [PortState(service, state="closed")]
        except Timeout:
            if attempt == 2 or ctx.remaining() <= 0:
                return [PortState(service, state="filtered")]
            continue
        return [PortState(service, state="open")]
    raise AssertionError("unreachable")


async def _connect_ports(address: str, services: Sequence[Service], ctx: ProbeContext, probe: str) -> list[Observation]:
    """Connect to each port, a few at once; a port whose connect fails is that port's ProbeFailure."""
    limit = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def one(service: Service) -> list[Observation]:
        async with limit:
            try:
                return await _connect_port(address, service, ctx)
            except ProbeError as exc:
                return [ProbeFailure(service, probe=probe, error=type(exc).__name__, reason=str(exc))]

    found = await asyncio.gather(*(one(s) for s in services))
    return [o for part in found for o in part]


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
