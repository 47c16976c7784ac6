"""Fuzz: the BER codec (probes/wire/ber.py), SNMPv3 discovery replies (probes/snmp.py parse_v3_message) and
v1/v2c GET responses (probes/wire/snmp_wire.py parse_response).

Any bytes either decode within their own bounds or raise MalformedResponse;
what the encoder writes the reader reads back; trailing bytes are rejected.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from probes import snmp
from probes.wire import ber, snmp_wire
from tests.fuzzing import budget, inputs, parse_or_malformed

ENGINE = bytes.fromhex("80001f8880e9bd0c1d12667a5100000000")


def _v3_report(engine: bytes = ENGINE, msg_id: int = 1234, request_id: int = 99) -> bytes:
    usm = ber.enc_seq(ber.enc_str(engine), ber.enc_int(1), ber.enc_int(4711), *(ber.enc_str(b"") for _ in range(3)))
    binds = ber.enc_seq(ber.enc_seq(ber.enc_oid(snmp.USM_STATS_UNKNOWN_ENGINE_IDS), ber.enc_int(3, tag=ber.COUNTER32)))
    pdu = ber.enc_seq(ber.enc_int(request_id), ber.enc_int(0), ber.enc_int(0), binds, tag=ber.REPORT)
    header = ber.enc_seq(ber.enc_int(msg_id), ber.enc_int(65507), ber.enc_str(b"\x00"), ber.enc_int(3))
    return ber.enc_seq(
        ber.enc_int(3), header, ber.enc_str(usm), ber.enc_seq(ber.enc_str(engine), ber.enc_str(b""), pdu)
    )


def _v2_response(request_id: int = 77) -> bytes:
    binds = ber.enc_seq(
        ber.enc_seq(ber.enc_oid(snmp.SYS_DESCR), ber.enc_str(b"EdgeLab EL-R100 3.2.1")),
        ber.enc_seq(ber.enc_oid(snmp.SYS_OBJECT_ID), ber.enc_oid("1.3.6.1.4.1.99999.1")),
        ber.enc_seq(ber.enc_oid(snmp.HR_SYSTEM_DATE), ber.enc_str(bytes.fromhex("07e8010f0c1e2d002b0900"))),
        ber.enc_seq(ber.enc_oid(snmp.SYS_NAME), ber.enc_null(ber.NO_SUCH_OBJECT)),
    )
    pdu = ber.enc_seq(ber.enc_int(request_id), ber.enc_int(0), ber.enc_int(0), binds, tag=ber.RESPONSE)
    return ber.enc_seq(ber.enc_int(1), ber.enc_str(b"public"), pdu)


SEEDS = (_v3_report(), snmp.build_v3_discovery(1, 2), _v2_response(), ber.enc_seq(ber.enc_str(b"x" * 200)))


@given(inputs(SEEDS))
@budget(500)
def test_reader_walk(data: bytes) -> None:
    """Every TLV, nested ones too (walked without recursion), stays inside its parent."""
    todo = [ber.Reader(data[: ber.MAX_MESSAGE])]
    seen = 0
    while todo:
        reader = todo.pop()
        while not reader.done():
            got = parse_or_malformed(reader.read)
            if got is None:
                break
            tag, value = got
            seen += len(value)
            assert reader.pos <= len(reader.data)
            if tag & 0x20:  # constructed
                todo.append(ber.Reader(value))
    assert seen <= len(data) * 64  # each byte is counted once per level it is nested in


@given(st.binary(max_size=200))
@budget(300)
def test_dec_oid(value: bytes) -> None:
    dotted = parse_or_malformed(lambda: ber.dec_oid(value))
    if dotted is not None:
        assert len(dotted) <= 4 * len(value) + 8
        assert all(arc.isdigit() for arc in dotted.split("."))


@st.composite
def oids(draw: st.DrawFn) -> str:
    first = draw(st.integers(0, 2))
    second = draw(st.integers(0, 39 if first < 2 else 175))
    rest = draw(st.lists(st.integers(0, 2**64), max_size=12))
    return ".".join(str(a) for a in (first, second, *rest))


@given(oids(), st.integers(-(2**63), 2**63 - 1), st.binary(max_size=300))
@budget(300)
def test_round_trip(oid: str, number: int, octets: bytes) -> None:
    encoded = ber.enc_seq(ber.enc_oid(oid), ber.enc_int(number), ber.enc_str(octets))
    reader = ber.Reader(encoded).sub(ber.SEQUENCE)
    assert ber.dec_oid(reader.expect(ber.OID)) == oid
    assert reader.int() == number
    assert reader.expect(ber.OCTET_STRING) == octets
    reader.end()


@given(inputs(SEEDS))
@budget(600)
def test_parse_v3_message(data: bytes) -> None:
    got = parse_or_malformed(lambda: snmp.parse_v3_message(data))
    if got is not None:
        _msg_id, engine, tag, _request_id = got
        assert len(engine) <= 32
        assert 0 <= tag <= 0xFF


@given(st.binary(min_size=1, max_size=16), st.binary(max_size=32))
@budget(100)
def test_v3_trailing_bytes(extra: bytes, engine: bytes) -> None:
    """The documented contract: a valid message followed by anything is refused."""
    assert parse_or_malformed(lambda: snmp.parse_v3_message(_v3_report(engine) + extra)) is None


@given(inputs(SEEDS), st.sampled_from(("v1", "v2c")))
@budget(600)
def test_parse_response(data: bytes, version: str) -> None:
    got = parse_or_malformed(lambda: snmp_wire.parse_response(data, version, "public", 77))
    if got is not None:
        assert len(got.varbinds) <= snmp_wire.MAX_VARBINDS
        for _oid, tag, value in got.varbinds:
            _check_text(tag, value)


def _check_text(tag: int, value: bytes) -> None:
    text = parse_or_malformed(lambda: snmp_wire.text(tag, value))
    assert text is None or len(text) <= 4 * len(value) + 8


@given(
    st.sampled_from((ber.INTEGER, ber.OCTET_STRING, ber.OID, ber.COUNTER32, ber.COUNTER64, ber.IPADDRESS))
    | st.integers(0, 255),
    st.binary(max_size=64) | st.binary(min_size=1700, max_size=4000),
)
@example(ber.INTEGER, b"\x01" * 1800)  # str() of a 4,300-digit int: ValueError out of snmp_get
@example(ber.COUNTER64, b"\xff" * 1800)
@budget(200)
def test_value_text(tag: int, value: bytes) -> None:
    _check_text(tag, value)
