"""A closed UDP port, or an SSH login refused or closed, leaves no reference cycle: collector pauses stay short.

Each ICMP port unreachable used to leave a cycle (the error's traceback holds the transport's
reader frame, which holds the protocol, which holds the future, which holds the error): on the
fleet's /24, 60,550 objects only the cyclic collector could free, in generation-2 pauses of
0.14-0.23 s in asyncio's debug mode. Each refused SSH login left one too (asyncssh's error held its
frames, which held the connection, whose waiter held the error), and each closed SSH connection
another (its packet handler, a bound method of itself): in the 60-host sweep of test_loop_stalls
they were 34,000 of the 59,000 objects only the cyclic collector could free. Counted here with
gc.DEBUG_SAVEALL.
"""

from __future__ import annotations

import asyncio
import gc
import socket

import pytest

from probes.base import ProbeConfig, ProbeContext, ProbeTarget, Timeouts
from probes.login.ssh import ssh_login
from probes.observations import Mode, Service
from probes.sip import sipnet
from probes.wire import shared_udp, udp
from profiles.errors import ProbeError
from tests.conftest import StartDevice


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens there now: the kernel answers ICMP port unreachable


async def _refused_exchanges(n: int) -> int:
    port, refused = _closed_udp_port(), 0
    for _ in range(n):
        try:
            await udp.collect("127.0.0.1", port, lambda _local: b"ping", lambda _d: True, read_s=0.5,
                              schedule=(0.0, 0.05))  # fmt: skip
        except ProbeError:
            refused += 1
    return refused


async def _refused_sip(n: int) -> int:
    port, refused = _closed_udp_port(), 0
    target = ProbeTarget("127.0.0.1", Service(port, "udp", "sip"))
    for _ in range(n):
        channel = await sipnet.open_channel(target, None)  # type: ignore[arg-type]  # UDP needs no context
        try:
            channel.send(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
            await channel.next(asyncio.get_running_loop().time() + 0.5)
        except ProbeError:
            refused += 1
        finally:
            await channel.aclose()
    return refused


async def _shared(n: int) -> tuple[int, int]:
    """The same exchanges over the sweep's shared socket (its ICMP errors read from the error queue)."""
    with shared_udp.shared():
        return await _refused_exchanges(n), await _refused_sip(n)


def _saved_garbage() -> set[str]:
    """Type names of what only the cyclic collector would free now; the collector is enabled again after."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return {type(o).__name__ for o in gc.garbage}
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()


@pytest.mark.parametrize("sockets", ["own", "shared"])
def test_no_cycle_after_refused_udp_and_sip(sockets: str) -> None:
    gc.collect()
    gc.disable()
    try:
        if sockets == "own":
            assert asyncio.run(_refused_exchanges(20)) == 20
            assert asyncio.run(_refused_sip(20)) == 20
        else:
            assert asyncio.run(_shared(20)) == (20, 20)
    finally:
        left = _saved_garbage()
    assert not left & {
        "_Collect",
        "_Datagrams",
        "SipChannel",
        "_SelectorDatagramTransport",
        "SharedEndpoint",
        "ConnectionRefusedError",
    }, left


async def test_no_cycle_after_refused_and_closed_ssh_logins(emulated: StartDevice) -> None:
    import asyncssh

    dev = await emulated(services=["ssh"], cli="cisco", users={"admin": "admin"})
    port = dev.bound["ssh"]
    loop = asyncio.get_running_loop()
    ctx = ProbeContext(Timeouts(connect=2.0, read=2.0), Mode.DEFAULT, ProbeConfig(), deadline=loop.time() + 30)
    gc.collect()
    gc.disable()
    refused = 0
    try:
        for _ in range(3):
            try:
                await ssh_login(dev.spec.address, port, ctx, "admin", "wrong")
            except asyncssh.PermissionDenied:
                refused += 1
        conn = await ssh_login(dev.spec.address, port, ctx, "admin", "admin")
        conn.close()
        await conn.wait_closed()
        del conn
        await asyncio.sleep(0.2)  # asyncssh's cleanup runs in callbacks after the close
    finally:
        left = _saved_garbage()
    assert refused == 3
    # The emulator's server side lives in this process too: only the client's objects are asserted.
    assert not left & {"SSHClientConnection", "PermissionDenied", "SSHClientConnectionOptions"}, left
