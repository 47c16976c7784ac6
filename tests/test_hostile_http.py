"""HTTP bodies from hostile devices: a 401 page or a title page sent as a gzip bomb costs a bounded read.

Measured in a fresh interpreter (its own peak RSS, VmHWM), against a server on loopback that answers
every request with a body that inflates to 256 MiB (the issue saw 1 GiB take the scanner to 2.2 GB).
"""

from __future__ import annotations

import json
import zlib

import httpx
import pytest

from probes.http import read_body
from tests.conftest import fresh_address, run_fresh

INFLATED = 256 * 1024 * 1024

SWEEP = r"""
import asyncio, json, sys, zlib
from probes.base import ProbeConfig, Timeouts
from probes.login import LoginOptions
import probes
import profiles
from probes.observations import Mode
from scanner.orchestrator import Engine, SweepConfig

address, inflated = sys.argv[1], int(sys.argv[2])
z = zlib.compressobj(9, zlib.DEFLATED, 31)
bomb = b"".join(z.compress(bytes(1 << 20)) for _ in range(inflated >> 20)) + z.flush()

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"bomb\"\r\n"
                         b"Content-Type: text/html\r\nContent-Encoding: gzip\r\n"
                         b"Content-Length: " + str(len(bomb)).encode() + b"\r\n\r\n" + bomb)
            await writer.drain()
    except Exception:
        writer.close()

async def main():
    probes.load_all()
    server = await asyncio.start_server(handle, address, 0)
    port = server.sockets[0].getsockname()[1]
    pc = ProbeConfig(tcp_ports=(port,), port_names=((port, "http"),), snmp_port=9, sip_port=9, ntp_port=9,
                     sets=(LoginOptions(login_pace_s=0.0),))
    config = SweepConfig(mode=Mode.DEFAULT, timeouts=Timeouts(connect=1.0, read=3.0, probe=20.0, host=60.0),
                         probe_config=pc)
    result = await Engine(config, profiles.load_all()).scan_host(address)
    server.close()
    # VmHWM: this process's own peak. ru_maxrss would carry the parent's (pytest's) RSS across fork and exec.
    status = open("/proc/self/status").read()
    rss = int(status.split("VmHWM:")[1].split()[0]) // 1024
    print(json.dumps({"rss_mib": rss, "bomb_bytes": len(bomb),
                      "findings": [[f.check_id, str(f.status), f.evidence] for f in result.findings]}))

asyncio.run(main())
"""


def test_a_gzip_bomb_401_page_costs_a_bounded_read() -> None:
    out = run_fresh(SWEEP, fresh_address(), str(INFLATED))
    assert out["bomb_bytes"] < 1024 * 1024  # what the device sent: under 1 MiB
    assert out["rss_mib"] < 200, out["rss_mib"]  # the bound is 300 MB for a whole hostile sweep
    # The login series ran on the (well-formed) 401s, refused each guess: the bomb cost memory nowhere.
    [logins] = [evidence for check, _, evidence in out["findings"] if check == "CIAJ-1.2-DEFAULT-CREDENTIAL"]
    assert logins["attempts"] >= 2 and "crashed" not in json.dumps(logins), logins


def _response(body: bytes, encoding: str) -> httpx.Response:
    return httpx.Response(200, headers={"content-encoding": encoding}, stream=httpx.ByteStream(body))


@pytest.mark.parametrize(
    ("encoding", "wbits"),
    [("gzip", 31), ("deflate", 15), ("deflate", -15)],
    ids=["gzip", "deflate-zlib", "deflate-raw"],
)
async def test_read_body_inflates_up_to_its_limit_only(encoding: str, wbits: int) -> None:
    z = zlib.compressobj(9, zlib.DEFLATED, wbits)
    text = b"<title>ok</title>" + b"x" * 10_000
    body = await read_body(_response(z.compress(text) + z.flush(), encoding), limit=1000)
    assert body == text[:1000]


async def test_read_body_rejects_what_does_not_inflate() -> None:
    from profiles.errors import MalformedResponse

    with pytest.raises(MalformedResponse):
        await read_body(_response(b"\x1f\x8b\x08\x00garbage" * 10, "gzip"))


async def test_an_identity_body_is_cut_at_the_limit() -> None:
    assert await read_body(_response(b"a" * 5000, "identity"), limit=10) == b"a" * 10
