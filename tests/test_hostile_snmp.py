"""SNMP agents that answer a community once and then fall silent: what worked once is found, never a pass.

A fake v1/v2c agent on loopback built on our BER codec answers GetRequests as told (RFC 3416 responses);
the scanner's discovery and its community series run against it through the real engine.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from probes.snmp import SYS_DESCR, SYS_NAME, SYS_OBJECT_ID
from probes.wire import ber
from scanner.findings import Status
from scanner.orchestrator import HostResult
from tests.conftest import by_id, fresh_address, scan_address

VALUES = {SYS_DESCR: b"Linux gw 5.10 EdgeLab", SYS_NAME: b"gw"}


class FakeAgent(asyncio.DatagramProtocol):
    """Answers v1/v2c GETs for ``communities`` while ``budget`` lasts; silent to all else (as agents are)."""

    def __init__(self, communities: set[bytes], budget: int) -> None:
        self.communities, self.budget = communities, budget
        self.asked: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            msg = ber.Reader(data).sub(ber.SEQUENCE)
            version, community = msg.int(), msg.expect(ber.OCTET_STRING)
            pdu = msg.sub(ber.GET_REQUEST)
            request_id, _, _ = pdu.int(), pdu.int(), pdu.int()
            binds = pdu.sub(ber.SEQUENCE)
            oids = []
            while not binds.done():
                vb = binds.sub(ber.SEQUENCE)
                oids.append(ber.dec_oid(vb.expect(ber.OID)))
        except Exception:
            return  # v3 discovery and anything else: silence
        self.asked.append(community)
        if community not in self.communities or self.budget <= 0:
            return
        self.budget -= 1
        out = []
        for oid in oids:
            if oid == SYS_OBJECT_ID:
                value = ber.tlv(ber.OID, ber.enc_oid("1.3.6.1.4.1.8072.3.2.10")[2:])
            elif oid in VALUES:
                value = ber.enc_str(VALUES[oid])
            else:
                value = ber.enc_null(ber.NO_SUCH_OBJECT)
            out.append(ber.enc_seq(ber.enc_oid(oid), value))
        reply = ber.enc_seq(
            ber.enc_int(version),
            ber.enc_str(community),
            ber.enc_seq(ber.enc_int(request_id), ber.enc_int(0), ber.enc_int(0), ber.enc_seq(*out), tag=ber.RESPONSE),
        )
        self.transport.sendto(reply, addr)


@pytest.fixture
async def agent() -> AsyncIterator[Callable[..., Any]]:
    transports: list[asyncio.DatagramTransport] = []

    async def sweep(communities: set[bytes], budget: int) -> tuple[HostResult, FakeAgent]:
        address = fresh_address()
        proto = FakeAgent(communities, budget)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: proto, local_addr=(address, 0))
        transports.append(transport)
        port = transport.get_extra_info("sockname")[1]
        result = await scan_address(address, snmp=port, pace=0.0, connect=0.5, read=0.5, probe=15.0, host=40.0)
        return result, proto

    yield sweep
    for t in transports:
        t.close()


async def test_a_community_that_answered_once_is_found(agent: Callable[..., Any]) -> None:
    """'public' answered the discovery GET, then the agent went silent: the series must not call it refused."""
    result, proto = await agent({b"public"}, budget=1)
    assert proto.asked.count(b"public") >= 1
    statuses = [f.status for f in by_id(result, "CIAJ-1.2-DEFAULT-CREDENTIAL") if f.service and "udp" in f.service]
    assert statuses == [Status.FAIL], [(f.status, f.evidence) for f in by_id(result, "CIAJ-1.2-DEFAULT-CREDENTIAL")]


async def test_an_agent_that_answers_public_every_time_fails_too(agent: Callable[..., Any]) -> None:
    result, _ = await agent({b"public"}, budget=100)
    statuses = [f.status for f in by_id(result, "CIAJ-1.2-DEFAULT-CREDENTIAL") if f.service and "udp" in f.service]
    assert statuses == [Status.FAIL]


class GarbageAgent(FakeAgent):
    """Answers every community GET with a well-framed BER message that is no Response to it."""

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.asked.append(data)
        reply = ber.enc_seq(ber.enc_int(1), ber.enc_str(b"public"), ber.enc_seq(ber.enc_int(7), tag=ber.RESPONSE))
        self.transport.sendto(reply + b"\x00trailing", addr)


async def test_garbage_replies_are_no_refusal(agent: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """pysnmp dropped a malformed reply silently and silence read as 'wrong community'; now it is named."""
    monkeypatch.setattr(sys.modules[__name__], "FakeAgent", GarbageAgent)
    result, proto = await agent({b"public"}, budget=100)
    assert proto.asked
    statuses = [f.status for f in by_id(result, "CIAJ-1.2-DEFAULT-CREDENTIAL") if f.service and "udp" in f.service]
    assert Status.PASS not in statuses
    failures = [f for f in result.findings if f.status == Status.INCONCLUSIVE and "none a response" in str(f.evidence)]
    assert failures, [(f.check_id, f.status, f.evidence) for f in result.findings]


async def test_no_pysnmp_engine_is_built_for_a_community_get(agent: Callable[..., Any]) -> None:
    """The GETs run on our codec: building a pysnmp engine per request cost ~54 ms of loop time each."""
    import pysnmp.hlapi.v3arch.asyncio as hlapi

    built: list[object] = []
    original = hlapi.SnmpEngine.__init__

    def counting(self: object, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        original(self, *args, **kwargs)

    hlapi.SnmpEngine.__init__ = counting  # type: ignore[method-assign]
    try:
        _, proto = await agent({b"public"}, budget=0)  # never answers: the whole community series runs
    finally:
        hlapi.SnmpEngine.__init__ = original  # type: ignore[method-assign]
    assert proto.asked.count(b"public") >= 1 and built == []
