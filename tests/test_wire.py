"""The bounded wire reader (probes/wire/__init__.py): every overrun path, restrict_to windows and expect_end."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes import wire
from profiles.errors import MalformedResponse
from tests.fuzzing import budget

DATA = bytes.fromhex("01 0203 04050607 08090a0b0c0d0e0f 1011 12131415 ff")


def test_reads_in_network_and_little_endian_order() -> None:
    r = wire.Reader(DATA, "test")
    assert (r.u8("a"), r.u16("b"), r.u32("c")) == (0x01, 0x0203, 0x04050607)
    assert r.u64("d") == 0x08090A0B0C0D0E0F
    assert r.u16le("e") == 0x1110
    assert r.u32le("f") == 0x15141312
    assert r.remaining == 1 and not r.at_end
    assert r.u8("g") == 0xFF and r.at_end and r.remaining == 0
    r.expect_end()


def test_memoryview_and_bytearray_are_read_as_bytes() -> None:
    for data in (memoryview(DATA), bytearray(DATA)):
        r = wire.Reader(data, "test")
        assert r.take(3, "x") == DATA[:3] and isinstance(r.rest(), bytes)


OVERRUNS: dict[str, Callable[[wire.Reader], Any]] = {
    "u8": lambda r: r.u8("the tag"),
    "u16": lambda r: r.u16("the tag"),
    "u32": lambda r: r.u32("the tag"),
    "u64": lambda r: r.u64("the tag"),
    "u16le": lambda r: r.u16le("the tag"),
    "u32le": lambda r: r.u32le("the tag"),
    "take": lambda r: r.take(2, "the tag"),
    "skip": lambda r: r.skip(2, "the tag"),
    "unpack": lambda r: r.unpack(">HH", "the tag"),
    "counted length": lambda r: r.counted(2, "the tag"),
}


@pytest.mark.parametrize("read", OVERRUNS.values(), ids=OVERRUNS.keys())
def test_every_read_past_the_end_raises_and_names_what_and_the_field(read: Callable[[wire.Reader], Any]) -> None:
    r = wire.Reader(b"\x00\x00", "IPP response")
    r.skip(2, "header")
    pattern = r"^IPP response: truncated at byte 2: the tag.* needs \d+ bytes?, 0 left"
    with pytest.raises(MalformedResponse, match=pattern):
        read(r)
    assert r.pos == 2


def test_counted_bytes_and_their_overruns() -> None:
    r = wire.Reader(b"\x03abcd\x00\x02xy", "test")
    assert r.counted(1, "name") == b"abc"
    assert r.u8("d") == ord("d")
    assert r.counted(2, "value") == b"xy" and r.at_end
    with pytest.raises(MalformedResponse, match="value needs 5 bytes, 3 left"):
        wire.Reader(b"\x05abc", "test").counted(1, "value")
    with pytest.raises(MalformedResponse, match="value length needs 4 bytes, 2 left"):
        wire.Reader(b"\x00\x01", "test").counted(4, "value")


def test_a_negative_length_is_malformed_not_a_backwards_read() -> None:
    r = wire.Reader(b"abcd", "test")
    r.skip(2, "x")
    with pytest.raises(MalformedResponse):
        r.take(-1, "x")
    with pytest.raises(MalformedResponse):
        r.skip(-2, "x")
    with pytest.raises(MalformedResponse), r.restrict_to(-1, "x"):
        pass
    assert r.pos == 2


def test_short_replaces_the_reason() -> None:
    with pytest.raises(MalformedResponse, match=r"^element 48 runs past the frame$"):
        wire.Reader(b"\x01", "test").take(9, "x", short="element 48 runs past the frame")
    with pytest.raises(MalformedResponse, match=r"^too short$"):
        wire.Reader(b"", "test").u16le("x", short="too short")
    with pytest.raises(MalformedResponse, match=r"^too short$"):
        wire.Reader(b"\x09", "test").counted(1, "x", short="too short")


def test_max_size() -> None:
    wire.Reader(bytes(10), "NTP reply", max_size=10)
    with pytest.raises(MalformedResponse, match=r"^NTP reply too large \(11 bytes, at most 10\)"):
        wire.Reader(bytes(11), "NTP reply", max_size=10)


def test_align_is_counted_from_the_start_of_the_buffer() -> None:
    r = wire.Reader(bytes(12), "radiotap header")
    r.skip(5, "x")
    r.align(4, "y")
    assert r.pos == 8
    r.align(4, "y")  # already aligned: nothing skipped
    assert r.pos == 8
    r.skip(1, "x")
    with pytest.raises(MalformedResponse, match="padding before TSFT needs 7 bytes, 3 left"):
        r.align(8, "TSFT")


def test_restrict_to_confines_reads_and_moves_to_the_end_of_its_window() -> None:
    r = wire.Reader(b"\x00\x04abcdEF", "test")
    length = r.u16("length")
    with r.restrict_to(length, "option"):
        assert r.remaining == 4
        assert r.take(1, "x") == b"a"
        with pytest.raises(MalformedResponse, match="needs 4 bytes, 3 left"):
            r.take(4, "x")  # 'E' is past the window, though in the buffer
    assert r.pos == 6 and r.take(2, "rest") == b"EF"  # 'bcd' was not read: skipped on exit


def test_restrict_to_past_the_end_is_malformed() -> None:
    r = wire.Reader(b"\x00abc", "netlink reply")
    r.skip(1, "x")
    pattern = r"^netlink reply: message of 4 bytes runs past the end \(3 left\)$"
    with pytest.raises(MalformedResponse, match=pattern), r.restrict_to(4, "message"):
        pass
    with pytest.raises(MalformedResponse, match=r"^custom$"), r.restrict_to(4, "message", short="custom"):
        pass
    assert r.pos == 1 and r.remaining == 3


def test_restrict_to_nests_and_no_window_reaches_past_its_parent() -> None:
    r = wire.Reader(bytes(range(10)), "test")
    with r.restrict_to(6, "outer"):
        r.skip(1, "x")
        with r.restrict_to(3, "inner"):
            assert r.u8("x") == 1 and r.remaining == 2
        assert r.pos == 4 and r.remaining == 2
        with pytest.raises(MalformedResponse, match="runs past the end"), r.restrict_to(3, "inner"):
            pass  # 3 bytes left in the buffer after the outer window's 2, but not inside it
        with r.restrict_to(2, "inner"):
            assert r.take(2, "x") == b"\x04\x05"
            r.expect_end("inner part")
    assert r.pos == 6


def test_restrict_to_restores_the_window_when_a_read_inside_fails() -> None:
    r = wire.Reader(bytes(8), "test")
    with pytest.raises(MalformedResponse), r.restrict_to(2, "part"):
        r.skip(1, "x")
        r.u16("x")
    assert r.pos == 1 and r.remaining == 7  # left where it failed, the whole buffer visible again


def test_expect_end_refuses_trailing_bytes_in_the_buffer_and_in_a_window() -> None:
    r = wire.Reader(b"abc", "BER")
    r.skip(2, "x")
    with pytest.raises(MalformedResponse, match=r"^BER: 1 trailing byte after the BER value$"):
        r.expect_end("BER value")
    r = wire.Reader(b"abcd", "test")
    with pytest.raises(MalformedResponse, match="2 trailing bytes after the option"), r.restrict_to(3, "o"):
        r.skip(1, "x")
        r.expect_end("option")
    wire.Reader(b"", "test").expect_end()


OPS = st.lists(
    st.tuples(st.sampled_from(("u8", "u16", "u32le", "take", "counted", "align", "window", "end")), st.integers(-2, 9)),
    max_size=24,
)


@given(st.binary(max_size=40), OPS)
@budget(400)
def test_arbitrary_reads_stay_inside_the_buffer_or_raise_malformed(data: bytes, ops: list[tuple[str, int]]) -> None:
    """Whatever is asked of it, the reader returns only bytes that are there, or raises MalformedResponse."""
    r = wire.Reader(data, "test")
    for op, n in ops:
        before = r.pos
        try:
            if op == "u8":
                assert r.u8("x") == data[before]
            elif op == "u16":
                assert r.u16("x") == struct.unpack_from(">H", data, before)[0]
            elif op == "u32le":
                assert r.u32le("x") == struct.unpack_from("<I", data, before)[0]
            elif op == "take":
                assert r.take(n, "x") == data[before : before + n]
            elif op == "counted":
                got = r.counted(1, "x")
                assert got == data[before + 1 : before + 1 + data[before]]
            elif op == "align":
                r.align(max(n, 1), "x")
            elif op == "window":
                with r.restrict_to(n, "x"):
                    r.take(n // 2, "x")
                assert r.pos == before + n
            else:
                r.expect_end()
        except MalformedResponse:
            pass
        assert before <= r.pos <= len(data) and r.remaining == len(data) - r.pos
