"""Fuzz: NTP mode 3 replies, mode 6 READVAR and mode 7 monlist answers (probes/ntp.py).

Any datagram either parses within its bounds or raises MalformedResponse;
the predicates that pick datagrams to keep never raise at all.
"""

from __future__ import annotations

import math
import struct

from hypothesis import given
from hypothesis import strategies as st

from probes import ntp
from tests.fuzzing import budget, inputs, parse_or_malformed

ORIGIN = 0xE9A1_2B3C_4D5E_6F70
SEQUENCE = 0x1234


def _reply(stratum: int = 2, refid: bytes = b"\xc0\x00\x02\x01", b0: int = 0x24) -> bytes:
    return ntp.PACKET.pack(
        b0, stratum, 6, -20, b"\0" * 4, b"\0" * 4, refid, ORIGIN - 99, ORIGIN, ORIGIN + 5, ORIGIN + 9
    )


def _readvar(text: bytes) -> bytes:
    return ntp.CONTROL_HEADER.pack((2 << 3) | 6, 0x80 | ntp.READVAR, SEQUENCE, 0x0618, 0, 0, len(text)) + text


def _monlist(items: int, size: int) -> bytes:
    head = bytes([0x80 | (2 << 3) | 7, 0, ntp.IMPL_XNTPD, ntp.MON_GETLIST_1])
    return head + struct.pack(">HH", items, size) + bytes(items * size)


SEEDS = (
    _reply(),
    _reply(0, b"RATE"),
    _reply(1, b"GPS\0"),
    _reply(0, b"\0" * 4, 0xE4),
    _readvar(
        b'version="ntpd 4.2.8p15@1.3728-o", processor="x86_64", system="Linux/5.10",\r\nstratum=2, refid=192.0.2.1'
    ),
    _monlist(3, 72),
)


@given(inputs(SEEDS), st.floats(0, 2**32))
@budget(500)
def test_parse_reply(data: bytes, received_at: float) -> None:
    info = parse_or_malformed(lambda: ntp.parse_reply(data, ORIGIN, received_at))
    if info is not None:
        assert ntp.PACKET.size <= len(data) <= 1024
        assert 1 <= info.version <= 4
        assert 0 <= info.stratum <= 255
        assert len(info.ref_id) <= 15
        assert info.offset_s is None or math.isfinite(info.offset_s)
        assert info.kiss is None or info.stratum == 0


@given(inputs(SEEDS))
@budget(200)
def test_reply_to_another_request(data: bytes) -> None:
    """The origin timestamp is the transaction id: a reply is only read when it echoes ours."""
    other = ORIGIN ^ 1
    if parse_or_malformed(lambda: ntp.parse_reply(data, other, 0.0)) is not None:
        assert data[24:32] == struct.pack("!Q", other)


@given(inputs(SEEDS))
@budget(500)
def test_control(data: bytes) -> None:
    answered = ntp.is_control_response(data, SEQUENCE)
    assert isinstance(answered, bool)
    assert isinstance(ntp.is_private_response(data), bool)
    variables = parse_or_malformed(lambda: ntp.parse_readvar(data, SEQUENCE))
    if variables is not None:
        assert len(variables) <= len(ntp.KEEP_VARIABLES)
        assert all(name in ntp.KEEP_VARIABLES and len(value) <= 120 for name, value in variables)


@given(inputs(SEEDS))
@budget(400)
def test_parse_monlist(data: bytes) -> None:
    records = parse_or_malformed(lambda: ntp.parse_monlist(data))
    if records is not None:
        size = int.from_bytes(data[6:8], "big") & 0x0FFF
        assert 0 <= records <= 0x0FFF
        assert 8 + records * size <= len(data)
