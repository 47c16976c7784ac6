"""A closed or silent UDP port, an SSH login refused or closed, or a SYN knock leaves no reference cycle.

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
import os
import socket

import pytest

from probes.base import ProbeConfig, ProbeContext, ProbeTarget, Timeouts
from probes.login.ssh import ssh_login
from probes.observations import Mode, Service
from probes.sip import sipnet
from probes.wire import shared_udp, syn, udp
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


async def _silent_exchanges(n: int) -> int:
    """Exchanges with a port that takes every datagram and answers none (a silent UDP service)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        port, silent = sink.getsockname()[1], 0
        for _ in range(n):  # over the sweep's shared socket, as in a sweep
            got = await udp.collect("127.0.0.1", port, lambda _local: b"ping", lambda _d: True, read_s=0.01,
                                    schedule=(0.0, 0.01))  # fmt: skip
            silent += not got.kept
    return silent


async def _silent_shared(n: int) -> int:
    with shared_udp.shared():
        return await _silent_exchanges(n)


def test_no_cycle_after_silent_udp() -> None:
    """A send that meets silence leaves nothing for the collector either (debug mode, the shared socket)."""
    gc.collect()
    gc.disable()
    try:
        assert asyncio.run(_silent_shared(20), debug=True) == 20
    finally:
        left = _saved_garbage()
    assert not left & {"_Collect", "SharedEndpoint", "CancelledError", "TimeoutError", "Collected"}, left


@pytest.mark.skipif(os.geteuid() != 0 or not syn.SUPPORTED, reason="a raw socket needs CAP_NET_RAW (CI runs as root)")
async def test_no_cycle_after_syn_knocks() -> None:
    with socket.socket() as server, socket.socket() as closed:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        closed.bind(("127.0.0.1", 0))
        ports = [server.getsockname()[1], closed.getsockname()[1]]
        gc.collect()
        gc.disable()
        try:
            with syn.shared(True):
                knocker = syn.active()
                assert knocker is not None
                for _ in range(10):
                    assert await knocker.knock_all("127.0.0.1", ports, 1.0) == {ports[0]: "open", ports[1]: "closed"}
                    with pytest.raises(ProbeError):  # an address it cannot knock
                        await knocker.knock_all("::1", ports, 1.0)
        finally:
            left = _saved_garbage()
    assert not left & {"_Knock", "Future", "Refused", "OSError"}, left
